r"""Edge kernels of a tree, grouped by kernel type and stacked along a leading edge axis.

A tree whose edges all carry the same kind of kernel (the common case: one Ornstein–Uhlenbeck law
with a branch length per edge) passes that kernel directly; its leaves broadcast against the edge
axis. Trees with several kinds of edge kernels (e.g. from [`from_networkx`][markovppl.graph.nx.from_networkx])
use [`EdgeKernels`][markovppl.graph.edges.EdgeKernels]: one stacked kernel per type, with the static
indices of the edges it covers. Each group is converted to its tractable form in one batched call
and scattered into the per-edge arrays the level-ordered filter uses.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["EdgeKernels", "stack_kernels", "fill_durations", "scatter_groups"]


@jax.tree_util.register_pytree_node_class
class EdgeKernels:
    r"""Kernels of several types on one tree: ``kernels[g]`` (leading axis ``len(index[g])``) covers
    the edges ``index[g]`` (edge ``e`` enters node ``e + 1``). The indices are static.

    Examples:
        >>> import jax.numpy as jnp
        >>> from markovppl.kernels.continuous import BrownianMotion
        >>> ek = EdgeKernels([BrownianMotion(jnp.ones((2, 1, 1)), jnp.ones(2))], [[0, 2]])
        >>> ek.index, len(jax.tree.leaves(ek))
        (((0, 2),), 2)
    """

    def __init__(self, kernels, index):
        self.kernels = tuple(kernels)
        self.index = tuple(tuple(int(i) for i in idx) for idx in index)
        if len(self.kernels) != len(self.index):
            raise ValueError("EdgeKernels needs one index list per kernel group")

    def tree_flatten(self):
        return self.kernels, self.index

    @classmethod
    def tree_unflatten(cls, index, kernels):
        obj = cls.__new__(cls)
        obj.kernels, obj.index = tuple(kernels), index
        return obj

    def __repr__(self) -> str:
        return "EdgeKernels(" + ", ".join(f"{type(k).__name__} x {len(i)}" for k, i in zip(self.kernels, self.index)) + ")"

    def check_cover(self, num_edges: int) -> None:
        """Every edge covered exactly once."""
        allidx = np.concatenate([np.asarray(i, int) for i in self.index]) if self.index else np.zeros(0, int)
        if np.any((allidx < 0) | (allidx >= num_edges)):
            raise ValueError(f"EdgeKernels: edge indices must lie in [0, {num_edges - 1}]")
        counts = np.bincount(allidx, minlength=num_edges)
        if np.any(counts == 0):
            raise ValueError(f"EdgeKernels: edges {np.flatnonzero(counts == 0)[:5].tolist()} have no kernel")
        if np.any(counts > 1):
            raise ValueError(f"EdgeKernels: edges {np.flatnonzero(counts > 1)[:5].tolist()} have several kernels")


def stack_kernels(kernels):
    """Stack kernels of one type (same pytree structure and leaf shapes) along a new leading axis.

    Examples:
        >>> import jax.numpy as jnp
        >>> from markovppl.kernels.continuous import BrownianMotion
        >>> stack_kernels([BrownianMotion(jnp.eye(1), 1.0), BrownianMotion(jnp.eye(1), 2.0)]).duration.tolist()
        [1.0, 2.0]
    """
    structs = {jax.tree.structure(k) for k in kernels}
    if len(structs) != 1:
        raise ValueError(f"cannot stack kernels with different structures ({type(kernels[0]).__name__}: some fields set, others None?)")
    shapes = {tuple(np.shape(x) for x in jax.tree.leaves(k)) for k in kernels}
    if len(shapes) != 1:
        raise ValueError(f"cannot stack {type(kernels[0]).__name__} kernels whose parameters have different shapes: {sorted(shapes)[:2]}")
    return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *kernels)


def fill_durations(kernel, lengths):
    """``kernel`` with ``duration=lengths`` where the kernel has a ``duration`` field left at ``None``."""
    if hasattr(kernel, "_fields") and "duration" in kernel._fields and kernel.duration is None:
        return kernel._replace(duration=jnp.asarray(lengths))
    return kernel


def scatter_groups(parts, index, num_edges: int):
    """Combine per-group arrays (pytrees with leading axis ``len(index[g])``) into ``num_edges`` rows.

    Examples:
        >>> import jax.numpy as jnp
        >>> scatter_groups([jnp.array([1.0, 3.0]), jnp.array([2.0])], ((0, 2), (1,)), 3).tolist()
        [1.0, 2.0, 3.0]
    """
    def _combine(*arrs):
        out = jnp.zeros((num_edges,) + arrs[0].shape[1:], jnp.result_type(*arrs))
        for a, idx in zip(arrs, index):
            out = out.at[np.asarray(idx, np.int32)].set(a)
        return out

    return jax.tree.map(_combine, *parts)
