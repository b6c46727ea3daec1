r"""Sequential backward filter on a chain: one reverse ``lax.scan``.

$$h_{T-1} = g_{T-1},\qquad h_t = g_t \cdot (\kappa_t h_{t+1}),\qquad \log p(y) = \log \int h_0\, d\pi_0,$$

where $g_t$ is the leaf message of the observation at step $t$ and $\kappa_t$ the transition
$x_t \to x_{t+1}$. Each stored $h_t$ includes $g_t$; messages are normalised at every step (finite
states) and carry their log-constant, so the evidence is exact and stable for long chains.
"""

from __future__ import annotations

from functools import singledispatch
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ..kernels.time import split_time
from ..messages import categorical as cm
from .rules import add_log_scale, fuse, log_scale, marginalize, pullback

__all__ = ["BackwardResult", "backward_filter"]


class BackwardResult(NamedTuple):
    r"""Output of a backward filter.

    Attributes:
        messages: $h_t(x) = p(y_{t:T-1} \mid x_t)$ for every step, stacked along a leading time axis.
        log_evidence: $\log p(y_{0:T-1})$, shape ``batch``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from markovppl.kernels import Categorical
        >>> from markovppl.kernels.initial import CategoricalLaw
        >>> from markovppl.messages import categorical_message
        >>> leaves = categorical_message(jnp.log(jnp.array([[0.9, 0.2], [0.5, 0.5], [0.1, 0.7]])))
        >>> res = backward_filter(CategoricalLaw(jnp.log(jnp.array([0.5, 0.5]))),
        ...                       Categorical(jnp.array([[0.8, 0.2], [0.3, 0.7]])), leaves)
        >>> res.messages.log_h.shape, res.log_evidence.shape     # h_t for T = 3 steps, K = 2 states
        ((3, 2), ())
    """

    messages: Any
    log_evidence: jax.Array


def _tail(tree):
    return jax.tree.map(lambda x: x[-1], tree)


def _head(tree):
    return jax.tree.map(lambda x: x[:-1], tree)


def _append(init, last):
    return jax.tree.map(lambda a, b: jax.numpy.concatenate([a, b[None]], 0), init, last)


def backward_filter(initial, transition, leaves, *, store_messages: bool = True) -> BackwardResult:
    r"""Backward filter of a chain with ``T`` steps.

    Args:
        initial: law of the first state ([`CategoricalLaw`][markovppl.kernels.initial.CategoricalLaw] or
            [`GaussianLaw`][markovppl.kernels.initial.GaussianLaw]).
        transition: kernel $x_t \to x_{t+1}$; time-varying leaves have ``T - 1`` steps.
        leaves: leaf messages $g_t$ stacked on a leading axis of length ``T``.
        store_messages: keep every $h_t$ (needed for guiding and smoothing); with ``False`` only the
            evidence is computed and ``messages`` is ``None``.

    Returns:
        [`BackwardResult`][markovppl.backward.sequential.BackwardResult] with messages stacked ``(T, ...)``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from markovppl.kernels import Categorical
        >>> from markovppl.kernels.initial import CategoricalLaw
        >>> from markovppl.messages import categorical_message
        >>> leaves = categorical_message(jnp.log(jnp.array([[0.9, 0.2], [0.9, 0.2]])))
        >>> out = backward_filter(CategoricalLaw(jnp.log(jnp.array([0.5, 0.5]))),
        ...                       Categorical(jnp.array([[0.5, 0.5], [0.5, 0.5]])), leaves)
        >>> round(float(jnp.exp(out.log_evidence)), 4)   # (0.55)^2
        0.3025
    """
    local_root, local, increments = _local_messages(leaves, transition, store_messages)
    log_evidence = marginalize(initial, local_root) + jnp.sum(increments, 0)
    if not store_messages:
        return BackwardResult(None, log_evidence)
    scales = jax.lax.associative_scan(jnp.add, increments, reverse=True)  # suffix sums
    return BackwardResult(add_log_scale(local, scales), log_evidence)


@singledispatch
def _local_messages(leaves, transition, store: bool):
    r"""The reverse scan. Messages are carried with their log-constant set aside; the per-step
    increments (``T``, leading axis) are summed afterwards by a tree reduction, which keeps float32
    evidence accurate over long chains. Returns ``(root, all messages or None, increments)`` with
    every message at log-scale 0."""
    xs, kernel_at = split_time(transition)

    def _step(h_next, inputs):
        g_t, xs_t = inputs
        h_t = fuse(g_t, pullback(kernel_at(xs_t), h_next))
        increment = log_scale(h_t)
        h_t = add_log_scale(h_t, -increment)
        return h_t, ((h_t if store else None), increment)

    last = _tail(leaves)
    last_scale = log_scale(last)
    local_last = add_log_scale(last, -last_scale)
    local_root, (earlier, increments) = jax.lax.scan(_step, local_last, (_head(leaves), xs), reverse=True)
    increments = jnp.concatenate([increments, last_scale[None]], 0)
    return local_root, (_append(earlier, local_last) if store else None), increments


@_local_messages.register
def _(leaves: cm.CategoricalMessage, transition, store: bool):
    """Finite states: the same recursion carried in probability space (normalised to max 1), so a step
    is one matrix-vector product with no exp/log; log-messages are formed outside the loop."""
    xs, kernel_at = split_time(transition)
    probs = jnp.exp(leaves.log_h)

    def _step(v_next, inputs):
        e_t, xs_t = inputs
        w = jnp.sum(kernel_at(xs_t).transition_matrix * v_next[..., None, :], -1) * e_t
        top = jnp.max(w, -1)
        v_t = w / top[..., None]
        return v_t, ((v_t if store else None), jnp.log(top))

    v_root, (earlier, log_top) = jax.lax.scan(_step, probs[-1], (probs[:-1], xs), reverse=True)
    increments = jnp.concatenate([log_top + leaves.log_norm[:-1], leaves.log_norm[-1:]], 0)
    local = lambda v: cm.CategoricalMessage(jnp.log(v), jnp.zeros(v.shape[:-1], v.dtype))
    return local(v_root), (local(jnp.concatenate([earlier, probs[-1:]], 0)) if store else None), increments
