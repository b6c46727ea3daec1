r"""Forward guiding and exact posterior marginals on a rooted tree, top down by levels.

Given the backward messages $h_v$ of [`tree_backward_filter`][markovppl.backward.tree.tree_backward_filter],
the root is drawn from $\pi(dx)h_\text{root}(x)/\int h_\text{root}d\pi$ and every other node from the
guided kernel $\kappa^\circ(x_\text{parent}, dy) \propto \kappa(x_\text{parent}, dy)\,h_v(y)$, level by
level from the root down (the reverse of the backward plan: a parent's height exceeds its
children's). With exact kernels every weight is zero and the draw is an exact joint posterior draw.

The same top-down recursion propagates exact marginals: for Gaussian edges the guided kernel is
affine, $x_v \mid x_p \sim N(G x_p + g, K)$, so means and covariances follow
$m_v = G m_p + g$, $P_v = G P_p G^\top + K$; for finite states $\pi_v = \pi_p P^\circ$.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .. import _linalg as la
from ..backward.tree import edge_index, padded_parents, per_edge
from ..graph.topology import Tree
from ..kernels.finite import Categorical
from ..kernels.initial import CategoricalLaw, GaussianLaw
from ..messages import gaussian as gm
from .rules import guide, guide_initial

__all__ = ["tree_forward_guide", "tree_gaussian_marginals", "tree_categorical_marginals", "TreeMarginals"]


class TreeMarginals(NamedTuple):
    r"""Posterior marginals of every node, leading axis ``num_nodes`` (preorder).

    Attributes:
        means: $E[x_v \mid y]$ ``(n, d)`` (Gaussian) or ``None``.
        covs: $\mathrm{Cov}(x_v \mid y)$ ``(n, d, d)`` (Gaussian) or ``None``.
        probs: $p(x_v = k \mid y)$ ``(n, K)`` (finite states) or ``None``.

    Examples:
        >>> TreeMarginals._fields
        ('means', 'covs', 'probs')
    """

    means: jax.Array | None
    covs: jax.Array | None
    probs: jax.Array | None


def _top_down(tree: Tree):
    """Rows of the plan below the root, top down (the root's row is the last one of the schedule)."""
    return jnp.asarray(tree.schedule()[:-1][::-1].copy())


def tree_forward_guide(tree: Tree, edges, messages, noise, root_law=None, root_value=None):
    r"""One guided draw of all node states, and the per-node log-weights.

    Args:
        tree: the topology.
        edges: batched edge kernel (leading axis ``num_nodes - 1``), as for the backward filter.
        messages: fused backward messages, leading axis ``num_nodes``.
        noise: ``(num_nodes, *noise_shape)``: standard normal (Gaussian) or Gumbel (finite states).
            ``vmap`` over a leading sample axis for several draws.
        root_law: law of the root, or
        root_value: its fixed value.

    Returns:
        ``(states, log_weights)``: ``(num_nodes, [d])`` and ``(num_nodes,)`` (zero for exact kernels).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from markovppl.graph import from_newick
        >>> from markovppl.kernels import Categorical
        >>> from markovppl.kernels.initial import CategoricalLaw
        >>> from markovppl.messages import categorical_message
        >>> from markovppl.backward.tree import tree_backward_filter
        >>> t = from_newick("(A,B);")
        >>> edges = Categorical(jnp.array([[[0.9, 0.1], [0.1, 0.9]]] * 2))
        >>> g = categorical_message(jnp.log(jnp.array([[1.0, 1.0], [0.0, 1.0], [0.0, 1.0]])))  # A = B = 1
        >>> law = CategoricalLaw(jnp.log(jnp.array([0.5, 0.5])))
        >>> back = tree_backward_filter(t, edges, g, law)
        >>> x, lw = tree_forward_guide(t, edges, back.messages, jax.random.gumbel(jax.random.PRNGKey(0), (3, 2)), law)
        >>> x[1:].tolist(), float(jnp.abs(lw).max())           # observed leaves are reproduced exactly
        ([1, 1], 0.0)
    """
    n = tree.num_nodes
    parents = jnp.asarray(padded_parents(tree))
    root_msg = jax.tree.map(lambda a: a[0], messages)
    if root_value is not None:
        x0 = jnp.asarray(root_value)
        lw0 = jnp.zeros((), noise.dtype)
    else:
        x0, lw0 = guide_initial(root_law, root_msg, noise[0])
    x = jnp.zeros((n + 1,) + x0.shape, x0.dtype).at[0].set(x0)
    lw = jnp.zeros((n + 1,), noise.dtype).at[0].set(lw0)
    noise = jnp.concatenate([noise, jnp.zeros_like(noise[:1])], 0)
    messages = jax.tree.map(lambda a: jnp.concatenate([a, a[:1]], 0), messages)

    def _level(carry, idx):
        x, lw = carry
        kernel = jax.tree.map(lambda a: a[edge_index(idx)], edges)
        h = jax.tree.map(lambda a: a[idx], messages)
        y, w = per_edge(guide, kernel, h, x[parents[idx]], noise[idx])
        return (x.at[idx].set(y), lw.at[idx].set(w)), None

    (x, lw), _ = jax.lax.scan(_level, (x, lw), _top_down(tree))
    return x[:n], lw[:n]


def tree_gaussian_marginals(tree: Tree, edges, messages, root_law: GaussianLaw) -> TreeMarginals:
    r"""Exact posterior means and covariances of every node for linear-Gaussian edges.

    ``edges`` is a prepared [`LinearGaussian`][markovppl.kernels.gaussian.LinearGaussian] with a
    leading edge axis; a fixed root is a ``GaussianLaw`` with zero ``cov_sqrt``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from markovppl.graph import from_newick
        >>> from markovppl.kernels import LinearGaussian
        >>> from markovppl.backward import leaf
        >>> from markovppl.backward.tree import tree_backward_filter
        >>> t = from_newick("(A:1,B:1);")
        >>> edges = LinearGaussian(jnp.ones((2, 1, 1)), jnp.zeros((2, 1)), jnp.ones((2, 1, 1))).prepared()
        >>> g = leaf(LinearGaussian(jnp.eye(1), jnp.zeros(1), jnp.eye(1)), jnp.array([[0.0], [2.0], [2.0]]),
        ...          jnp.array([[True], [False], [False]]))
        >>> law = GaussianLaw(jnp.zeros(1), jnp.eye(1))
        >>> m = tree_gaussian_marginals(t, edges, tree_backward_filter(t, edges, g, law).messages, law)
        >>> m.means[:, 0].round(4).tolist()                       # root: precision 1 + 2 * 1/2, mean 1
        [1.0, 1.5, 1.5]
    """
    n = tree.num_nodes
    parents = jnp.asarray(padded_parents(tree))
    root = gm.condition(jax.tree.map(lambda a: a[0], messages), root_law.mean, root_law.cov_sqrt)
    d = root.mean.shape[-1]
    means = jnp.zeros((n + 1, d), root.mean.dtype).at[0].set(root.mean)
    covs = jnp.zeros((n + 1, d, d), root.mean.dtype).at[0].set(root.cov)
    messages = jax.tree.map(lambda a: jnp.concatenate([a, a[:1]], 0), messages)

    def _level(carry, idx):
        means, covs = carry
        k = jax.tree.map(lambda a: a[edge_index(idx)], edges)
        h = jax.tree.map(lambda a: a[idx], messages)
        cond = gm.condition(h, k.b, k.cov_sqrt)  # mean: (I - KH) b + K F; cov: K
        g_mat = k.A - la.matmul(cond.cov, la.matmul(h.H, k.A))
        mp, pp = means[parents[idx]], covs[parents[idx]]
        m = la.matvec(g_mat, mp) + cond.mean
        p = la.symmetrize(la.matmul(g_mat, la.matmul(pp, jnp.swapaxes(g_mat, -1, -2))) + cond.cov)
        return (means.at[idx].set(m), covs.at[idx].set(p)), None

    (means, covs), _ = jax.lax.scan(_level, (means, covs), _top_down(tree))
    return TreeMarginals(means[:n], covs[:n], None)


def tree_categorical_marginals(tree: Tree, edges: Categorical, messages, root_law: CategoricalLaw) -> TreeMarginals:
    r"""Exact posterior state probabilities of every node for finite-state edges.

    Examples:
        >>> import jax.numpy as jnp
        >>> from markovppl.graph import from_newick
        >>> from markovppl.messages import categorical_message
        >>> from markovppl.backward.tree import tree_backward_filter
        >>> t = from_newick("(A,B);")
        >>> edges = Categorical(jnp.array([[[0.9, 0.1], [0.1, 0.9]]] * 2))
        >>> g = categorical_message(jnp.log(jnp.array([[1.0, 1.0], [0.0, 1.0], [1.0, 1.0]])))   # A = 1, B unobserved
        >>> law = CategoricalLaw(jnp.log(jnp.array([0.5, 0.5])))
        >>> p = tree_categorical_marginals(t, edges, tree_backward_filter(t, edges, g, law).messages, law).probs
        >>> p.round(4).tolist()
        [[0.1, 0.9], [0.0, 1.0], [0.18, 0.82]]
    """
    n = tree.num_nodes
    parents = jnp.asarray(padded_parents(tree))
    logits = root_law.log_probs + messages.log_h[0]
    p0 = jax.nn.softmax(logits, -1)
    probs = jnp.zeros((n + 1,) + p0.shape, p0.dtype).at[0].set(p0)
    log_h = jnp.concatenate([messages.log_h, messages.log_h[:1]], 0)

    def _level(probs, idx):
        p_mat = edges.transition_matrix[edge_index(idx)]
        tilted = p_mat * jnp.exp(log_h[idx])[..., None, :]
        norm = jnp.sum(tilted, -1, keepdims=True)
        guided = tilted / jnp.where(norm > 0, norm, 1.0)  # rows of impossible parent states are never used
        pv = jnp.sum(probs[parents[idx]][..., :, None] * guided, -2)
        return probs.at[idx].set(pv), None

    probs, _ = jax.lax.scan(_level, probs, _top_down(tree))
    return TreeMarginals(None, None, probs[:n])
