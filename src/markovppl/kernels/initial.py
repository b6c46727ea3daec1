r"""Laws of the root (the first observed state of a chain)."""

from __future__ import annotations

from typing import NamedTuple

import jax

__all__ = ["CategoricalLaw", "GaussianLaw"]


class CategoricalLaw(NamedTuple):
    r"""$\pi(x) = \exp(\text{log\_probs}[x])$ over $K$ states, ``log_probs`` ``(..., K)``."""

    log_probs: jax.Array


class GaussianLaw(NamedTuple):
    r"""$N(\mu, LL^\top)$ with ``mean`` ``(..., d)`` and ``cov_sqrt`` $L$ ``(..., d, r)``."""

    mean: jax.Array
    cov_sqrt: jax.Array
