r"""Forward guiding on a chain: sample paths from the guided process and return their log-weights.

$$x_0 \sim \pi^\circ_0 \propto \pi_0 h_0,\qquad x_t \sim \kappa^\circ_{t-1}(x_{t-1}, \cdot) \propto
  \kappa_{t-1}(x_{t-1}, \cdot)\, h_t .$$

For exact kernels every log-weight is zero and the path is an exact draw from $p(x_{0:T-1} \mid y)$.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..kernels.time import split_time
from .rules import guide, guide_initial, noise_shape

__all__ = ["GuidedPath", "forward_guide", "sample_noise"]


class GuidedPath(NamedTuple):
    r"""A guided path and its weights.

    Attributes:
        path: $x_{0:T-1}$, time on the leading axis.
        log_weights: per-step log-weight increments (time on the leading axis; zero for exact kernels).

    Made by [`forward_guide`][markovppl.guided.forward.forward_guide] (its example shows one in use).

    Examples:
        >>> GuidedPath._fields
        ('path', 'log_weights')
    """

    path: jax.Array
    log_weights: jax.Array


def sample_noise(rng_key, initial, num_steps: int, shape=()) -> jax.Array:
    r"""Standard noise for [`forward_guide`][markovppl.guided.forward.forward_guide]: Gumbel for finite states, normal for Gaussian.

    Returns ``(T, *shape, *noise_shape)``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from markovppl.kernels.initial import GaussianLaw
        >>> sample_noise(jax.random.PRNGKey(0), GaussianLaw(jnp.zeros(2), jnp.eye(2)), 5, (3,)).shape
        (5, 3, 2)
    """
    full = (num_steps,) + tuple(shape) + noise_shape(initial)
    if hasattr(initial, "log_probs"):
        return jax.random.gumbel(rng_key, full, dtype=initial.log_probs.dtype)
    return jax.random.normal(rng_key, full, dtype=initial.mean.dtype)


def forward_guide(initial, transition, messages, noise) -> GuidedPath:
    r"""Run the guided forward pass.

    Args:
        initial: law of the first state.
        transition: kernel $x_t \to x_{t+1}$ (time-varying leaves have ``T - 1`` steps).
        messages: backward messages $h_t$ stacked ``(T, *batch, ...)``.
        noise: ``(T, *sample, *batch, *noise_shape)`` from [`sample_noise`][markovppl.guided.forward.sample_noise].

    Returns:
        [`GuidedPath`][markovppl.guided.forward.GuidedPath] with ``path`` ``(T, *sample, *batch[, d])``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from markovppl.backward import backward_filter
        >>> from markovppl.kernels import Categorical
        >>> from markovppl.kernels.initial import CategoricalLaw
        >>> from markovppl.messages import categorical_message
        >>> law = CategoricalLaw(jnp.log(jnp.array([0.5, 0.5])))
        >>> kernel = Categorical(jnp.array([[0.9, 0.1], [0.1, 0.9]]))
        >>> leaves = categorical_message(jnp.log(jnp.array([[0.9, 0.1], [0.9, 0.1], [0.1, 0.9]])))
        >>> back = backward_filter(law, kernel, leaves)
        >>> noise = sample_noise(jax.random.PRNGKey(0), law, 3, (1000,))
        >>> out = forward_guide(law, kernel, back.messages, noise)
        >>> out.path.shape, float(jnp.abs(out.log_weights).max())   # exact kernels: zero weights
        ((3, 1000), 0.0)
    """
    xs, kernel_at = split_time(transition)
    first = jax.tree.map(lambda m: m[0], messages)
    x0, lw0 = guide_initial(initial, first, noise[0])

    def _step(x_prev, inputs):
        h_t, z_t, xs_t = inputs
        x_t, lw_t = guide(kernel_at(xs_t), h_t, x_prev, z_t)
        return x_t, (x_t, lw_t)

    rest = jax.tree.map(lambda m: m[1:], messages)
    _, (xs_out, lws) = jax.lax.scan(_step, x0, (rest, noise[1:], xs))
    path = jnp.concatenate([x0[None], xs_out], 0)
    return GuidedPath(path, jnp.concatenate([lw0[None], lws], 0))
