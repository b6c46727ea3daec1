r"""Linear-Gaussian kernels $y \mid x \sim N(Ax + b, Q)$ (transitions and observations)."""

from __future__ import annotations

from typing import NamedTuple, Optional

import jax

from .. import _linalg as la
from .. import _validation as v
from .time import map_value

__all__ = ["LinearGaussian"]


def _val(x):
    return getattr(x, "value", x)


class LinearGaussian(NamedTuple):
    r"""The kernel $y \mid x \sim N(A x + b, Q)$, $A$ of shape ``(m, d)``.

    Used for transitions ($m = d$) and for observations (any $m$, so partial observation is allowed).
    $Q$ may be singular for transitions. Any field may be [`time_varying`][markovppl.kernels.time.time_varying].

    Attributes:
        A: ``(..., m, d)``.
        b: ``(..., m)``.
        Q: ``(..., m, m)`` covariance.
        cov_sqrt: optional cached $L$ with $LL^\top = Q$ (filled by [`prepared`][markovppl.kernels.gaussian.LinearGaussian.prepared]).

    Examples:
        >>> import jax.numpy as jnp
        >>> k = LinearGaussian(jnp.eye(2), jnp.zeros(2), jnp.eye(2))
        >>> k.out_dim, k.in_dim
        (2, 2)
    """

    A: jax.Array
    b: jax.Array
    Q: jax.Array
    cov_sqrt: Optional[jax.Array] = None

    @property
    def in_dim(self) -> int:
        return _val(self.A).shape[-1]

    @property
    def out_dim(self) -> int:
        return _val(self.A).shape[-2]

    def prepared(self) -> "LinearGaussian":
        """The same kernel with the square root of ``Q`` computed once (vectorised over time)."""
        return self._replace(cov_sqrt=map_value(la.psd_sqrt, self.Q))

    def validate(self, names=("A", "b", "Q"), *, definite: bool = False) -> "LinearGaussian":
        a, b, q = (_val(x) for x in (self.A, self.b, self.Q))
        v.check_ndim(names[0], a, 2, "(..., m, d)")
        v.check_ndim(names[1], b, 1, "(..., m)")
        v.check_ndim(names[2], q, 2, "(..., m, m)")
        m = a.shape[-2]
        if b.shape[-1] != m:
            raise ValueError(f"{names[1]} must have last dimension {m} to match {names[0]} {a.shape}, got {b.shape}")
        if q.shape[-2:] != (m, m):
            raise ValueError(f"{names[2]} must have shape (..., {m}, {m}) to match {names[0]} {a.shape}, got {q.shape}")
        v.check_finite(names[0], a)
        v.check_finite(names[1], b)
        v.check_covariance(names[2], q, definite=definite)
        return self
