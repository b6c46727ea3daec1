r"""The backward filter on a rooted tree, level by level.

For every node $v$ (in the preorder numbering of [`Tree`][markovppl.graph.topology.Tree]) the filter
computes the fused message

$$h_v(x) = g_v(x, y_v) \prod_{c \in \mathrm{children}(v)} (\kappa_{v\to c}\, h_c)(x),$$

where $g_v$ is the observation factor at $v$ ($h \equiv 1$ where $v$ is unobserved). At the root,
$\log p(y) = \log\int h_\text{root}\,d\pi$; with Gaussian edges this is the backward information filter
on the tree, with finite-state edges Felsenstein's pruning algorithm.

Execution follows the tree's static plan ([`Tree.schedule`][markovppl.graph.topology.Tree.schedule]):
one ``lax.scan`` over its rows; a scan step gathers the messages of a chunk of nodes of one level,
pulls them back through their (batched) edge kernels with the ordinary
[`pullback`][markovppl.backward.rules.pullback] rule, and fuses them into their parents with one
scatter-add (a segment sum over parents). There is no Python loop over nodes in traced code.
"""

from __future__ import annotations

from functools import singledispatch
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..graph.topology import Tree
from ..kernels.diffusion import Diffusion
from ..messages import categorical as cm
from ..messages import gaussian as gm
from .rules import marginalize, pullback

__all__ = ["TreeMessages", "tree_backward_filter", "padded_parents", "edge_index", "per_edge"]


class TreeMessages(NamedTuple):
    r"""Output of [`tree_backward_filter`][markovppl.backward.tree.tree_backward_filter].

    Attributes:
        messages: fused message $h_v$ at every node, leading axis ``num_nodes`` (preorder).
        log_evidence: $\log \int h_\text{root}\,d\pi$ (or $\log h_\text{root}(x_0)$ for a fixed root).

    Examples:
        >>> TreeMessages._fields
        ('messages', 'log_evidence')
    """

    messages: object
    log_evidence: jax.Array


def padded_parents(tree: Tree) -> np.ndarray:
    """``(n + 1,)`` parents with the root and the dummy node ``n`` pointing at the dummy."""
    n = tree.num_nodes
    return np.concatenate([np.where(tree.parent < 0, n, tree.parent), [n]]).astype(np.int32)


def edge_index(idx):
    """Edge entering each node of ``idx`` (``v - 1``); root and padding get edge 0 (results discarded)."""
    return jnp.maximum(idx - 1, 0)


def per_edge(rule, kernel, *args):
    """Apply a kernel rule to a chunk of edges. Rules of most kernels broadcast over a leading edge axis;
    those of a [`Diffusion`][markovppl.kernels.diffusion.Diffusion] (a time grid per edge), or of any kernel
    with a true ``one_edge_rules`` attribute, take one edge and are vmapped."""
    if isinstance(kernel, Diffusion) or getattr(kernel, "one_edge_rules", False):
        return jax.vmap(rule)(kernel, *args)
    return rule(kernel, *args)


@singledispatch
def _finish(message):
    """A fused sum of messages as a proper message (normalised for finite states)."""
    return message


@_finish.register
def _(message: cm.CategoricalMessage):
    m = cm.normalize(message.log_h)
    return cm.CategoricalMessage(m.log_h, m.log_norm + message.log_norm)


def _pad(tree_of_arrays):
    return jax.tree.map(lambda a: jnp.concatenate([a, jnp.zeros_like(a[:1])], 0), tree_of_arrays)


def tree_backward_filter(tree: Tree, edges, node_messages, root_law=None, root_value=None) -> TreeMessages:
    r"""Run the backward filter on ``tree``.

    Args:
        tree: the topology.
        edges: a kernel with a leading edge axis of size ``num_nodes - 1`` on every leaf (edge
            $v - 1$ enters node $v$), e.g. a prepared
            [`LinearGaussian`][markovppl.kernels.gaussian.LinearGaussian] or a
            [`Categorical`][markovppl.kernels.finite.Categorical].
        node_messages: observation messages $g_v$, leading axis ``num_nodes`` (the "no information"
            message at unobserved nodes).
        root_law: law of the root state (``GaussianLaw`` / ``CategoricalLaw``), or
        root_value: a fixed root state.

    Returns:
        [`TreeMessages`][markovppl.backward.tree.TreeMessages].

    Examples:
        >>> import jax.numpy as jnp
        >>> from markovppl.graph import from_newick
        >>> from markovppl.kernels import LinearGaussian
        >>> from markovppl.kernels.initial import GaussianLaw
        >>> from markovppl.backward import leaf
        >>> t = from_newick("(A:1,B:1);")                      # root -> A, root -> B
        >>> edges = LinearGaussian(jnp.ones((2, 1, 1)), jnp.zeros((2, 1)), jnp.ones((2, 1, 1))).prepared()
        >>> obs = LinearGaussian(jnp.eye(1), jnp.zeros(1), 1e-12 * jnp.eye(1))
        >>> g = leaf(obs, jnp.array([[0.0], [0.0], [0.0]]), jnp.array([[True], [False], [False]]))
        >>> out = tree_backward_filter(t, edges, g, GaussianLaw(jnp.zeros(1), jnp.zeros((1, 1))))
        >>> round(float(out.log_evidence), 4)                  # two independent N(0, 1) leaves at 0
        -1.8379
    """
    if tree.num_nodes < 2:
        raise ValueError("the tree needs at least one edge")
    n = tree.num_nodes
    parents = jnp.asarray(padded_parents(tree))
    acc = _pad(node_messages)
    zero = jax.tree.map(lambda a: jnp.zeros_like(a[0]), acc)

    def _level(acc, idx):
        m = _finish(jax.tree.map(lambda a: a[idx], acc))
        kernel = jax.tree.map(lambda a: a[edge_index(idx)], edges)
        pulled = per_edge(pullback, kernel, m)
        acc = jax.tree.map(lambda a, p: a.at[parents[idx]].add(p), acc, pulled)
        return jax.tree.map(lambda a, z: a.at[n].set(z), acc, zero), None

    acc, _ = jax.lax.scan(_level, acc, jnp.asarray(tree.schedule()))
    messages = _finish(jax.tree.map(lambda a: a[:n], acc))
    root = jax.tree.map(lambda a: a[0], messages)
    if root_value is not None:
        log_ev = _evaluate(root, root_value)
    else:
        log_ev = marginalize(root_law, root)
    return TreeMessages(messages, log_ev)


@singledispatch
def _evaluate(message, x):
    raise TypeError(f"unknown message type {type(message).__name__}")


_evaluate.register(gm.GaussianMessage, gm.evaluate)
_evaluate.register(cm.CategoricalMessage, cm.evaluate)
