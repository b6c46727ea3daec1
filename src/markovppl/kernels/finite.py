r"""Finite-state kernels: transition matrices and emissions given as NumPyro distributions."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpyro.distributions as dist

from .. import _validation as v

__all__ = ["Categorical", "Emission"]


def select_row(matrix, x):
    """``matrix[..., x, :]`` for integer states ``x`` ``(*shape)`` against ``matrix`` ``(..., K, K)``."""
    full = jnp.broadcast_to(matrix, jnp.broadcast_shapes(matrix.shape[:-2], x.shape) + matrix.shape[-2:])
    x = jnp.broadcast_to(x, full.shape[:-2])
    return jnp.take_along_axis(full, x[..., None, None], -2)[..., 0, :]


class Categorical(NamedTuple):
    r"""Finite-state transition $P[x, y] = p(x_{t+1} = y \mid x_t = x)$.

    Attributes:
        transition_matrix: ``(..., K, K)`` row-stochastic, or [`time_varying`][markovppl.kernels.time.time_varying] with a
            leading time axis.

    Examples:
        >>> import jax.numpy as jnp
        >>> k = Categorical(jnp.array([[0.9, 0.1], [0.2, 0.8]]))
        >>> k.num_states
        2
    """

    transition_matrix: jax.Array

    @property
    def num_states(self) -> int:
        return getattr(self.transition_matrix, "value", self.transition_matrix).shape[-1]

    def validate(self, name: str = "transition_matrix") -> "Categorical":
        p = getattr(self.transition_matrix, "value", self.transition_matrix)
        v.check_ndim(name, p, 2, "(..., K, K)")
        if p.shape[-1] != p.shape[-2]:
            raise ValueError(f"{name} must be square in its last two axes, got shape {p.shape}")
        v.check_stochastic(name, p)
        return self


class Emission(NamedTuple):
    r"""Observation law $p(y \mid x)$ given by a NumPyro distribution batched over the $K$ states.

    The rightmost batch axis of ``distribution`` indexes the hidden state, e.g.
    ``dist.Poisson(rates)`` with ``rates.shape == (K,)``.

    Examples:
        >>> import jax.numpy as jnp, numpyro.distributions as dist
        >>> Emission(dist.Poisson(jnp.array([1.0, 5.0]))).num_states
        2
    """

    distribution: dist.Distribution

    @property
    def num_states(self) -> int:
        return self.distribution.batch_shape[-1]

    def validate(self, num_states: int, name: str = "emission") -> "Emission":
        d = self.distribution
        if not isinstance(d, dist.Distribution):
            raise TypeError(f"{name} must be a numpyro Distribution batched over states, got {type(d).__name__}")
        if len(d.batch_shape) == 0 or d.batch_shape[-1] != num_states:
            raise ValueError(
                f"{name} must have its rightmost batch axis of size {num_states} (one law per state), "
                f"got batch_shape {d.batch_shape}"
            )
        return self

    def log_likelihood(self, y_time_first, event_ndim: int) -> jax.Array:
        r"""$\log p(y_t \mid x_t = k)$ for ``y_time_first`` ``(T, *batch, *event)`` -> ``(T, *batch, K)``."""
        y = jnp.expand_dims(y_time_first, -1 - event_ndim)
        return self.distribution.log_prob(y)
