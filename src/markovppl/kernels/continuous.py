r"""Continuous-time Gaussian edge kernels: Brownian motion and the multivariate Ornstein–Uhlenbeck process
over a branch (or time step) of length $\ell$.

Both are exact linear-Gaussian transitions, so they reduce to
[`LinearGaussian`][markovppl.kernels.gaussian.LinearGaussian] through
[`transition`][markovppl.kernels.continuous.transition] and use its pullback and guiding rules. The branch
length is the array leaf ``duration`` of the kernel pytree: it can be a NumPyro parameter with
gradients, and changing its value does not retrace compiled code.

Ornstein–Uhlenbeck, $dX = -B(X - \mu)\,dt + \sigma\,dW$ with diffusion covariance
$\Sigma = \sigma\sigma^\top$:

$$X_\ell \mid X_0 = x \sim N\big(e^{-B\ell}(x - \mu) + \mu,\; Q_\ell\big),\qquad
  Q_\ell = \int_0^\ell e^{-Bu}\,\Sigma\,e^{-B^\top u}\,du ,$$

for any square drift $B$ (not necessarily diagonal, symmetric or stable). $Q_\ell$ is computed by
scaling and squaring on the pair $(e^{-Bh}, Q_h)$: the Van Loan block exponential
$\exp\begin{pmatrix} -Bh & \Sigma h \\ 0 & B^\top h\end{pmatrix}$ gives the pair for a short step
$h = \ell / 2^s$ with $(\|B\| + \|\Sigma\|)h \le 1/2$ (a short Taylor series is exact to round-off
there, and no exponential grows), and the exact doubling
$Q_{2h} = e^{-Bh} Q_h e^{-B^\top h} + Q_h$ adds positive semi-definite terms only, so there is no
cancellation for long branches (unlike $\Sigma_\infty - e^{-B\ell}\Sigma_\infty e^{-B^\top\ell}$) and no
overflow (unlike the Van Loan exponential over the whole branch).
"""

from __future__ import annotations

from functools import singledispatch
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from .. import _linalg as la
from .. import _validation as v
from .gaussian import LinearGaussian

__all__ = ["BrownianMotion", "OrnsteinUhlenbeck", "transition", "ou_transition"]

MAX_DOUBLINGS = 48
TAYLOR_DEGREE = 14


class BrownianMotion(NamedTuple):
    r"""$X_\ell \mid X_0 = x \sim N(x + \ell\,\text{trend},\; \ell\,\Sigma)$.

    Attributes:
        diffusion_cov: $\Sigma$, ``(..., d, d)`` positive semi-definite (the covariance per unit length).
        duration: $\ell \ge 0$, ``(...)`` (e.g. one entry per edge of a tree); ``None`` on a tree means
            the tree's fixed branch lengths.
        trend: optional drift per unit length, ``(..., d)`` (default 0).

    Examples:
        >>> import jax.numpy as jnp
        >>> k = transition(BrownianMotion(2.0 * jnp.eye(1), jnp.array([0.5, 3.0])))
        >>> k.Q[:, 0, 0].tolist(), k.A[:, 0, 0].tolist()
        ([1.0, 6.0], [1.0, 1.0])
    """

    diffusion_cov: jax.Array
    duration: Optional[jax.Array] = None
    trend: Optional[jax.Array] = None

    def validate(self) -> "BrownianMotion":
        """Check shapes, a positive semi-definite ``diffusion_cov`` and non-negative durations."""
        v.check_ndim("diffusion_cov", self.diffusion_cov, 2, "(..., d, d)")
        v.check_covariance("diffusion_cov", self.diffusion_cov, definite=False)
        if self.duration is not None:
            _check_duration(self.duration)
        return self


class OrnsteinUhlenbeck(NamedTuple):
    r"""$dX = -B(X - \mu)\,dt + \sigma\,dW$ over a length $\ell$, $\Sigma = \sigma\sigma^\top$.

    Attributes:
        drift: $B$, ``(..., d, d)``, any real matrix (stable when its eigenvalues have positive real
            parts; then $\mu$ is the stationary mean).
        mean: $\mu$, ``(..., d)``.
        diffusion_cov: $\Sigma$, ``(..., d, d)`` positive semi-definite.
        duration: $\ell \ge 0$, ``(...)``; ``None`` on a tree means the tree's fixed branch lengths.

    Examples:
        >>> import jax.numpy as jnp
        >>> k = transition(OrnsteinUhlenbeck(jnp.eye(1), jnp.zeros(1), 2.0 * jnp.eye(1), jnp.array(50.0)))
        >>> round(float(k.Q[0, 0]), 6), float(k.A[0, 0]) < 1e-20      # stationary variance Sigma / (2B) = 1
        (1.0, True)
    """

    drift: jax.Array
    mean: jax.Array
    diffusion_cov: jax.Array
    duration: Optional[jax.Array] = None

    def validate(self) -> "OrnsteinUhlenbeck":
        """Check shapes, a positive semi-definite ``diffusion_cov`` and non-negative durations."""
        v.check_ndim("drift", self.drift, 2, "(..., d, d)")
        v.check_ndim("mean", self.mean, 1, "(..., d)")
        v.check_ndim("diffusion_cov", self.diffusion_cov, 2, "(..., d, d)")
        d = np.shape(self.drift)[-1]
        if np.shape(self.drift)[-2] != d or np.shape(self.mean)[-1] != d or np.shape(self.diffusion_cov)[-2:] != (d, d):
            raise ValueError(
                f"OrnsteinUhlenbeck: drift {np.shape(self.drift)}, mean {np.shape(self.mean)} and diffusion_cov "
                f"{np.shape(self.diffusion_cov)} must be (..., d, d), (..., d), (..., d, d)"
            )
        v.check_finite("drift", self.drift)
        v.check_finite("mean", self.mean)
        v.check_covariance("diffusion_cov", self.diffusion_cov, definite=False)
        if self.duration is not None:
            _check_duration(self.duration)
        return self


def _check_duration(duration) -> None:
    if v.is_concrete(duration):
        x = np.asarray(duration, float)
        v.check_finite("duration", x)
        if np.any(x < 0):
            raise ValueError(f"duration must be non-negative, got minimum {x.min():.4g}")


def ou_transition(drift, diffusion_cov, duration):
    r"""$(e^{-B\ell}, Q_\ell)$ for batched $B$ ``(..., d, d)``, $\Sigma$ ``(..., d, d)``, $\ell$ ``(...)``.

    Univariate drifts use the closed form $Q = \Sigma(1 - e^{-2b\ell})/(2b)$ (limit $\ell\Sigma$ at
    $b = 0$); otherwise scaling and squaring on the Van Loan pair (module docstring).

    Examples:
        >>> import jax.numpy as jnp
        >>> B = jnp.array([[1.0, 0.5], [0.0, 2.0]])
        >>> phi, q = ou_transition(B, jnp.eye(2), jnp.array(0.3))
        >>> phi.shape, bool(jnp.allclose(q, q.T))
        ((2, 2), True)
    """
    drift, diffusion_cov, duration = jnp.asarray(drift), jnp.asarray(diffusion_cov), jnp.asarray(duration)
    d = drift.shape[-1]
    batch = jnp.broadcast_shapes(drift.shape[:-2], diffusion_cov.shape[:-2], duration.shape)
    drift = jnp.broadcast_to(drift, batch + (d, d))
    diffusion_cov = jnp.broadcast_to(diffusion_cov, batch + (d, d))
    ell = jnp.broadcast_to(duration, batch)
    if d == 1:
        b = drift[..., 0, 0]
        x = b * ell
        small = jnp.abs(x) < 1e-6
        b_safe = jnp.where(small, 1.0, b)
        # -expm1(-2x)/(2b); series ell * (1 - x + 2x^2/3) near 0
        q_scale = jnp.where(small, ell * (1.0 - x + 2.0 * x * x / 3.0), -jnp.expm1(-2.0 * b_safe * ell) / (2.0 * b_safe))
        return jnp.exp(-x)[..., None, None], diffusion_cov * q_scale[..., None, None]
    inf_norm = lambda m: jnp.maximum(jnp.abs(m).sum(-1).max(-1), jnp.abs(m).sum(-2).max(-1))
    scaled = jax.lax.stop_gradient((inf_norm(drift) + inf_norm(diffusion_cov)) * ell)
    s = jnp.clip(jnp.ceil(jnp.log2(jnp.maximum(scaled, 1e-300) / 0.5)), 0, MAX_DOUBLINGS)
    h = (ell / jnp.exp2(s))[..., None, None]
    zeros = jnp.zeros_like(drift)
    block = jnp.concatenate([
        jnp.concatenate([-drift * h, diffusion_cov * h], -1),
        jnp.concatenate([zeros, jnp.swapaxes(drift, -1, -2) * h], -1),
    ], -2)
    e = _expm_taylor(block)
    phi = e[..., :d, :d]
    q = la.symmetrize(la.matmul(e[..., :d, d:], jnp.swapaxes(phi, -1, -2)))

    def _double(carry, k):
        phi, q = carry
        active = (k < s)[..., None, None]
        q2 = la.symmetrize(la.matmul(phi, la.matmul(q, jnp.swapaxes(phi, -1, -2))) + q)
        return (jnp.where(active, la.matmul(phi, phi), phi), jnp.where(active, q2, q)), None

    (phi, q), _ = jax.lax.scan(_double, (phi, q), jnp.arange(MAX_DOUBLINGS, dtype=s.dtype))
    return phi, q


def _expm_taylor(m, degree: int = TAYLOR_DEGREE):
    r"""$e^M$ by a Horner-evaluated Taylor polynomial; accurate to round-off for $\|M\|_\infty \le 1/2$."""
    eye = jnp.eye(m.shape[-1], dtype=m.dtype)
    out = eye
    for k in range(degree, 0, -1):
        out = eye + la.matmul(m, out) / k
    return out


@singledispatch
def transition(kernel) -> LinearGaussian:
    r"""The exact linear-Gaussian transition $N(Ax + b, Q)$ of a Gaussian edge kernel (batched).

    Examples:
        >>> import jax.numpy as jnp
        >>> k = transition(OrnsteinUhlenbeck(jnp.eye(1), jnp.ones(1), jnp.eye(1), jnp.array(0.0)))
        >>> k.A.tolist(), k.b.tolist(), k.Q.tolist()                   # a zero-length branch is the identity
        ([[1.0]], [0.0], [[0.0]])
    """
    raise TypeError(f"no linear-Gaussian transition for kernel type {type(kernel).__name__}")


@transition.register
def _(kernel: LinearGaussian) -> LinearGaussian:
    return kernel


@transition.register
def _(kernel: BrownianMotion) -> LinearGaussian:
    sigma = jnp.asarray(kernel.diffusion_cov)
    ell = jnp.asarray(kernel.duration)
    d = sigma.shape[-1]
    q = sigma * ell[..., None, None]
    batch = q.shape[:-2]
    a = jnp.broadcast_to(jnp.eye(d, dtype=q.dtype), batch + (d, d))
    b = jnp.zeros(batch + (d,), q.dtype) if kernel.trend is None else jnp.asarray(kernel.trend) * ell[..., None]
    return LinearGaussian(a, jnp.broadcast_to(b, batch + (d,)), q)


@transition.register
def _(kernel: OrnsteinUhlenbeck) -> LinearGaussian:
    phi, q = ou_transition(kernel.drift, kernel.diffusion_cov, kernel.duration)
    d = phi.shape[-1]
    b = jnp.asarray(kernel.mean) - la.matvec(phi, jnp.broadcast_to(kernel.mean, phi.shape[:-2] + (d,)))
    return LinearGaussian(phi, b, q)
