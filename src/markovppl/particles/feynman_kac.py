r"""Feynman–Kac models: the input of the particle filter.

A Feynman–Kac model is a Markov chain $M_0(dx_0), M_t(x_{t-1}, dx_t)$ and potentials
$G_t(x_{t-1}, x_t)$ for $t = 0, \dots, T-1$; it defines the path law
$Q_T(dx_{0:T-1}) \propto M_0(dx_0) G_0(x_0) \prod_{t \ge 1} M_t(x_{t-1}, dx_t) G_t(x_{t-1}, x_t)$
with normaliser $Z_T$. The **bootstrap** model of a state-space model takes $M$ = the prior
dynamics and $G_t = p(y_t \mid x_t)$, so that $Q_T$ is the smoothing law and $Z_T = p(y_{0:T-1})$.

Backward-sampling methods (conditional SMC with backward sampling, PaRIS) also need the transition
density $m_t(x_{t-1}, x_t)$ of $M_t$: the backward kernel weights a predecessor $x_{t-1}^j$ of $x_t$ by
$W_{t-1}^j\, m_t(x_{t-1}^j, x_t)\, G_t(x_{t-1}^j, x_t)$.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import _linalg as la
from .._validation import is_concrete
from ..kernels.time import is_time_varying

__all__ = ["FeynmanKac", "bootstrap_lgssm", "bootstrap_hmm"]

_LOG_2PI = float(jnp.log(2.0 * jnp.pi))


class FeynmanKac(NamedTuple):
    r"""A Feynman–Kac model as pure functions (vectorised over the ``N`` particles).

    $$Z_T = \int M_0(dx_0)\, G_0(x_0, x_0) \prod_{t=1}^{T-1} M_t(x_{t-1}, dx_t)\, G_t(x_{t-1}, x_t).$$

    Attributes:
        m0: ``m0(rng_key, num_particles) -> x0``, ``N`` draws from $M_0$ (leading axis ``N``).
        m: ``m(rng_key, t, x_prev) -> x_t``, one draw from $M_t(x_{t-1}^i, \cdot)$ per particle.
        log_g: ``log_g(t, x_prev, x_t) -> (N,)`` log-potentials $\log G_t(x_{t-1}^i, x_t^i)$. At
            $t = 0$ there is no predecessor and ``x_prev`` is ``x_0`` itself.
        log_m: optional ``log_m(t, x_prev, x_t) -> (N,)``, the log transition density
            $\log m_t(x_{t-1}^i, x_t^i)$ of $M_t$ ($t \ge 1$) with respect to a fixed dominating measure
            (Lebesgue, counting), pairing the particles of ``x_prev`` and ``x_t`` one to one
            (leading axes broadcast, so a single ``x_t`` with leading axis 1 is scored against all of
            ``x_prev``). Needed by backward sampling and PaRIS; ``None`` if the density is unknown.
        log_m_bound: optional ``log_m_bound(t) -> scalar``, an upper bound of
            $\log m_t(x, x')$ over all $x, x'$ (for rejection-sampling backward kernels); ``None`` if
            none is known.
        log_m0: optional ``log_m0(x0) -> (N,)``, the log density of $M_0$ at each particle (same
            dominating measure as ``log_m``); needed where the initial law enters a score, e.g. the
            Fisher-identity score of [`markovppl.particles.learning`][markovppl.particles.learning].

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> fk = FeynmanKac(m0=lambda key, n: jax.random.normal(key, (n,)),
        ...                 m=lambda key, t, x: x + jax.random.normal(key, x.shape),
        ...                 log_g=lambda t, xp, x: -0.5 * x**2)
        >>> fk.m0(jax.random.PRNGKey(0), 5).shape, fk.log_g(0, None, jnp.zeros(5)).shape
        ((5,), (5,))
    """

    m0: Callable
    m: Callable
    log_g: Callable
    log_m: Callable | None = None
    log_m_bound: Callable | None = None
    log_m0: Callable | None = None


def _check_unbatched(model, what: str) -> None:
    if tuple(model.batch_shape) != ():
        raise ValueError(f"{what} must be unbatched (batch_shape == ()), got batch_shape {tuple(model.batch_shape)}")


def bootstrap_lgssm(ssm, obs) -> FeynmanKac:
    r"""Bootstrap Feynman–Kac model of a [`LinearGaussianSSM`][markovppl.LinearGaussianSSM]:
    $M_0 = N(m_0, P_0)$, $M_t(x, \cdot) = N(A x + b, Q)$ and
    $\log G_t(x_{t-1}, x_t) = \log N(y_t^{o};\, H^{o} x_t + c^{o}, R^{oo})$ over the observed coordinates
    $o$ of $y_t$ (0 at a missing step), so that $Z_T = p(y_{0:T-1})$.

    Args:
        ssm: an unbatched, time-homogeneous ``LinearGaussianSSM``.
        obs: ``(T, m)`` observations; NaN entries (and steps flagged in ``ssm.missing``) are missing.

    Returns:
        A [`FeynmanKac`][markovppl.particles.FeynmanKac] on states ``(N, d)``, time $t$ indexing
        ``obs[t]``, with the transition density ``log_m`` and its bound when $Q$ is positive definite
        (``None`` when it is singular), and the initial density ``log_m0`` when $P_0$ is.

    Raises:
        ValueError: batched or time-varying model, or ``obs`` not of shape ``(T, m)``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> import markovppl as mp
        >>> ssm = mp.LinearGaussianSSM(jnp.zeros(1), jnp.eye(1), 0.9 * jnp.eye(1), jnp.eye(1),
        ...                            jnp.eye(1), 0.25 * jnp.eye(1))
        >>> fk = bootstrap_lgssm(ssm, jnp.array([[0.1], [jnp.nan], [0.3]]))
        >>> x0 = fk.m0(jax.random.PRNGKey(0), 8)
        >>> x0.shape, fk.log_g(1, x0, x0).tolist() == [0.0] * 8
        ((8, 1), True)
    """
    _check_unbatched(ssm, "ssm")
    params = [ssm.transition_matrix, ssm.transition_cov, ssm.transition_offset, ssm.emission_matrix,
              ssm.emission_cov, ssm.emission_offset]
    if any(is_time_varying(p) for p in params):
        raise ValueError("bootstrap_lgssm does not support time_varying parameters")
    m = ssm.emission_matrix.shape[-2]
    y = jnp.asarray(obs)
    if y.ndim != 2 or y.shape[-1] != m:
        raise ValueError(f"obs must have shape (T, {m}) for this model, got {y.shape}")
    if ssm.num_steps is not None and y.shape[0] != ssm.num_steps:
        raise ValueError(f"obs has {y.shape[0]} steps but the model was built with num_steps={ssm.num_steps}")
    if not jnp.issubdtype(y.dtype, jnp.floating):
        y = y.astype(ssm.initial_mean.dtype)
    miss = jnp.isnan(y)
    if ssm.missing is not None:
        if ssm.missing.shape != y.shape[:1]:
            raise ValueError(f"ssm.missing must have shape ({y.shape[0]},), got {ssm.missing.shape}")
        miss = miss | ssm.missing[:, None]
    y = jnp.where(miss, 0.0, y)
    m0_, A, b, H, c, R = (ssm.initial_mean, ssm.transition_matrix, ssm.transition_offset,
                          ssm.emission_matrix, ssm.emission_offset, ssm.emission_cov)
    L0, LQ = la.psd_sqrt(ssm.initial_cov), la.psd_sqrt(ssm.transition_cov)
    d = m0_.shape[-1]

    def sample_m0(rng_key, num_particles):
        eps = jax.random.normal(rng_key, (num_particles, d), dtype=m0_.dtype)
        return m0_ + eps @ L0.T

    def sample_m(rng_key, t, x_prev):
        eps = jax.random.normal(rng_key, x_prev.shape, dtype=x_prev.dtype)
        return x_prev @ A.T + b + eps @ LQ.T

    # Per step, R restricted to the observed block (identity on missing coordinates, which then
    # contribute 0): whitening factors chol(R_oo)^{-1} and normalisers, computed once for all steps.
    keep = ~miss[:, :, None] & ~miss[:, None, :]
    chol = jnp.linalg.cholesky(jnp.where(keep, R, jnp.eye(m, dtype=R.dtype)))          # (T, m, m)
    whiten = jax.scipy.linalg.solve_triangular(chol, jnp.broadcast_to(jnp.eye(m, dtype=R.dtype), chol.shape),
                                               lower=True)
    log_norm = -jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), -1) - 0.5 * jnp.sum(~miss, -1) * _LOG_2PI

    def log_g(t, x_prev, x_t):
        resid = jnp.where(miss[t], 0.0, y[t] - x_t @ H.T - c)                  # (N, m)
        z = resid @ whiten[t].T
        return log_norm[t] - 0.5 * jnp.sum(z**2, axis=-1)

    log_m, log_m_bound = _gaussian_transition_density(A, b, ssm.transition_cov)
    log_m0 = _gaussian_transition_density(jnp.zeros_like(A), m0_, ssm.initial_cov)[0]
    return FeynmanKac(sample_m0, sample_m, log_g, log_m, log_m_bound,
                      None if log_m0 is None else (lambda x0: log_m0(0, x0, x0)))


def bootstrap_hmm(hmm, obs) -> FeynmanKac:
    r"""Bootstrap Feynman–Kac model of an [`HMM`][markovppl.HMM]: $M_0 = \pi_0$,
    $M_t(i, \cdot) = P_{i\cdot}$ and $\log G_t(x_{t-1}, x_t) = \log p(y_t \mid x_t)$ (0 at a missing
    step), so that $Z_T = p(y_{0:T-1})$.

    Args:
        hmm: an unbatched ``HMM`` with a time-homogeneous transition matrix.
        obs: ``(T, *emission.event_shape)`` observations; NaN (and steps flagged in ``hmm.missing``)
            are missing.

    Returns:
        A [`FeynmanKac`][markovppl.particles.FeynmanKac] on integer states ``(N,)``, with
        ``log_m(t, i, j) = log P[i, j]``, the bound $\max_{ij} \log P_{ij}$ and
        ``log_m0(i) = log pi0[i]``.

    Raises:
        ValueError: batched or time-varying model, or ``obs`` of the wrong shape.

    Examples:
        >>> import jax, jax.numpy as jnp, numpyro.distributions as dist
        >>> import markovppl as mp
        >>> hmm = mp.HMM(jnp.array([0.5, 0.5]), jnp.array([[0.9, 0.1], [0.1, 0.9]]),
        ...              dist.Normal(jnp.array([-1.0, 1.0]), 1.0))
        >>> fk = bootstrap_hmm(hmm, jnp.array([-1.2, 0.8, jnp.nan]))
        >>> fk.log_g(2, None, jnp.array([0, 1])).tolist()
        [0.0, 0.0]
    """
    _check_unbatched(hmm, "hmm")
    if is_time_varying(hmm.transition_matrix):
        raise ValueError("bootstrap_hmm does not support time_varying transition matrices")
    event_shape = tuple(hmm.emission.event_shape)
    ev = len(event_shape)
    y = jnp.asarray(obs)
    if y.ndim != 1 + ev or tuple(y.shape[1:]) != event_shape:
        raise ValueError(f"obs must have shape (T, *{event_shape}) for this model, got {y.shape}")
    if hmm.num_steps is not None and y.shape[0] != hmm.num_steps:
        raise ValueError(f"obs has {y.shape[0]} steps but the model was built with num_steps={hmm.num_steps}")
    miss = hmm.missing_steps(y)
    if miss.shape != y.shape[:1]:
        raise ValueError(f"hmm.missing must have shape ({y.shape[0]},), got {miss.shape}")
    if jnp.issubdtype(y.dtype, jnp.floating):
        y = jnp.nan_to_num(y)          # missing steps are masked below; keep NaN out of log_prob
    log_pi0 = jnp.log(hmm.initial_probs)
    log_P = jnp.log(hmm.transition_matrix)
    emission = hmm.emission

    def sample_m0(rng_key, num_particles):
        return jax.random.categorical(rng_key, log_pi0, shape=(num_particles,))

    def sample_m(rng_key, t, x_prev):
        return jax.random.categorical(rng_key, log_P[x_prev])

    def log_g(t, x_prev, x_t):
        loglik = emission.log_prob(jnp.expand_dims(y[t], -1 - ev))           # (K,)
        return jnp.where(miss[t], 0.0, loglik[x_t])

    def log_m(t, x_prev, x_t):
        return log_P[x_prev, x_t]

    return FeynmanKac(sample_m0, sample_m, log_g, log_m, lambda t: jnp.max(log_P), lambda x0: log_pi0[x0])


def _gaussian_transition_density(A, b, Q):
    r"""``(log_m, log_m_bound)`` of $M_t(x, \cdot) = N(Ax + b, Q)$, the bound being the density at its
    mode, $-\tfrac12 \log\det(2\pi Q)$; ``(None, None)`` when $Q$ is concretely singular (no density)."""
    if is_concrete(Q) and not np.linalg.eigvalsh(np.asarray(Q))[0] > 0:
        return None, None
    chol = jnp.linalg.cholesky(Q)
    chol_inv = jax.scipy.linalg.solve_triangular(chol, jnp.eye(Q.shape[-1], dtype=Q.dtype), lower=True)
    half_logdet = jnp.sum(jnp.log(jnp.diag(chol))) + 0.5 * Q.shape[-1] * _LOG_2PI

    def log_m(t, x_prev, x_t):
        z = (x_t - x_prev @ A.T - b) @ chol_inv.T
        return -0.5 * jnp.sum(z**2, axis=-1) - half_logdet

    return log_m, lambda t: -half_logdet
