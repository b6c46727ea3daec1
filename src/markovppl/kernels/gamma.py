r"""Gamma processes: non-decreasing processes with independent Gamma increments.

On a grid of $n$ steps with lengths $\ell_s > 0$ (the array leaf ``duration``), the increment of step $s$ is

$$X_s - X_{s-1} \sim \mathrm{Gamma}(\alpha_s, \beta_s),\qquad \alpha_s = \text{intensity}_s \cdot \ell_s ,$$

with shape $\alpha_s$ (the *shape measure* of the step) and **rate** $\beta_s$, density
$g(x; \alpha, \beta) = \beta^\alpha x^{\alpha - 1} e^{-\beta x} / \Gamma(\alpha)$ on $x > 0$. Every per-step parameter
(``intensity``, ``rate``) is a scalar or has the shape ``(n,)`` of ``duration``: a rate that changes from step to
step is just an ``(n,)`` array. With a constant rate the sum of all increments is
$\mathrm{Gamma}(A, \beta)$, $A = \sum_s \alpha_s$; with a varying rate its law has no closed form, which is
where the guided bridges of [`markovppl.guided.gamma`][markovppl.guided.gamma] come in.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln

from .. import _validation as v

__all__ = ["GammaProcess", "gamma_log_density"]


def gamma_log_density(x, shape, rate):
    r"""$\log g(x; \alpha, \beta) = \alpha\log\beta + (\alpha - 1)\log x - \beta x - \log\Gamma(\alpha)$ (rate
    parametrisation; $-\infty$ for $x \le 0$). Broadcasts.

    Examples:
        >>> import jax.numpy as jnp
        >>> round(float(gamma_log_density(2.0, 1.0, 0.5)), 4)       # Exponential(0.5) at 2: log(0.5) - 1
        -1.6931
    """
    x, shape, rate = jnp.asarray(x), jnp.asarray(shape), jnp.asarray(rate)
    pos = x > 0
    xs = jnp.where(pos, x, 1.0)
    val = shape * jnp.log(rate) + (shape - 1.0) * jnp.log(xs) - rate * xs - gammaln(shape)
    return jnp.where(pos, val, -jnp.inf)


class GammaProcess(NamedTuple):
    r"""A Gamma process on $n$ steps: increments $\mathrm{Gamma}(\text{intensity}\cdot\ell_s,\ \text{rate}_s)$.

    Attributes:
        intensity: shape per unit length, scalar or ``(n,)``, positive.
        rate: $\beta_s$, scalar or ``(n,)``, positive (inverse scale).
        duration: step lengths $\ell_s$ ``(n,)``, positive.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> proc = GammaProcess(1.0, 0.5, jnp.full(4, 0.25)).validate()
        >>> proc.shapes().tolist(), float(proc.total_shape())
        ([0.25, 0.25, 0.25, 0.25], 1.0)
        >>> proc.sample(jax.random.PRNGKey(0), 0.0).shape       # x_0, ..., x_n
        (5,)
    """

    intensity: jax.Array
    rate: jax.Array
    duration: jax.Array

    @property
    def num_steps(self) -> int:
        return int(np.shape(self.duration)[-1])

    def shapes(self) -> jax.Array:
        r"""$\alpha_s = \text{intensity}_s\,\ell_s$, ``(n,)``."""
        return jnp.asarray(self.intensity) * jnp.asarray(self.duration)

    def rates(self) -> jax.Array:
        r"""$\beta_s$ broadcast to ``(n,)``."""
        return jnp.broadcast_to(jnp.asarray(self.rate), np.shape(self.duration)).astype(jnp.result_type(self.duration, float))

    def total_shape(self) -> jax.Array:
        r"""$A = \sum_s \alpha_s$."""
        return jnp.sum(self.shapes())

    def log_density(self, path) -> jax.Array:
        r"""$\sum_s \log g(x_s - x_{s-1}; \alpha_s, \beta_s)$ of a path ``(n+1,)`` (``-inf`` if it is not strictly
        increasing).

        Examples:
            >>> import jax.numpy as jnp
            >>> proc = GammaProcess(1.0, 2.0, jnp.array([1.0]))
            >>> round(float(proc.log_density(jnp.array([0.0, 0.5]))), 6)     # Exponential(2) at 0.5
            -0.306853
        """
        path = jnp.asarray(path)
        return jnp.sum(gamma_log_density(jnp.diff(path), self.shapes(), self.rates()))

    def sample(self, rng_key, x0) -> jax.Array:
        r"""A forward path $x_0, \dots, x_n$ ``(n+1,)`` (increments drawn on the log scale, so tiny shapes
        do not underflow to exact zeros more often than the dtype forces)."""
        shapes = self.shapes()
        log_inc = jax.random.loggamma(rng_key, shapes, dtype=shapes.dtype) - jnp.log(self.rates())
        x0 = jnp.asarray(x0, shapes.dtype)
        return jnp.concatenate([x0[None], x0 + jnp.cumsum(jnp.exp(log_inc))])

    def validate(self) -> "GammaProcess":
        """Check a 1-d ``duration`` and positive, finite, broadcast-compatible ``intensity``, ``rate`` and
        ``duration`` (skipped under tracing)."""
        dur = self.duration
        if np.ndim(dur) != 1 or np.shape(dur)[0] < 1:
            raise ValueError(f"GammaProcess: duration must be a 1-d array of step lengths (n,), n >= 1, got shape {np.shape(dur)}")
        for name, val in (("intensity", self.intensity), ("rate", self.rate)):
            if np.ndim(val) not in (0, 1) or (np.ndim(val) == 1 and np.shape(val) != np.shape(dur)):
                raise ValueError(f"GammaProcess: {name} must be a scalar or have the shape {np.shape(dur)} of duration, "
                                 f"got {np.shape(val)}")
        for name, val in (("duration", dur), ("intensity", self.intensity), ("rate", self.rate)):
            if v.is_concrete(val):
                x = np.asarray(val, float)
                v.check_finite(name, x)
                if np.any(x <= 0):
                    what = "step lengths" if name == "duration" else "shape measure" if name == "intensity" else "rates"
                    raise ValueError(f"GammaProcess: {name} ({what}) must be positive, got minimum {x.min():.4g}")
        return self
