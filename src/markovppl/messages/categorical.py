r"""Messages over a finite state space $\{0, \dots, K-1\}$, stored in log space.

A message $h(x) = \exp(\text{log\_norm} + \text{log\_h}[x])$ keeps its shape in ``log_h`` (normalised
so that $\max_x \text{log\_h}[x] = 0$) and its scale in ``log_norm``. Normalising after every
pullback and fusion keeps long chains stable in float32 while the log-constant is carried, never
dropped: the root message evaluated at the prior is the exact evidence.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

__all__ = ["CategoricalMessage", "categorical_message", "normalize", "fuse", "evaluate", "marginalize"]


class CategoricalMessage(NamedTuple):
    r"""$h(x) = \exp(\mathrm{log\_norm} + \mathrm{log\_h}[x])$ over $K$ states.

    Attributes:
        log_h: ``(..., K)`` shape of the message, maximum 0 after [`normalize`][markovppl.messages.categorical.normalize].
        log_norm: ``(...)`` log-scale of the message.
    """

    log_h: jax.Array
    log_norm: jax.Array


def normalize(log_h) -> CategoricalMessage:
    """Split an unnormalised log-vector ``(..., K)`` into shape and scale."""
    shift = jax.lax.stop_gradient(jnp.max(log_h, axis=-1))
    shift = jnp.where(jnp.isfinite(shift), shift, 0.0)
    return CategoricalMessage(log_h - shift[..., None], shift)


def categorical_message(log_h) -> CategoricalMessage:
    r"""The message $h(x) = \exp(\mathrm{log\_h}[x])$, normalised.

    >>> import jax.numpy as jnp
    >>> m = categorical_message(jnp.log(jnp.array([0.5, 2.0])))
    >>> float(evaluate(m, 1))
    0.693...
    """
    return normalize(jnp.asarray(log_h))


def fuse(a: CategoricalMessage, b: CategoricalMessage) -> CategoricalMessage:
    r"""Pointwise product $h_a h_b$ (the fusion rule at a branch point)."""
    m = normalize(a.log_h + b.log_h)
    return CategoricalMessage(m.log_h, m.log_norm + a.log_norm + b.log_norm)


def evaluate(m: CategoricalMessage, x) -> jax.Array:
    r"""$\log h(x)$ at integer states ``x``."""
    x = jnp.asarray(x)
    shape = jnp.broadcast_shapes(m.log_h.shape[:-1], x.shape)
    log_h = jnp.broadcast_to(m.log_h, shape + m.log_h.shape[-1:])
    return m.log_norm + jnp.take_along_axis(log_h, jnp.broadcast_to(x, shape)[..., None], axis=-1)[..., 0]


def marginalize(m: CategoricalMessage, log_probs) -> jax.Array:
    r"""$\log \sum_x \pi(x) h(x)$ for a prior with log-probabilities ``log_probs`` ``(..., K)``."""
    return m.log_norm + logsumexp(log_probs + m.log_h, axis=-1)
