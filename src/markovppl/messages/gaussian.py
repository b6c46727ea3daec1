r"""Gaussian messages in exponent (canonical) form.

$$\log h(x) = c + F^\top x - \tfrac12 x^\top H x,\qquad H \succeq 0,$$

possibly singular ($H = 0$ means "no information", a partial observation gives a low-rank $H$).
The log-constant $c$ is part of the message, so the root message integrated against the prior is the
exact log evidence. $H$ is never inverted: every rule goes through
$K = (Q^{-1} + H)^{-1} = L (I + L^\top H L)^{-1} L^\top$ with $Q = L L^\top$, whose middle matrix is
$\succeq I$ and so always has a Cholesky factor.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .. import _linalg as la

__all__ = [
    "GaussianMessage",
    "gaussian_message",
    "fuse",
    "evaluate",
    "condition",
    "Conditioned",
    "affine_substitute",
    "convolve",
    "marginalize",
]


class GaussianMessage(NamedTuple):
    r"""$\log h(x) = c + F^\top x - \tfrac12 x^\top H x$.

    Attributes:
        c: ``(...)`` log-constant.
        F: ``(..., d)`` linear coefficient (information vector).
        H: ``(..., d, d)`` precision-like matrix, symmetric positive semi-definite.

    Examples:
        >>> import jax.numpy as jnp
        >>> m = GaussianMessage(jnp.array(0.0), jnp.array([1.0]), jnp.array([[2.0]]))
        >>> float(evaluate(m, jnp.array([0.5])))                           # 0 + 0.5 - 0.5 * 2 * 0.25
        0.25
    """

    c: jax.Array
    F: jax.Array
    H: jax.Array


def gaussian_message(c, F, H) -> GaussianMessage:
    r"""Build a message, symmetrising $H$.

    Examples:
        >>> import jax.numpy as jnp
        >>> m = gaussian_message(0.0, jnp.array([1.0]), jnp.array([[2.0]]))
        >>> float(evaluate(m, jnp.array([1.0])))
        0.0
    """
    return GaussianMessage(jnp.asarray(c), jnp.asarray(F), la.symmetrize(jnp.asarray(H)))


def fuse(a: GaussianMessage, b: GaussianMessage) -> GaussianMessage:
    r"""Pointwise product $h_a h_b$: canonical parameters add, $(c_a + c_b, F_a + F_b, H_a + H_b)$.

    Examples:
        >>> import jax.numpy as jnp
        >>> a = gaussian_message(0.0, jnp.array([1.0]), jnp.array([[1.0]]))
        >>> fuse(a, a).H.tolist()
        [[2.0]]
    """
    return GaussianMessage(a.c + b.c, a.F + b.F, a.H + b.H)


def evaluate(m: GaussianMessage, x) -> jax.Array:
    r"""$\log h(x) = c + F^\top x - \tfrac12 x^\top H x$ at ``x`` ``(..., d)``.

    Examples:
        >>> import jax.numpy as jnp
        >>> m = gaussian_message(1.0, jnp.array([2.0, 0.0]), jnp.eye(2))
        >>> float(evaluate(m, jnp.array([1.0, 1.0])))   # 1 + 2 - 1
        2.0
    """
    return m.c + jnp.sum(m.F * x, -1) - 0.5 * la.quad(m.H, x)


class Conditioned(NamedTuple):
    r"""Result of tilting $N(\mu, Q)$ by a message $h$.

    Attributes:
        log_norm: $\log \int h(y)\, N(y; \mu, Q)\, dy$.
        mean: $\mu^\circ = \mu + K(F - H\mu)$, the mean of the tilted law.
        cov: $K = (Q^{-1} + H)^{-1}$, its covariance.
        noise_factor: $L U^{-\top}$ with $K = (L U^{-\top})(L U^{-\top})^\top$, for sampling.

    Examples:
        >>> import jax.numpy as jnp
        >>> c = condition(gaussian_message(0.0, jnp.array([1.0]), jnp.array([[1.0]])), jnp.zeros(1), jnp.eye(1))
        >>> round(float(c.log_norm), 4), c.mean.round(4).tolist(), c.noise_factor.round(4).tolist()
        (-0.0966, [0.5], [[0.7071]])
    """

    log_norm: jax.Array
    mean: jax.Array
    cov: jax.Array
    noise_factor: jax.Array


def _tilt(H, cov_sqrt):
    r"""$K = L S^{-1} L^\top$, $\log\det S$ and $L U^{-\top}$ for $S = I + L^\top H L = UU^\top$."""
    lt = jnp.swapaxes(cov_sqrt, -1, -2)
    s = jnp.eye(cov_sqrt.shape[-1], dtype=H.dtype) + la.matmul(lt, la.matmul(H, cov_sqrt))
    u = la.cholesky(la.symmetrize(s))
    factor = jnp.swapaxes(la.solve_lower(u, lt), -1, -2)  # L U^{-T}, (..., d, r)
    return la.matmul(factor, jnp.swapaxes(factor, -1, -2)), la.chol_logdet(u), factor


def condition(m: GaussianMessage, mean, cov_sqrt) -> Conditioned:
    r"""Tilt $N(\mu, LL^\top)$ by $h$: normaliser, mean and covariance of $h(y)N(y;\mu,LL^\top)$.

    With $S = I + L^\top H L$ and $K = L S^{-1} L^\top$:

    $$\log\!\int h\,dN = c + F^\top\mu - \tfrac12\mu^\top H\mu - \tfrac12\log\det S
      + \tfrac12 (F - H\mu)^\top K (F - H\mu).$$

    Args:
        m: message on $y$, batch ``(...)``.
        mean: $\mu$, ``(..., d)``.
        cov_sqrt: $L$, ``(..., d, r)``, any square root of the covariance (may be rank deficient).

    Returns:
        [`Conditioned`][markovppl.messages.gaussian.Conditioned]: normaliser, tilted mean and covariance.

    Examples:
        >>> import jax.numpy as jnp
        >>> h = gaussian_message(0.0, jnp.array([1.0]), jnp.array([[1.0]]))   # N(y; 1, 1) up to a constant
        >>> c = condition(h, jnp.zeros(1), jnp.eye(1))                          # prior N(0, 1)
        >>> c.mean.tolist(), c.cov.tolist()
        ([0.5], [[0.5]])
    """
    k, logdet_s, factor = _tilt(m.H, cov_sqrt)
    g = m.F - la.matvec(m.H, mean)
    kg = la.matvec(k, g)
    log_norm = (
        m.c + jnp.sum(m.F * mean, -1) - 0.5 * la.quad(m.H, mean) - 0.5 * logdet_s
        + 0.5 * jnp.sum(g * kg, -1)
    )
    return Conditioned(log_norm, mean + kg, k, factor)


def affine_substitute(m: GaussianMessage, A, b) -> GaussianMessage:
    r"""The message $x \mapsto h(Ax + b)$ (exact, no inversion):
    $H' = A^\top H A$, $F' = A^\top(F - Hb)$, $c' = c + F^\top b - \tfrac12 b^\top H b$.

    Examples:
        >>> import jax.numpy as jnp
        >>> m = affine_substitute(gaussian_message(0.0, jnp.zeros(1), jnp.eye(1)), 2.0 * jnp.eye(1), jnp.ones(1))
        >>> m.c.item(), m.F.tolist(), m.H.tolist()
        (-0.5, [-2.0], [[4.0]])
    """
    hb = la.matvec(m.H, b)
    at = jnp.swapaxes(A, -1, -2)
    return GaussianMessage(
        m.c + jnp.sum(m.F * b, -1) - 0.5 * jnp.sum(b * hb, -1),
        la.matvec(at, m.F - hb),
        la.symmetrize(la.matmul(at, la.matmul(m.H, A))),
    )


def convolve(m: GaussianMessage, cov_sqrt) -> GaussianMessage:
    r"""$x \mapsto \int h(y) N(y; x, LL^\top) dy$ as a message in $x$ (the noise half of a pullback).

    With $K = (Q^{-1}+H)^{-1}$: $\bar H = H - HKH$, $\bar F = F - HKF$,
    $\bar c = c - \tfrac12 \log\det(I + L^\top H L) + \tfrac12 F^\top K F$.

    Examples:
        >>> import jax.numpy as jnp
        >>> m = convolve(gaussian_message(0.0, jnp.zeros(1), jnp.eye(1)), jnp.eye(1))   # H = 1, Q = 1
        >>> m.H.tolist()                                                                 # 1 / (1 + 1)
        [[0.5]]
    """
    k, logdet_s, _ = _tilt(m.H, cov_sqrt)
    hk = la.matmul(m.H, k)
    kf = la.matvec(k, m.F)
    return GaussianMessage(
        m.c - 0.5 * logdet_s + 0.5 * jnp.sum(m.F * kf, -1),
        m.F - la.matvec(m.H, kf),
        la.symmetrize(m.H - la.matmul(hk, m.H)),
    )


def marginalize(m: GaussianMessage, mean, cov_sqrt) -> jax.Array:
    r"""$\log \int h(x) N(x; \mu, LL^\top) dx$, e.g. the evidence from the root message.

    Examples:
        >>> import jax.numpy as jnp
        >>> h = gaussian_message(0.0, jnp.zeros(1), jnp.zeros((1, 1)))   # h = 1: no information
        >>> float(marginalize(h, jnp.zeros(1), jnp.eye(1)))
        0.0
    """
    return condition(m, mean, cov_sqrt).log_norm
