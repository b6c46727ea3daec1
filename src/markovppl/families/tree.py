r"""Tree models as NumPyro distributions over the values observed at some nodes of a rooted tree.

* [`GaussianTree`][markovppl.families.tree.GaussianTree]: a $d$-dimensional Gaussian trait evolving
  along the branches (Brownian motion, Ornstein–Uhlenbeck, any linear-Gaussian edge kernel), observed
  with Gaussian noise at some nodes (NaN coordinates are missing).
* [`DiscreteTree`][markovppl.families.tree.DiscreteTree]: a finite-state trait (transition matrices per
  edge, or a continuous-time generator over each branch: the Mk model), observed exactly or through
  an emission matrix.

**Ordering.** The value of the distribution has one row per *observed node*, in the order of
``observed`` (node names or indices; default: the leaves in preorder, i.e. left to right in the
Newick string). Latent outputs (``smooth``, ``posterior_sample``, ``sample_with_states``) have one
row per node of the tree in preorder (``tree.names``; the root is row 0). Edge parameters have one
row per edge, edge $e$ entering node $e + 1$ (``tree.branch_lengths`` is in that order).

``log_prob`` is the exact evidence $\log p(y)$ from the level-ordered backward filter
([`tree_backward_filter`][markovppl.backward.tree.tree_backward_filter]), differentiable in every kernel
parameter and in the branch lengths (the ``duration`` leaves of the edge kernel).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from numpyro.distributions import constraints

from .. import _linalg as la
from .. import _validation as v
from ..backward.rules import leaf
from ..backward.tree import tree_backward_filter
from ..graph.edges import EdgeKernels, fill_durations, scatter_groups
from ..graph.topology import Tree
from ..guided.tree import tree_categorical_marginals, tree_forward_guide, tree_gaussian_marginals
from ..kernels.continuous import transition
from ..kernels.finite import Categorical
from ..kernels.gaussian import LinearGaussian
from ..kernels.initial import CategoricalLaw, GaussianLaw
from ..messages import categorical as cm
from ..messages import gaussian as gm
from ._sequence import compiled

__all__ = ["GaussianTree", "DiscreteTree", "TreePosterior", "stochastic_matrix"]


class TreePosterior(NamedTuple):
    r"""Exact posterior marginals of every node (preorder) and the evidence.

    Attributes:
        log_evidence: $\log p(y)$.
        means, covs: $E[x_v \mid y]$ ``(n, d)`` and $\mathrm{Cov}(x_v \mid y)$ ``(n, d, d)``
            ([`GaussianTree`][markovppl.families.tree.GaussianTree]; ``None`` otherwise).
        probs: $p(x_v = k \mid y)$ ``(n, K)`` ([`DiscreteTree`][markovppl.families.tree.DiscreteTree]).

    Made by ``GaussianTree.smooth`` / ``DiscreteTree.smooth`` (their examples show one).

    Examples:
        >>> TreePosterior._fields
        ('log_evidence', 'means', 'covs', 'probs')
    """

    log_evidence: jax.Array
    means: jax.Array | None
    covs: jax.Array | None
    probs: jax.Array | None


def _check_tree(tree) -> Tree:
    if not isinstance(tree, Tree):
        raise TypeError(f"tree must be a markovppl.graph.Tree (see markovppl.graph.from_newick), got {type(tree).__name__}")
    if tree.num_nodes < 2:
        raise ValueError("the tree needs at least one edge")
    return tree


def _observed(tree: Tree, observed) -> tuple:
    idx = tree.leaves if observed is None else tree.nodes(list(observed))
    if len(idx) == 0:
        raise ValueError("no observed nodes")
    return tuple(int(i) for i in idx)


def _edges_with_durations(tree: Tree, edges):
    if isinstance(edges, EdgeKernels):
        edges.check_cover(tree.num_edges)
        ks = [fill_durations(k, tree.branch_lengths[np.asarray(i)]) if getattr(k, "duration", 0) is None else k
              for k, i in zip(edges.kernels, edges.index)]
        return EdgeKernels(ks, edges.index)
    if getattr(edges, "duration", 0) is None:
        return fill_durations(edges, tree.branch_lengths)
    return edges


def _validate_kernel(k):
    if hasattr(k, "validate"):
        try:
            k.validate()
        except TypeError:  # validators with required arguments (e.g. Emission) are checked elsewhere
            pass


def _lg_broadcast(k: LinearGaussian, num: int) -> LinearGaussian:
    a, b, q = jnp.asarray(k.A), jnp.asarray(k.b), jnp.asarray(k.Q)
    d_out, d_in = a.shape[-2:]
    return LinearGaussian(jnp.broadcast_to(a, (num, d_out, d_in)), jnp.broadcast_to(b, (num, d_out)),
                          jnp.broadcast_to(q, (num, d_out, d_out)))


def _guided_draws(tree: Tree, edges, messages, noise, law) -> jax.Array:
    """Forward-guided node states, one path per leading entry of ``noise`` ``(S, num_nodes, ...)``:
    guided by ``messages`` (posterior draws) or by uninformative ones (prior draws)."""
    return jax.vmap(lambda z: tree_forward_guide(tree, edges, messages, z, law)[0])(noise)


def _gaussian_edges(tree: Tree, edges) -> LinearGaussian:
    """Per-edge (A, b, Q), leading axis num_edges, with the square roots of Q."""
    if isinstance(edges, EdgeKernels):
        parts = [_lg_broadcast(transition(k), len(i)) for k, i in zip(edges.kernels, edges.index)]
        lg = scatter_groups(parts, edges.index, tree.num_edges)
    else:
        lg = _lg_broadcast(transition(edges), tree.num_edges)
    return lg.prepared()


def _prefix_log_predictive(model, value, blank):
    r"""$\log p(y_i \mid y_{<i})$ for the observed nodes in order: differences of the evidence of the
    value with rows $\ge i$ blanked out (``blank``: NaN or -1), ``k + 1`` evaluations vmapped at once."""
    k = value.shape[0]
    keep = jnp.arange(k + 1)[:, None] > jnp.arange(k)[None, :]            # (k + 1, k): rows < i kept
    keep = keep.reshape(keep.shape + (1,) * (value.ndim - 1))
    prefixes = jnp.where(keep, value[None], jnp.asarray(blank, value.dtype))
    log_ev = model._log_prob(prefixes)
    return log_ev[1:] - log_ev[:-1]


class GaussianTree(dist.Distribution):
    r"""A Gaussian trait on a rooted tree, observed with noise at some nodes.

    $$x_\text{root} \sim N(m_0, P_0),\qquad x_v \mid x_{\mathrm{pa}(v)} \sim \kappa_v(x_{\mathrm{pa}(v)}, \cdot),
      \qquad y_v = L x_v + c + N(0, R)\ \ (v \text{ observed}).$$

    The edge kernels $\kappa_v$ are linear-Gaussian: [`OrnsteinUhlenbeck`][markovppl.kernels.continuous.OrnsteinUhlenbeck]
    and [`BrownianMotion`][markovppl.kernels.continuous.BrownianMotion] over the branch length, or any
    [`LinearGaussian`][markovppl.kernels.gaussian.LinearGaussian]; see the module docstring for the
    orderings.

    Args:
        tree: a [`Tree`][markovppl.graph.topology.Tree].
        edges: one kernel for all edges (its parameters broadcast against a leading edge axis of size
            ``num_edges``; a ``duration`` left at ``None`` takes the tree's branch lengths), or
            [`EdgeKernels`][markovppl.graph.edges.EdgeKernels] for several kernel types.
        root_mean: $m_0$ ``(d,)``.
        root_cov: $P_0$ ``(d, d)`` positive semi-definite (zero: a fixed root at $m_0$).
        obs_cov: $R$ ``(m, m)`` or ``(num_observed, m, m)``, positive definite.
        obs_matrix: $L$ ``(m, d)`` or per observed node (default: the identity, $m = d$).
        obs_offset: $c$ ``(m,)`` or per observed node (default 0).
        observed: names or indices of the observed nodes (default: the leaves in preorder); internal
            nodes may be observed too.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from markovppl.graph import from_newick
        >>> from markovppl.kernels.continuous import OrnsteinUhlenbeck
        >>> tree = from_newick("((A:1,B:1):0.5,C:1.5);")
        >>> ou = OrnsteinUhlenbeck(jnp.eye(1), jnp.zeros(1), jnp.eye(1))       # durations from the tree
        >>> model = GaussianTree(tree, ou, jnp.zeros(1), jnp.eye(1), obs_cov=0.1 * jnp.eye(1))
        >>> y = jnp.array([[0.3], [0.5], [jnp.nan]])                             # C unobserved
        >>> model.event_shape, round(float(model.log_prob(y)), 4)
        ((3, 1), -1.5984)
    """

    pytree_data_fields = ("edges", "root_mean", "root_cov", "obs_matrix", "obs_offset", "obs_cov")
    pytree_aux_fields = ("tree", "observed")
    support = constraints.independent(constraints.real, 2)

    def __init__(self, tree: Tree, edges, root_mean, root_cov, obs_cov, *, obs_matrix=None, obs_offset=None,
                 observed=None, validate_args=None):
        self.tree = _check_tree(tree)
        self.observed = _observed(tree, observed)
        root_mean, root_cov = jnp.asarray(root_mean), jnp.asarray(root_cov)
        v.check_ndim("root_mean", root_mean, 1, "(d,)")
        d = root_mean.shape[-1]
        if root_cov.shape != (d, d):
            raise ValueError(f"root_cov must have shape ({d}, {d}) to match root_mean, got {root_cov.shape}")
        v.check_finite("root_mean", root_mean)
        v.check_covariance("root_cov", root_cov, definite=False)
        edges = _edges_with_durations(tree, edges)
        for k in (edges.kernels if isinstance(edges, EdgeKernels) else (edges,)):
            _validate_kernel(k)
        obs_cov = jnp.asarray(obs_cov, root_mean.dtype)
        m = obs_cov.shape[-1]
        obs_matrix = jnp.eye(d, dtype=root_mean.dtype) if obs_matrix is None else jnp.asarray(obs_matrix)
        obs_offset = jnp.zeros(obs_matrix.shape[-2], root_mean.dtype) if obs_offset is None else jnp.asarray(obs_offset)
        if obs_matrix.shape[-1] != d or obs_matrix.shape[-2] != m:
            raise ValueError(f"obs_matrix must have shape (..., {m}, {d}) (obs_cov is {m}x{m}, the state {d}-dimensional), got {obs_matrix.shape}")
        LinearGaussian(obs_matrix, obs_offset, obs_cov).validate(("obs_matrix", "obs_offset", "obs_cov"), definite=True)
        k = len(self.observed)
        for name, x, nd in (("obs_matrix", obs_matrix, 2), ("obs_offset", obs_offset, 1), ("obs_cov", obs_cov, 2)):
            if x.ndim > nd and x.shape[:-nd] not in ((k,), ()):
                raise ValueError(f"{name} must be shared or have a leading axis of {k} observed nodes, got shape {x.shape}")
        self.edges, self.root_mean, self.root_cov = edges, root_mean, root_cov
        self.obs_matrix, self.obs_offset, self.obs_cov = obs_matrix, obs_offset, obs_cov
        # the edge transitions must produce d-dimensional states
        probe = jax.eval_shape(lambda e: _gaussian_edges(tree, e), edges)
        if probe.A.shape[-2:] != (d, d):
            raise ValueError(f"edge kernels map {probe.A.shape[-1]}-dim to {probe.A.shape[-2]}-dim states; the root is {d}-dimensional")
        super().__init__(batch_shape=(), event_shape=(k, m), validate_args=validate_args)

    # ------------------------------------------------------------------ pieces
    @property
    def node_names(self) -> tuple:
        """Names of all nodes in preorder (rows of the latent outputs).

        Examples:
            >>> import jax.numpy as jnp
            >>> from markovppl.graph import from_newick
            >>> from markovppl.kernels.continuous import BrownianMotion
            >>> GaussianTree(from_newick("(A:1,B:1)R;"), BrownianMotion(jnp.eye(1)), jnp.zeros(1), jnp.eye(1), jnp.eye(1)).node_names
            ('R', 'A', 'B')
        """
        return self.tree.names

    @property
    def observed_names(self) -> tuple:
        """Names of the observed nodes (rows of the value).

        Examples:
            >>> import jax.numpy as jnp
            >>> from markovppl.graph import from_newick
            >>> from markovppl.kernels.continuous import BrownianMotion
            >>> GaussianTree(from_newick("(A:1,B:1)R;"), BrownianMotion(jnp.eye(1)), jnp.zeros(1), jnp.eye(1), jnp.eye(1)).observed_names
            ('A', 'B')
        """
        return tuple(self.tree.names[i] for i in self.observed)

    @property
    def state_dim(self) -> int:
        return self.root_mean.shape[-1]

    def _law(self) -> GaussianLaw:
        return GaussianLaw(self.root_mean, la.psd_sqrt(self.root_cov))

    def _edge_lg(self) -> LinearGaussian:
        return _gaussian_edges(self.tree, self.edges)

    def _obs_kernel(self) -> LinearGaussian:
        return LinearGaussian(self.obs_matrix, self.obs_offset, self.obs_cov)

    def _node_messages(self, value):
        value = jnp.asarray(value, self.root_mean.dtype)
        if value.shape != self.event_shape:
            raise ValueError(f"value must have shape {self.event_shape} (observed nodes, obs dim), got {value.shape}")
        miss = jnp.isnan(value)
        g = leaf(self._obs_kernel(), value, miss)
        n, d = self.tree.num_nodes, self.state_dim
        idx = np.asarray(self.observed)
        return gm.GaussianMessage(
            jnp.zeros(n, value.dtype).at[idx].set(g.c),
            jnp.zeros((n, d), value.dtype).at[idx].set(g.F),
            jnp.zeros((n, d, d), value.dtype).at[idx].set(g.H),
        )

    def _backward(self, value):
        return tree_backward_filter(self.tree, self._edge_lg(), self._node_messages(value), self._law())

    def _per_value(self, fn, value):
        value = jnp.asarray(value)
        lead = value.shape[: value.ndim - 2]
        flat = value.reshape((-1,) + value.shape[-2:])
        out = jax.vmap(fn)(flat)
        return jax.tree.map(lambda a: a.reshape(lead + a.shape[1:]), out)

    @classmethod
    def from_graph(cls, graph, root_mean, root_cov, **kwargs) -> "GaussianTree":
        r"""The model of a compiled graph ([`from_networkx`][markovppl.graph.nx.from_networkx]): its tree, edge
        kernels, observed nodes and their ``obs`` kernels (stacked ``LinearGaussian``).

        Examples:
            >>> import networkx as nx, jax.numpy as jnp
            >>> from markovppl.graph import from_networkx
            >>> from markovppl.kernels.continuous import BrownianMotion
            >>> g = nx.DiGraph()
            >>> g.add_edge("r", "a", kernel=BrownianMotion(jnp.eye(1)), length=1.0)
            >>> g.add_edge("r", "b", kernel=BrownianMotion(jnp.eye(1)), length=1.0)
            >>> g.nodes["a"]["obs"] = g.nodes["b"]["obs"] = LinearGaussian(jnp.eye(1), jnp.zeros(1), 1e-9 * jnp.eye(1))
            >>> m = GaussianTree.from_graph(from_networkx(g), jnp.zeros(1), jnp.zeros((1, 1)))
            >>> m.observed_names, round(float(m.log_prob(jnp.zeros((2, 1)))), 4)
            (('a', 'b'), -1.8379)
        """
        if graph.obs is None:
            raise ValueError("no node of the graph has an 'obs' kernel")
        obs = graph.obs
        return cls(graph.tree, graph.edges, root_mean, root_cov, obs.Q, obs_matrix=obs.A, obs_offset=obs.b,
                   observed=graph.observed, **kwargs)

    # ------------------------------------------------------------------ API
    def log_prob(self, value):
        r"""$\log p(y)$, the exact evidence of the observed coordinates; leading sample axes allowed.

        Examples:
            >>> import jax.numpy as jnp
            >>> from markovppl.graph import from_newick
            >>> from markovppl.kernels.continuous import BrownianMotion
            >>> m = GaussianTree(from_newick("(A:1,B:1);"), BrownianMotion(jnp.eye(1)), jnp.zeros(1), jnp.zeros((1, 1)),
            ...                  1e-9 * jnp.eye(1))
            >>> round(float(m.log_prob(jnp.zeros((2, 1)))), 4)      # two independent N(0, 1) leaves
            -1.8379
        """
        return self._log_prob(self._check(value))

    def _check(self, value):
        value = jnp.asarray(value)
        if value.shape[-2:] != self.event_shape:
            raise ValueError(f"value must have shape (..., {self.event_shape[0]}, {self.event_shape[1]}) "
                             f"(observed nodes, obs dim), got {value.shape}")
        if v.is_concrete(value) and np.any(np.isinf(np.asarray(value))):
            raise ValueError("value contains infinite entries (use NaN for missing coordinates)")
        return value

    @compiled()
    def _log_prob(self, value):
        return self._per_value(lambda y: self._backward(y).log_evidence, value)

    @compiled()
    def smooth(self, value) -> TreePosterior:
        r"""Exact posterior means and covariances of every node (preorder) given one value.

        Examples:
            >>> import jax.numpy as jnp
            >>> from markovppl.graph import from_newick
            >>> from markovppl.kernels.continuous import BrownianMotion
            >>> m = GaussianTree(from_newick("(A:1,B:1)R;"), BrownianMotion(jnp.eye(1)), jnp.zeros(1), jnp.eye(1), jnp.eye(1))
            >>> post = m.smooth(jnp.array([[2.0], [2.0]]))
            >>> post.means[:, 0].round(4).tolist(), post.covs.shape
            ([1.0, 1.5, 1.5], (3, 1, 1))
        """
        back = self._backward(value)
        marg = tree_gaussian_marginals(self.tree, self._edge_lg(), back.messages, self._law())
        return TreePosterior(back.log_evidence, marg.means, marg.covs, None)

    def log_predictive(self, value) -> jax.Array:
        r"""Sequential predictive log densities $\log p(y_i \mid y_{<i})$ of the observed nodes, in the
        order of ``observed`` (``(num_observed,)``; they sum to ``log_prob``; 0 for a node whose value is
        entirely missing). Costs ``num_observed + 1`` evidence evaluations (vmapped). These are the
        pointwise terms that [`to_inference_data`][markovppl.diagnostics.to_inference_data] stores.

        Examples:
            >>> import jax.numpy as jnp
            >>> from markovppl.graph import from_newick
            >>> from markovppl.kernels.continuous import BrownianMotion
            >>> m = GaussianTree(from_newick("(A:1,B:1);"), BrownianMotion(jnp.eye(1)), jnp.zeros(1), jnp.zeros((1, 1)), jnp.eye(1))
            >>> y = jnp.array([[1.0], [0.5]])
            >>> lp = m.log_predictive(y)
            >>> bool(jnp.allclose(lp.sum(), m.log_prob(y))), lp.shape
            (True, (2,))
        """
        return _prefix_log_predictive(self, self._check(value), jnp.nan)

    @compiled("sample_shape")
    def posterior_sample(self, rng_key, value, sample_shape=()) -> jax.Array:
        r"""Exact joint draws of all node states given the value, ``(*sample_shape, num_nodes, d)``.

        Examples:
            >>> import jax, jax.numpy as jnp
            >>> from markovppl.graph import from_newick
            >>> from markovppl.kernels.continuous import BrownianMotion
            >>> m = GaussianTree(from_newick("(A:1,B:1)R;"), BrownianMotion(jnp.eye(1)), jnp.zeros(1), jnp.eye(1), jnp.eye(1))
            >>> m.posterior_sample(jax.random.PRNGKey(0), jnp.array([[2.0], [2.0]]), (5,)).shape
            (5, 3, 1)
        """
        back = self._backward(value)
        edges, law = self._edge_lg(), self._law()
        shape = tuple(sample_shape)
        size = int(np.prod(shape)) if shape else 1
        noise = jax.random.normal(rng_key, (size, self.tree.num_nodes, self.state_dim), self.root_mean.dtype)
        draw = _guided_draws(self.tree, edges, back.messages, noise, law)
        return draw.reshape(shape + draw.shape[1:])

    @compiled("sample_shape")
    def sample_with_states(self, key, sample_shape=()):
        r"""Simulate ``(states, values)``: all node states ``(*sample, num_nodes, d)`` and the observed
        values ``(*sample, num_observed, m)``.

        Examples:
            >>> import jax, jax.numpy as jnp
            >>> from markovppl.graph import from_newick
            >>> from markovppl.kernels.continuous import BrownianMotion
            >>> m = GaussianTree(from_newick("(A:1,B:1)R;"), BrownianMotion(jnp.eye(2)), jnp.zeros(2), jnp.eye(2), jnp.eye(2))
            >>> x, y = m.sample_with_states(jax.random.PRNGKey(0), (4,))
            >>> x.shape, y.shape
            ((4, 3, 2), (4, 2, 2))
        """
        shape = tuple(sample_shape)
        size = int(np.prod(shape)) if shape else 1
        k_x, k_y = jax.random.split(key)
        n, d = self.tree.num_nodes, self.state_dim
        dtype = self.root_mean.dtype
        none = gm.GaussianMessage(jnp.zeros(n, dtype), jnp.zeros((n, d), dtype), jnp.zeros((n, d, d), dtype))
        edges, law = self._edge_lg(), self._law()
        z = jax.random.normal(k_x, (size, n, d), dtype)
        states = _guided_draws(self.tree, edges, none, z, law)
        obs = self._obs_kernel()
        xs = states[:, np.asarray(self.observed)]
        eps = jax.random.normal(k_y, xs.shape[:-1] + (self.obs_cov.shape[-1],), dtype)
        y = la.matvec(obs.A, xs) + obs.b + la.matvec(la.psd_sqrt(obs.Q), eps)
        return states.reshape(shape + states.shape[1:]), y.reshape(shape + y.shape[1:])

    def sample(self, key, sample_shape=()):
        r"""Simulate observed values ``(*sample_shape, num_observed, m)``.

        Examples:
            >>> import jax, jax.numpy as jnp
            >>> from markovppl.graph import from_newick
            >>> from markovppl.kernels.continuous import BrownianMotion
            >>> m = GaussianTree(from_newick("(A:1,B:1)R;"), BrownianMotion(jnp.eye(1)), jnp.zeros(1), jnp.eye(1), jnp.eye(1))
            >>> m.sample(jax.random.PRNGKey(0)).shape
            (2, 1)
        """
        return self.sample_with_states(key, sample_shape)[1]


# ---------------------------------------------------------------------------------------------- discrete
def stochastic_matrix(kernel) -> jax.Array:
    r"""Transition matrices ``(..., K, K)`` of a finite-state edge kernel: a
    [`Categorical`][markovppl.kernels.finite.Categorical], or any kernel with ``generator`` $Q$ and
    ``duration`` $\ell$ fields (a continuous-time chain over the branch: $e^{\ell Q}$).

    Examples:
        >>> import jax.numpy as jnp
        >>> from typing import NamedTuple
        >>> class Jump(NamedTuple):
        ...     generator: jnp.ndarray
        ...     duration: jnp.ndarray
        >>> P = stochastic_matrix(Jump(jnp.array([[-1.0, 1.0], [1.0, -1.0]]), jnp.array([0.5, 100.0])))
        >>> P.sum(-1).round(6).tolist(), P[1].round(6).tolist()
        ([[1.0, 1.0], [1.0, 1.0]], [[0.5, 0.5], [0.5, 0.5]])
    """
    if isinstance(kernel, Categorical):
        return jnp.asarray(kernel.transition_matrix)
    if hasattr(kernel, "transition_matrix") and not hasattr(kernel, "generator"):
        return jnp.asarray(kernel.transition_matrix)
    if hasattr(kernel, "generator") and hasattr(kernel, "duration"):
        if hasattr(kernel, "transition_matrix") and callable(kernel.transition_matrix):
            return kernel.transition_matrix()
        q, ell = jnp.asarray(kernel.generator), jnp.asarray(kernel.duration)
        scaled = q * ell[..., None, None]
        k = q.shape[-1]
        e = jax.scipy.linalg.expm(scaled.reshape((-1, k, k))).reshape(scaled.shape)
        e = jnp.clip(e, 0.0, None)  # round-off below zero
        return e / jnp.sum(e, -1, keepdims=True)
    raise TypeError(f"no transition matrix for kernel type {type(kernel).__name__}")


def _validate_discrete(kernel):
    if isinstance(kernel, Categorical):
        kernel.validate()
        return
    if hasattr(kernel, "validate"):
        _validate_kernel(kernel)
    q = getattr(kernel, "generator", None)
    if q is not None and v.is_concrete(q):
        q = np.asarray(q, float)
        off = q - np.diag(np.diagonal(q, axis1=-2, axis2=-1)) if q.ndim == 2 else q * (1 - np.eye(q.shape[-1]))
        if np.any(off < 0):
            raise ValueError("generator has negative off-diagonal rates")
        if not np.allclose(q.sum(-1), 0.0, atol=1e-8 * max(1.0, np.abs(q).max())):
            raise ValueError("generator rows must sum to zero")
    ell = getattr(kernel, "duration", None)
    if ell is not None and v.is_concrete(ell) and np.any(np.asarray(ell) < 0):
        raise ValueError("duration must be non-negative")


def _discrete_edges(tree: Tree, edges) -> Categorical:
    if isinstance(edges, EdgeKernels):
        parts = []
        for k, i in zip(edges.kernels, edges.index):
            p = stochastic_matrix(k)
            parts.append(jnp.broadcast_to(p, (len(i),) + p.shape[-2:]))
        return Categorical(scatter_groups(parts, edges.index, tree.num_edges))
    p = stochastic_matrix(edges)
    return Categorical(jnp.broadcast_to(p, (tree.num_edges,) + p.shape[-2:]))


class DiscreteTree(dist.Distribution):
    r"""A finite-state trait on a rooted tree: $x_\text{root} \sim \pi$, $x_v \mid x_{\mathrm{pa}(v)} \sim P_v[x_{\mathrm{pa}(v)}, \cdot]$,
    observed at some nodes either exactly ($y_v = x_v$) or through an emission matrix
    $E[x, y] = p(y_v = y \mid x_v = x)$. ``log_prob`` is Felsenstein's pruning algorithm.

    Args:
        tree: a [`Tree`][markovppl.graph.topology.Tree].
        edges: a [`Categorical`][markovppl.kernels.finite.Categorical] (matrix ``(K, K)`` shared or
            ``(num_edges, K, K)``), a continuous-time kernel with ``generator`` and ``duration`` (the Mk
            model: $P_v = e^{\ell_v Q}$; a ``duration`` of ``None`` takes the tree's branch lengths), or
            [`EdgeKernels`][markovppl.graph.edges.EdgeKernels].
        root_probs: $\pi$ ``(K,)``.
        emission_matrix: optional $E$ ``(K, M)`` or ``(num_observed, K, M)``, row-stochastic
            (default: exact observation, $M = K$).
        observed: names or indices of the observed nodes (default: the leaves in preorder).

    Values are integers ``(num_observed,)`` in ``[0, M)``; a negative entry marks a missing
    (unknown) observation.

    Examples:
        >>> import jax.numpy as jnp
        >>> from markovppl.graph import from_newick
        >>> from markovppl.kernels import Categorical
        >>> tree = from_newick("((A,B),C);")
        >>> P = jnp.array([[0.9, 0.1], [0.2, 0.8]])
        >>> model = DiscreteTree(tree, Categorical(P), jnp.array([0.5, 0.5]))
        >>> y = jnp.array([0, 0, 1])
        >>> round(float(jnp.exp(model.log_prob(y))), 6)
        0.11425

        The Mk model: a generator over every branch (``duration=None``: the tree's branch lengths).

        >>> from markovppl.kernels import JumpProcess
        >>> mk = DiscreteTree(from_newick("((A:1,B:1):0.5,C:1.5);"), JumpProcess(jnp.array([[-1.0, 1.0], [1.0, -1.0]]), None),
        ...                   jnp.array([0.5, 0.5]))
        >>> round(float(jnp.exp(mk.log_prob(y))), 6)
        0.12667
    """

    pytree_data_fields = ("edges", "root_probs", "emission_matrix")
    pytree_aux_fields = ("tree", "observed", "num_symbols")

    def __init__(self, tree: Tree, edges, root_probs, emission_matrix=None, *, observed=None, validate_args=None):
        self.tree = _check_tree(tree)
        self.observed = _observed(tree, observed)
        root_probs = jnp.asarray(root_probs)
        v.check_ndim("root_probs", root_probs, 1, "(K,)")
        v.check_stochastic("root_probs", root_probs)
        edges = _edges_with_durations(tree, edges)
        for k in (edges.kernels if isinstance(edges, EdgeKernels) else (edges,)):
            _validate_discrete(k)
        num_states = root_probs.shape[-1]
        probe = jax.eval_shape(lambda e: _discrete_edges(tree, e), edges)
        if probe.transition_matrix.shape[-1] != num_states:
            raise ValueError(f"edge kernels have {probe.transition_matrix.shape[-1]} states, root_probs {num_states}")
        if emission_matrix is not None:
            emission_matrix = jnp.asarray(emission_matrix)
            v.check_ndim("emission_matrix", emission_matrix, 2, "(K, M)")
            if emission_matrix.shape[-2] != num_states:
                raise ValueError(f"emission_matrix must have {num_states} rows (one per state), got shape {emission_matrix.shape}")
            if emission_matrix.ndim > 2 and emission_matrix.shape[:-2] != (len(self.observed),):
                raise ValueError(f"emission_matrix must be (K, M) or ({len(self.observed)}, K, M), got {emission_matrix.shape}")
            v.check_stochastic("emission_matrix", emission_matrix)
        self.num_symbols = num_states if emission_matrix is None else emission_matrix.shape[-1]
        self.edges, self.root_probs, self.emission_matrix = edges, root_probs, emission_matrix
        super().__init__(batch_shape=(), event_shape=(len(self.observed),), validate_args=validate_args)

    @constraints.dependent_property(is_discrete=True, event_dim=1)
    def support(self):
        return constraints.independent(constraints.integer_interval(-1, self.num_symbols - 1), 1)

    node_names = GaussianTree.node_names
    observed_names = GaussianTree.observed_names

    @property
    def num_states(self) -> int:
        return self.root_probs.shape[-1]

    def _law(self) -> CategoricalLaw:
        return CategoricalLaw(jnp.log(self.root_probs))

    def _edge_cat(self) -> Categorical:
        return _discrete_edges(self.tree, self.edges)

    def _node_messages(self, value):
        value = jnp.asarray(value)
        if value.shape != self.event_shape:
            raise ValueError(f"value must have shape {self.event_shape} (one entry per observed node), got {value.shape}")
        y = value.astype(jnp.int32)
        miss = y < 0
        ys = jnp.where(miss, 0, y)
        k = self.num_states
        dtype = self.root_probs.dtype
        if self.emission_matrix is None:
            lik = jax.nn.one_hot(ys, k, dtype=dtype)
        else:
            e = jnp.broadcast_to(self.emission_matrix, (len(self.observed),) + self.emission_matrix.shape[-2:])
            lik = jnp.take_along_axis(e, ys[:, None, None], -1)[..., 0]
        log_g = jnp.where(miss[:, None], 0.0, jnp.log(lik))
        full = jnp.zeros((self.tree.num_nodes, k), dtype).at[np.asarray(self.observed)].set(log_g)
        return cm.normalize(full)

    def _backward(self, value):
        return tree_backward_filter(self.tree, self._edge_cat(), self._node_messages(value), self._law())

    def _per_value(self, fn, value):
        value = jnp.asarray(value)
        lead = value.shape[:-1]
        out = jax.vmap(fn)(value.reshape((-1,) + value.shape[-1:]))
        return jax.tree.map(lambda a: a.reshape(lead + a.shape[1:]), out)

    def _check(self, value):
        value = jnp.asarray(value)
        if value.shape[-1:] != self.event_shape:
            raise ValueError(f"value must have shape (..., {self.event_shape[0]}) (one entry per observed node), got {value.shape}")
        if v.is_concrete(value):
            x = np.asarray(value)
            if not np.all(np.isfinite(x)) or np.any(x != np.round(x)):
                raise ValueError("observed values must be integers (negative = missing)")
            if np.any(x >= self.num_symbols):
                raise ValueError(f"observed values must be < {self.num_symbols} (negative = missing), got {x.max()}")
        return value

    def log_prob(self, value):
        r"""$\log p(y)$ by pruning; leading sample axes allowed.

        Examples:
            >>> import jax.numpy as jnp
            >>> from markovppl.graph import from_newick
            >>> from markovppl.kernels import Categorical
            >>> m = DiscreteTree(from_newick("(A,B);"), Categorical(jnp.eye(2)), jnp.array([0.3, 0.7]))
            >>> jnp.exp(m.log_prob(jnp.array([[1, 1], [0, 1], [-1, 0]]))).round(4).tolist()
            [0.7, 0.0, 0.3]
        """
        return self._log_prob(self._check(value))

    @compiled()
    def _log_prob(self, value):
        return self._per_value(lambda y: self._backward(y).log_evidence, value)

    def smooth(self, value) -> TreePosterior:
        r"""Exact posterior state probabilities of every node (preorder), ``probs`` ``(num_nodes, K)``.

        Examples:
            >>> import jax.numpy as jnp
            >>> from markovppl.graph import from_newick
            >>> from markovppl.kernels import Categorical
            >>> m = DiscreteTree(from_newick("(A,B)R;"), Categorical(jnp.array([[0.9, 0.1], [0.1, 0.9]])), jnp.array([0.5, 0.5]))
            >>> m.smooth(jnp.array([1, 1])).probs[0].round(4).tolist()       # root given two leaves in state 1
            [0.0122, 0.9878]
        """
        return self._smooth(self._check(value))

    @compiled()
    def _smooth(self, value):
        back = self._backward(value)
        marg = tree_categorical_marginals(self.tree, self._edge_cat(), back.messages, self._law())
        return TreePosterior(back.log_evidence, None, None, marg.probs)

    def log_predictive(self, value) -> jax.Array:
        r"""Sequential predictive log probabilities $\log p(y_i \mid y_{<i})$ of the observed nodes
        (``(num_observed,)``; they sum to ``log_prob``; 0 for a missing entry).

        Examples:
            >>> import jax.numpy as jnp
            >>> from markovppl.graph import from_newick
            >>> from markovppl.kernels import Categorical
            >>> m = DiscreteTree(from_newick("(A,B);"), Categorical(jnp.eye(2)), jnp.array([0.3, 0.7]))
            >>> jnp.exp(m.log_predictive(jnp.array([1, 1]))).round(4).tolist()    # p(A = 1), p(B = 1 | A = 1)
            [0.7, 1.0]
        """
        return _prefix_log_predictive(self, self._check(value), -1)

    def posterior_sample(self, rng_key, value, sample_shape=()) -> jax.Array:
        r"""Exact joint draws of all node states given the value, ``(*sample_shape, num_nodes)``.

        Examples:
            >>> import jax, jax.numpy as jnp
            >>> from markovppl.graph import from_newick
            >>> from markovppl.kernels import Categorical
            >>> m = DiscreteTree(from_newick("(A,B)R;"), Categorical(jnp.array([[0.9, 0.1], [0.1, 0.9]])), jnp.array([0.5, 0.5]))
            >>> m.posterior_sample(jax.random.PRNGKey(0), jnp.array([1, 1]), (3,))[:, 1:].tolist()
            [[1, 1], [1, 1], [1, 1]]
        """
        return self._posterior_sample(rng_key, self._check(value), tuple(sample_shape))

    @compiled("sample_shape")
    def _posterior_sample(self, rng_key, value, sample_shape=()):
        back = self._backward(value)
        edges, law = self._edge_cat(), self._law()
        shape = tuple(sample_shape)
        size = int(np.prod(shape)) if shape else 1
        g = jax.random.gumbel(rng_key, (size, self.tree.num_nodes, self.num_states), self.root_probs.dtype)
        draw = _guided_draws(self.tree, edges, back.messages, g, law)
        return draw.reshape(shape + draw.shape[1:])

    @compiled("sample_shape")
    def sample_with_states(self, key, sample_shape=()):
        r"""Simulate ``(states, values)``: ``(*sample, num_nodes)`` and ``(*sample, num_observed)``.

        Examples:
            >>> import jax, jax.numpy as jnp
            >>> from markovppl.graph import from_newick
            >>> from markovppl.kernels import Categorical
            >>> m = DiscreteTree(from_newick("(A,B)R;"), Categorical(jnp.eye(2)), jnp.array([0.5, 0.5]))
            >>> x, y = m.sample_with_states(jax.random.PRNGKey(0), (4,))
            >>> x.shape, y.shape, bool((x[:, 0] == x[:, 1]).all())       # identity transitions copy the root
            ((4, 3), (4, 2), True)
        """
        shape = tuple(sample_shape)
        size = int(np.prod(shape)) if shape else 1
        k_x, k_y = jax.random.split(key)
        n, k = self.tree.num_nodes, self.num_states
        dtype = self.root_probs.dtype
        none = cm.CategoricalMessage(jnp.zeros((n, k), dtype), jnp.zeros(n, dtype))
        edges, law = self._edge_cat(), self._law()
        g = jax.random.gumbel(k_x, (size, n, k), dtype)
        states = _guided_draws(self.tree, edges, none, g, law)
        xs = states[:, np.asarray(self.observed)]
        if self.emission_matrix is None:
            y = xs
        else:
            e = jnp.broadcast_to(self.emission_matrix, (len(self.observed),) + self.emission_matrix.shape[-2:])
            rows = jnp.take_along_axis(e[None], xs[..., None, None], -2)[..., 0, :]
            y = jax.random.categorical(k_y, jnp.log(rows), -1)
        return states.reshape(shape + states.shape[1:]), y.reshape(shape + y.shape[1:])

    def sample(self, key, sample_shape=()):
        r"""Simulate observed values ``(*sample_shape, num_observed)``.

        Examples:
            >>> import jax, jax.numpy as jnp
            >>> from markovppl.graph import from_newick
            >>> from markovppl.kernels import Categorical
            >>> m = DiscreteTree(from_newick("(A,B)R;"), Categorical(jnp.eye(2)), jnp.array([0.5, 0.5]))
            >>> m.sample(jax.random.PRNGKey(0), (2,)).shape
            (2, 2)
        """
        return self.sample_with_states(key, sample_shape)[1]
