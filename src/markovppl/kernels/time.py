r"""Explicit time variation of kernel parameters.

Leading axes of a parameter are batch axes unless the parameter is wrapped with [`time_varying`][markovppl.kernels.time.time_varying],
in which case its leading axis indexes time steps. Nothing is guessed from shapes.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

__all__ = ["TimeVarying", "time_varying"]


@jax.tree_util.register_pytree_node_class
class TimeVarying:
    r"""A parameter whose leading axis is time: ``value[t]`` is used at step $t$.

    Build it with [`time_varying`][markovppl.kernels.time.time_varying].

    Examples:
        >>> import jax.numpy as jnp
        >>> P = time_varying(jnp.stack([jnp.eye(2), jnp.full((2, 2), 0.5)]))   # P_0, P_1 for T = 3
        >>> isinstance(P, TimeVarying), P
        (True, time_varying(shape=(2, 2, 2)))
    """

    def __init__(self, value):
        self.value = value

    def tree_flatten(self):
        return (self.value,), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(children[0])

    def __repr__(self) -> str:
        return f"time_varying(shape={getattr(self.value, 'shape', None)})"


def time_varying(value) -> TimeVarying:
    r"""Mark a parameter as time-varying along its leading axis.

    For a chain with $T$ observations a transition parameter carries $T - 1$ steps
    (``value[t]`` maps $x_t \to x_{t+1}$).

    Examples:
        >>> import jax.numpy as jnp
        >>> P = time_varying(jnp.stack([jnp.eye(2), jnp.full((2, 2), 0.5)]))
        >>> P.value.shape
        (2, 2, 2)
    """
    value = jnp.asarray(value)
    if value.ndim == 0:
        raise ValueError("time_varying: a time-varying parameter needs a leading time axis, got a scalar")
    return TimeVarying(value)


def is_time_varying(x) -> bool:
    return isinstance(x, TimeVarying)


def map_value(fn: Callable, x):
    """Apply ``fn`` to a parameter, keeping a [`TimeVarying`][markovppl.kernels.time.TimeVarying] wrapper if present."""
    return TimeVarying(fn(x.value)) if isinstance(x, TimeVarying) else fn(x)


def num_time_steps(tree) -> int | None:
    """Length of the time axis shared by the time-varying leaves of ``tree`` (``None`` if none)."""
    lengths = {leaf.value.shape[0] for leaf in jax.tree.leaves(tree, is_leaf=is_time_varying) if is_time_varying(leaf)}
    if len(lengths) > 1:
        raise ValueError(f"time-varying parameters disagree on their number of steps: {sorted(lengths)}")
    return lengths.pop() if lengths else None


def split_time(tree) -> tuple[list, Callable[[list], Any]]:
    """Split ``tree`` into the stacked time-varying arrays and a function rebuilding one step.

    ``xs, at = split_time(kernel)``; inside a ``lax.scan`` over ``xs``, ``at(xs_t)`` is the kernel of
    that step with ordinary arrays as leaves.
    """
    leaves, treedef = jax.tree.flatten(tree, is_leaf=is_time_varying)
    idx = [i for i, leaf in enumerate(leaves) if is_time_varying(leaf)]
    xs = [leaves[i].value for i in idx]

    def at(xs_t):
        new = list(leaves)
        for i, x in zip(idx, xs_t):
            new[i] = x
        return jax.tree.unflatten(treedef, new)

    return xs, at


def stack_steps(tree, num_steps: int):
    """Materialise every leaf with a leading time axis of length ``num_steps`` (parallel scans)."""
    def _leaf(leaf):
        if is_time_varying(leaf):
            return leaf.value
        leaf = jnp.asarray(leaf)
        return jnp.broadcast_to(leaf, (num_steps,) + leaf.shape)

    return jax.tree.map(_leaf, tree, is_leaf=is_time_varying)
