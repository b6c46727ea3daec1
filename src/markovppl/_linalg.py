r"""Small dense linear algebra for the Gaussian rules, batched over leading axes.

Per-step work in a Kalman-type scan is dominated on CPU by the fixed dispatch cost of tiny
matrix products and LAPACK calls, not by arithmetic. For a static state dimension
$d \le$ ``FUSED_MAX_DIM`` every routine here is therefore written as fused elementwise
broadcast-and-sum products, with the Cholesky factorisation and the triangular solves unrolled
at trace time; above it the library (BLAS/LAPACK) path is used. Both paths compute the same
quantities and are tested against each other.

All functions take arrays with arbitrary leading batch axes: matrices are ``(..., n, n)``,
vectors ``(..., n)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = [
    "FUSED_MAX_DIM",
    "matmul",
    "matvec",
    "quad",
    "cholesky",
    "solve_lower",
    "solve_lower_transpose",
    "chol_logdet",
    "symmetrize",
    "psd_sqrt",
]

FUSED_MAX_DIM = 6


def _fused(n: int, fused: bool | None) -> bool:
    return n <= FUSED_MAX_DIM if fused is None else fused


def matmul(a, b, fused=None):
    """Matrix product ``a @ b`` of ``(..., n, k)`` and ``(..., k, m)``."""
    if _fused(max(a.shape[-1], a.shape[-2]), fused):
        return jnp.sum(a[..., :, :, None] * b[..., None, :, :], axis=-2)
    return jnp.matmul(a, b)


def matvec(a, v, fused=None):
    """Matrix-vector product ``a @ v`` of ``(..., n, k)`` and ``(..., k)``."""
    if _fused(max(a.shape[-1], a.shape[-2]), fused):
        return jnp.sum(a * v[..., None, :], axis=-1)
    return jnp.einsum("...ij,...j->...i", a, v)


def quad(a, v):
    r"""Quadratic form $v^\top a v$ of ``(..., n, n)`` and ``(..., n)``."""
    return jnp.sum(v * matvec(a, v), axis=-1)


def symmetrize(a):
    r"""$\tfrac12(a + a^\top)$."""
    return 0.5 * (a + jnp.swapaxes(a, -1, -2))


def cholesky(s, fused=None):
    """Lower Cholesky factor of a symmetric positive-definite ``(..., n, n)`` matrix."""
    n = s.shape[-1]
    if not _fused(n, fused):
        return jnp.linalg.cholesky(s)
    cols = [[None] * n for _ in range(n)]
    for j in range(n):
        diag = s[..., j, j] - sum(cols[j][k] ** 2 for k in range(j)) if j else s[..., j, j]
        ljj = jnp.sqrt(diag)
        cols[j][j] = ljj
        for i in range(j + 1, n):
            off = s[..., i, j] - sum(cols[i][k] * cols[j][k] for k in range(j)) if j else s[..., i, j]
            cols[i][j] = off / ljj
    zero = jnp.zeros_like(s[..., 0, 0])
    rows = [jnp.stack([cols[i][j] if j <= i else zero for j in range(n)], -1) for i in range(n)]
    return jnp.stack(rows, -2)


def solve_lower(chol, b, fused=None):
    """Solve ``chol @ x = b`` for lower-triangular ``chol``; ``b`` is ``(..., n, m)``."""
    n = chol.shape[-1]
    if not _fused(n, fused):
        return jax.scipy.linalg.solve_triangular(chol, b, lower=True)
    xs = []
    for i in range(n):
        acc = b[..., i, :]
        for k in range(i):
            acc = acc - chol[..., i, k, None] * xs[k]
        xs.append(acc / chol[..., i, i, None])
    return jnp.stack(xs, -2)


def solve_lower_transpose(chol, b, fused=None):
    """Solve ``chol.T @ x = b`` for lower-triangular ``chol``; ``b`` is ``(..., n, m)``."""
    n = chol.shape[-1]
    if not _fused(n, fused):
        return jax.scipy.linalg.solve_triangular(chol, b, lower=True, trans=1)
    xs = [None] * n
    for i in reversed(range(n)):
        acc = b[..., i, :]
        for k in range(i + 1, n):
            acc = acc - chol[..., k, i, None] * xs[k]
        xs[i] = acc / chol[..., i, i, None]
    return jnp.stack(xs, -2)


def chol_logdet(chol):
    """``log det(chol @ chol.T)`` from a Cholesky factor."""
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)


def psd_sqrt(q):
    r"""A square root $L$ with $L L^\top = q$ of a symmetric positive semi-definite matrix.

    Uses the Cholesky factor when it exists and an eigendecomposition otherwise, so that
    singular covariances (e.g. companion-form AR models) are allowed. Tiny negative eigenvalues
    from round-off are clipped to zero.
    """
    q = symmetrize(q)
    w, v = jnp.linalg.eigh(q)
    return v * jnp.sqrt(jnp.clip(w, 0.0, None))[..., None, :]
