"""Eager checks of user parameters. They run on concrete arrays and are skipped under tracing
(inside ``jit``/NUTS), where the same arrays were already checked once at model set-up or come
from constrained NumPyro sites."""

from __future__ import annotations

import jax
import numpy as np

__all__ = ["is_concrete", "check_finite", "check_stochastic", "check_covariance", "check_ndim"]


def is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _value(x):
    return getattr(x, "value", x)


def check_ndim(name: str, x, min_ndim: int, what: str) -> None:
    x = _value(x)
    if np.ndim(x) < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimensions ({what}), got shape {np.shape(x)}")


def check_finite(name: str, x) -> None:
    x = _value(x)
    if is_concrete(x) and not np.all(np.isfinite(np.asarray(x))):
        raise ValueError(f"{name} contains NaN or infinite values")


def check_stochastic(name: str, p, axis_len_name: str = "K") -> None:
    """Non-negative entries summing to one along the last axis."""
    p = _value(p)
    if not is_concrete(p):
        return
    p = np.asarray(p, dtype=float)
    check_finite(name, p)
    if np.any(p < 0):
        raise ValueError(f"{name} has negative probabilities")
    tol = 1e-5 if p.dtype == np.float32 else 1e-6
    sums = p.sum(-1)
    if not np.allclose(sums, 1.0, atol=max(tol, 1e-6 * p.shape[-1])):
        worst = float(np.max(np.abs(sums - 1.0)))
        raise ValueError(f"{name} must sum to one along its last axis (largest deviation {worst:.3g})")


def check_covariance(name: str, cov, *, definite: bool) -> None:
    """Symmetric, and positive definite (``definite``) or semi-definite."""
    cov = _value(cov)
    if not is_concrete(cov):
        return
    c = np.asarray(cov, dtype=float)
    check_finite(name, c)
    if c.shape[-1] != c.shape[-2]:
        raise ValueError(f"{name} must be square, got shape {c.shape}")
    scale = max(1.0, float(np.max(np.abs(c)))) if c.size else 1.0
    if not np.allclose(c, np.swapaxes(c, -1, -2), atol=1e-8 * scale, rtol=1e-6):
        raise ValueError(f"{name} must be symmetric")
    w = np.linalg.eigvalsh(0.5 * (c + np.swapaxes(c, -1, -2)))
    lo = float(np.min(w)) if w.size else 0.0
    if definite and lo <= 1e-12 * scale:
        raise ValueError(f"{name} must be positive definite (smallest eigenvalue {lo:.3g})")
    if not definite and lo < -1e-8 * scale:
        raise ValueError(f"{name} must be positive semi-definite (smallest eigenvalue {lo:.3g})")
