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

    Examples:
        >>> import jax.numpy as jnp
        >>> m = CategoricalMessage(jnp.log(jnp.array([0.25, 1.0])), jnp.log(jnp.array(4.0)))
        >>> jnp.exp(evaluate(m, jnp.arange(2))).round(4).tolist()          # h = 4 * [0.25, 1]
        [1.0, 4.0]
    """

    log_h: jax.Array
    log_norm: jax.Array


def normalize(log_h) -> CategoricalMessage:
    r"""Split an unnormalised log-vector ``(..., K)`` into shape and scale: $\mathrm{log\_norm} = \max_x \log h(x)$.

    Examples:
        >>> import jax.numpy as jnp
        >>> m = normalize(jnp.log(jnp.array([1.0, 4.0])))
        >>> m.log_h.round(4).tolist(), round(float(jnp.exp(m.log_norm)), 4)
        ([-1.3863, 0.0], 4.0)
    """
    shift = jax.lax.stop_gradient(jnp.max(log_h, axis=-1))
    shift = jnp.where(jnp.isfinite(shift), shift, 0.0)
    return CategoricalMessage(log_h - shift[..., None], shift)


def categorical_message(log_h) -> CategoricalMessage:
    r"""The message $h(x) = \exp(\mathrm{log\_h}[x])$, normalised.

    Examples:
        >>> import jax.numpy as jnp
        >>> m = categorical_message(jnp.log(jnp.array([0.5, 2.0])))
        >>> float(evaluate(m, 1))
        0.693...
    """
    return normalize(jnp.asarray(log_h))


def fuse(a: CategoricalMessage, b: CategoricalMessage) -> CategoricalMessage:
    r"""Pointwise product $h_a h_b$ (the fusion rule at a branch point): log-vectors add.

    Examples:
        >>> import jax.numpy as jnp
        >>> m = fuse(categorical_message(jnp.log(jnp.array([0.5, 2.0]))), categorical_message(jnp.log(jnp.array([4.0, 1.0]))))
        >>> [round(float(jnp.exp(evaluate(m, x))), 4) for x in (0, 1)]
        [2.0, 2.0]
    """
    m = normalize(a.log_h + b.log_h)
    return CategoricalMessage(m.log_h, m.log_norm + a.log_norm + b.log_norm)


def evaluate(m: CategoricalMessage, x) -> jax.Array:
    r"""$\log h(x)$ at integer states ``x`` (broadcast against the message's batch shape).

    Examples:
        >>> import jax.numpy as jnp
        >>> m = categorical_message(jnp.log(jnp.array([0.5, 2.0, 1.0])))
        >>> jnp.exp(evaluate(m, jnp.array([0, 1, 2]))).round(4).tolist()
        [0.5, 2.0, 1.0]
    """
    x = jnp.asarray(x)
    shape = jnp.broadcast_shapes(m.log_h.shape[:-1], x.shape)
    log_h = jnp.broadcast_to(m.log_h, shape + m.log_h.shape[-1:])
    return m.log_norm + jnp.take_along_axis(log_h, jnp.broadcast_to(x, shape)[..., None], axis=-1)[..., 0]


def marginalize(m: CategoricalMessage, log_probs) -> jax.Array:
    r"""$\log \sum_x \pi(x) h(x)$ for a prior with log-probabilities ``log_probs`` ``(..., K)`` (the root rule).

    Examples:
        >>> import jax.numpy as jnp
        >>> m = categorical_message(jnp.log(jnp.array([0.5, 2.0])))
        >>> round(float(jnp.exp(marginalize(m, jnp.log(jnp.array([0.5, 0.5]))))), 4)   # (0.5 + 2) / 2
        1.25
    """
    return m.log_norm + logsumexp(log_probs + m.log_h, axis=-1)
