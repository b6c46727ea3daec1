r"""Finite-state continuous-time Markov chains (Markov jump processes) over an edge of given duration.

A generator (rate matrix) $Q$ ``(..., K, K)`` has non-negative off-diagonal rates $Q[x, y]$ (the rate of a
jump $x \to y$) and rows summing to zero, $Q[x, x] = -\sum_{y \ne x} Q[x, y]$. Over a duration $\ell$
the transition matrix is $P(\ell) = e^{\ell Q}$, computed by scaling and squaring with a Padé
series of the uniformised chain (see [`expm_generator`][markovppl.kernels.jump.expm_generator]): all
terms are non-negative, so stiff generators keep entrywise accuracy.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import _validation as v
from .time import TimeVarying, is_time_varying

__all__ = ["JumpProcess", "check_generator", "generator_from_rates", "expm_generator"]

MAX_SQUARINGS = 64


def _val(x):
    return getattr(x, "value", x)


def check_generator(name: str, generator) -> None:
    r"""Raise a ``ValueError`` unless ``generator`` ``(..., K, K)`` is a valid rate matrix.

    Valid means: finite, square, non-negative off-diagonal entries and rows summing to zero (to a
    tolerance relative to the largest rate). Skipped under tracing (inside ``jit``/NUTS).

    Examples:
        >>> import numpy as np
        >>> check_generator("Q", np.array([[-1.0, 1.0], [2.0, -2.0]]))        # fine: returns None
        >>> try:
        ...     check_generator("Q", np.array([[-1.0, 1.0], [2.0, -1.0]]))
        ... except ValueError as err:
        ...     print(err)
        Q must have rows summing to zero (a generator: Q[x, x] = -sum of the rates out of x); largest row sum 1
    """
    q = _val(generator)
    v.check_ndim(name, q, 2, "(..., K, K)")
    if np.shape(q)[-1] != np.shape(q)[-2]:
        raise ValueError(f"{name} must be square in its last two axes, got shape {np.shape(q)}")
    if not v.is_concrete(q):
        return
    q = np.asarray(q, dtype=float)
    v.check_finite(name, q)
    k = q.shape[-1]
    off = q[..., ~np.eye(k, dtype=bool)]
    if np.any(off < 0):
        raise ValueError(f"{name} has negative off-diagonal rates (smallest {float(off.min()):.3g}); "
                         "off-diagonal entries of a generator are jump rates and must be >= 0")
    scale = max(1.0, float(np.max(np.abs(q)))) if q.size else 1.0
    sums = q.sum(-1)
    if np.any(np.abs(sums) > 1e-6 * k * scale):
        worst = float(sums.flat[np.argmax(np.abs(sums))])
        raise ValueError(f"{name} must have rows summing to zero (a generator: Q[x, x] = -sum of the rates out of x); "
                         f"largest row sum {worst:.3g}")


def generator_from_rates(rates) -> jax.Array:
    r"""The generator with off-diagonal rates ``rates`` ``(..., K, K)``: $Q[x, x] = -\sum_{y \ne x} \mathrm{rates}[x, y]$.

    The diagonal of ``rates`` is ignored, so any non-negative matrix (e.g. a NumPyro sample with
    positive support) gives a valid generator. Differentiable.

    Examples:
        >>> import jax.numpy as jnp
        >>> generator_from_rates(jnp.array([[0.0, 2.0], [0.5, 9.0]])).tolist()
        [[-2.0, 2.0], [0.5, -0.5]]
    """
    rates = jnp.asarray(rates)
    k = rates.shape[-1]
    off = jnp.where(jnp.eye(k, dtype=bool), 0.0, rates)
    return off - jnp.eye(k, dtype=off.dtype) * jnp.sum(off, -1, keepdims=True)


def _rows_to_one(p):
    # the exact result is stochastic; renormalising stops round-off in the row sums from doubling at
    # every squaring ((1 + d)^(2^s) - 1 ~ 2^s d)
    return p / jnp.sum(p, -1, keepdims=True)


def _scaling(a, theta: float):
    """Common number of halvings s (one for the batch), and per-matrix uniformisation rates m of A / 2^s."""
    mu = jnp.maximum(jnp.max(-jnp.diagonal(a, axis1=-2, axis2=-1), -1), 0.0)  # (N,)
    top = jnp.max(mu, initial=0.0)
    s = jnp.maximum(0.0, jnp.ceil(jnp.log2(jnp.maximum(top, theta) / theta)))
    m = (mu / 2.0**s)[:, None, None]
    return s, m


def _expm_pair(a, e, degree: int, theta: float):
    """e^A and (if ``e`` is not None) its Frechet derivative L(A, E) for a batch ``(N, K, K)`` of essentially
    non-negative matrices (off-diagonal >= 0). Uniformised Taylor series of e^{A / 2^s} = e^{-m} e^{mR}
    (R = I + A / (2^s m) >= 0: no cancellation), then s squarings, (X, L) -> (X X, X L + L X), with one s for
    the whole batch, so the squarings are one batched loop whose unneeded steps are skipped at run time.
    Rows of X are renormalised to one (the exact e^A of a generator is stochastic); L is left as is."""
    k = a.shape[-1]
    eye = jnp.eye(k, dtype=a.dtype)
    s, m = _scaling(a, theta)
    b = a / 2.0**s
    m_safe = jnp.where(m > 0, m, 1.0)
    r = jnp.maximum(eye + b / m_safe, 0.0)  # uniformised jump matrices, non-negative (no -1e-17 from 1 - m/m)
    c = m * r  # = A / 2^s + m I
    g = None if e is None else e / 2.0**s
    ns = jnp.arange(degree, 0, -1, dtype=a.dtype)
    start = jnp.broadcast_to(eye, a.shape)

    if g is None:
        p, _ = jax.lax.scan(lambda p, n: (eye + (c / n) @ p, None), start, ns)
        x, dx = _rows_to_one(jnp.exp(-m) * p), None
    else:
        def _horner(carry, n):  # p <- I + C p / n and its derivative in C (direction G)
            p, dp = carry
            return (eye + (c @ p) / n, (g @ p + c @ dp) / n), None

        (p, dp), _ = jax.lax.scan(_horner, (start, jnp.zeros_like(start)), ns)
        x, dx = _rows_to_one(jnp.exp(-m) * p), jnp.exp(-m) * dp

    def _square(carry, i):
        def sq(xl):
            x, dx = xl
            return _rows_to_one(x @ x), (None if dx is None else x @ dx + dx @ x)

        return jax.lax.cond(i < s, sq, lambda xl: xl, carry), None

    (x, dx), _ = jax.lax.scan(_square, (x, dx), jnp.arange(MAX_SQUARINGS, dtype=s.dtype))
    return x, dx


@partial(jax.custom_vjp, nondiff_argnums=(1,))
def _expm_batch(a, degree: int):
    return _expm_pair(a, None, degree, 0.5)[0]


def _expm_batch_fwd(a, degree):
    return _expm_pair(a, None, degree, 0.5)[0], a


def _expm_batch_bwd(degree, a, p_bar):
    # adjoint of the Frechet derivative: <P_bar, L(A, E)> = <L(A^T, P_bar), E> and L(A^T, F) = L(A, F^T)^T,
    # so one more forward pass of the pair recursion (no reverse pass through the loops)
    _, lt = _expm_pair(a, jnp.swapaxes(p_bar, -1, -2), degree, 0.5)
    return (jnp.swapaxes(lt, -1, -2),)


_expm_batch.defvjp(_expm_batch_fwd, _expm_batch_bwd)


def expm_generator(generator, duration=1.0) -> jax.Array:
    r"""$e^{\ell Q}$ for generators ``(..., K, K)`` and durations ``(...)`` (broadcast), row-stochastic.

    Scaling and squaring on the uniformised chain: with $\mu = \max_x |Q[x, x]|$ and $s$ halvings so
    that $m = \ell\mu / 2^s \le 1/2$, $e^{\ell Q / 2^s} = e^{-m}\sum_{n \le N} m^n R^n / n!$ with
    $R = I + Q/\mu \ge 0$ ($N = 14$ in float64, $8$ in float32: truncation below the unit roundoff),
    then $s$ squarings (at most 64; one $s$ for a whole batch, the largest needed). Every term and product is of non-negative matrices, so there is no
    cancellation: entries keep their relative accuracy even for very stiff generators (rows are
    renormalised to sum to one after every squaring). Reverse-mode differentiable in $\ell$ and $Q$
    (a ``custom_vjp``: the cotangent is the adjoint Fréchet derivative $L(A^\top, \bar P)$, computed by one
    more forward pass of the same recursion on the pair $(e^{A}, L)$, with no reverse pass through its
    loops); forward mode (``jax.jvp``) is not supported.

    Examples:
        >>> import jax.numpy as jnp
        >>> P = expm_generator(jnp.array([[-1e4, 1e4], [1.0, -1.0]]), 10.0)   # stiff: exact limit rows
        >>> P.round(6).tolist()
        [[0.0001, 0.9999], [0.0001, 0.9999]]
    """
    q = jnp.asarray(generator)
    if not jnp.issubdtype(q.dtype, jnp.floating):
        q = q.astype(jnp.result_type(float))
    ell = jnp.asarray(duration, dtype=q.dtype)
    a = ell[..., None, None] * q
    degree = 14 if a.dtype == jnp.float64 else 8
    if a.size == 0:
        return a
    p = _expm_batch(a.reshape((-1,) + a.shape[-2:]), degree)
    return p.reshape(a.shape)


class JumpProcess(NamedTuple):
    r"""Continuous-time Markov chain with generator $Q$ run for a time ``duration`` $\ell$: $P = e^{\ell Q}$.

    A pytree: ``generator`` and ``duration`` are array leaves (both differentiable; new values do not
    retrace). Either may be [`time_varying`][markovppl.kernels.time.time_varying] (one value per step of a
    chain), and leading axes broadcast as batch axes (e.g. one duration per tree edge).

    BFFG rules (registered in ``markovppl.backward.jump`` and ``markovppl.guided.jump``): the pullback of
    a categorical message is $h_\text{parent} = P h_\text{child}$ with its log-constant, and the guided
    kernel is $P^\circ[x, y] \propto P[x, y] h(y)$. Continuous paths between the two ends are drawn by
    [`sample_bridge`][markovppl.jump.bridge.sample_bridge].

    Attributes:
        generator: $Q$ ``(..., K, K)``, rows summing to zero, non-negative off-diagonal rates.
        duration: $\ell \ge 0$ ``(...)``.

    Examples:
        >>> import jax.numpy as jnp
        >>> k = JumpProcess(jnp.array([[-1.0, 1.0], [2.0, -2.0]]), jnp.array(0.5)).validate()
        >>> k.num_states, k.transition_matrix().sum(-1).round(6).tolist()
        (2, [1.0, 1.0])
    """

    generator: jax.Array
    duration: jax.Array

    @property
    def num_states(self) -> int:
        return _val(self.generator).shape[-1]

    def transition_matrix(self):
        r"""$e^{\ell Q}$ ``(..., K, K)``; time-varying (time axis first) if either leaf is time-varying.

        Examples:
            >>> import jax.numpy as jnp
            >>> from markovppl.kernels import time_varying
            >>> k = JumpProcess(jnp.array([[-1.0, 1.0], [2.0, -2.0]]), time_varying(jnp.array([0.1, 1.0, 5.0])))
            >>> k.transition_matrix().value.shape
            (3, 2, 2)
        """
        tv = is_time_varying(self.generator) or is_time_varying(self.duration)
        p = expm_generator(_val(self.generator), _val(self.duration))
        return TimeVarying(p) if tv else p

    def uniformization_rate(self) -> jax.Array:
        r"""$\mu = \max_x |Q[x, x]|$ ``(...)``, the rate of the uniformised chain $e^{\ell Q} = \sum_n
        \mathrm{Pois}(n; \mu\ell) R^n$ with $R = I + Q/\mu$.

        Examples:
            >>> import jax.numpy as jnp
            >>> float(JumpProcess(jnp.array([[-1.0, 1.0], [2.0, -2.0]]), 1.0).uniformization_rate())
            2.0
        """
        q = _val(self.generator)
        return jnp.max(-jnp.diagonal(q, axis1=-2, axis2=-1), -1)

    def validate(self, names=("generator", "duration")) -> "JumpProcess":
        r"""Check the generator (see [`check_generator`][markovppl.kernels.jump.check_generator]) and that
        durations are finite and non-negative; skipped under tracing. Returns ``self``.

        Examples:
            >>> import jax.numpy as jnp
            >>> try:
            ...     JumpProcess(jnp.array([[-1.0, 1.0], [2.0, -2.0]]), -1.0).validate()
            ... except ValueError as err:
            ...     print(err)
            duration must be non-negative (smallest -1)
        """
        check_generator(names[0], self.generator)
        d = _val(self.duration)
        if v.is_concrete(d):
            d = np.asarray(d, dtype=float)
            v.check_finite(names[1], d)
            if d.size and np.min(d) < 0:
                raise ValueError(f"{names[1]} must be non-negative (smallest {float(np.min(d)):.3g})")
        return self
