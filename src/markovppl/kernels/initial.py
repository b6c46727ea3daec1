r"""Laws of the root (the first observed state of a chain)."""

from __future__ import annotations

from typing import NamedTuple

import jax

__all__ = ["CategoricalLaw", "GaussianLaw"]


class CategoricalLaw(NamedTuple):
    r"""$\pi(x) = \exp(\text{log\_probs}[x])$ over $K$ states, ``log_probs`` ``(..., K)``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from markovppl.backward import marginalize
        >>> from markovppl.messages import categorical_message
        >>> law = CategoricalLaw(jnp.log(jnp.array([0.25, 0.75])))
        >>> h = categorical_message(jnp.log(jnp.array([1.0, 0.0])))      # h = indicator of state 0
        >>> round(float(jnp.exp(marginalize(law, h))), 4)                  # sum_x pi(x) h(x)
        0.25
    """

    log_probs: jax.Array


class GaussianLaw(NamedTuple):
    r"""$N(\mu, LL^\top)$ with ``mean`` ``(..., d)`` and ``cov_sqrt`` $L$ ``(..., d, r)``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from markovppl.backward import marginalize
        >>> from markovppl.messages import gaussian_message
        >>> law = GaussianLaw(jnp.zeros(2), 2.0 * jnp.eye(2))              # N(0, 4 I)
        >>> h = gaussian_message(0.0, jnp.zeros(2), jnp.zeros((2, 2)))      # h = 1: no information
        >>> float(marginalize(law, h)), (law.cov_sqrt @ law.cov_sqrt.T).tolist()
        (0.0, [[4.0, 0.0], [0.0, 4.0]])
    """

    mean: jax.Array
    cov_sqrt: jax.Array
