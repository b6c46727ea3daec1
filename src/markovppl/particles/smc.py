r"""Sequential Monte Carlo: the (adaptive-resampling) particle filter of a Feynman–Kac model."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from .._validation import is_concrete
from .feynman_kac import FeynmanKac
from .resampling import systematic

__all__ = ["ParticleFilterResult", "particle_filter"]


class ParticleFilterResult(NamedTuple):
    r"""Output of [`particle_filter`][markovppl.particles.particle_filter].

    With normalised weights $W_t^i$ ($\sum_i W_t^i = 1$), $\sum_i W_t^i \varphi(x_t^i)$ estimates the
    filtering expectation $E_{Q_t}[\varphi(x_t)]$, and
    $\hat Z_T = \prod_t \sum_i \bar W_{t-1}^{i} G_t(x_{t-1}^{a_t^i}, x_t^i)$ (with $\bar W_{t-1}$ the
    weights after the optional resampling at $t$, uniform $1/N$ after a resampling and at $t = 0$) is an
    unbiased estimate of $Z_T$; $\log \hat Z_T$ is biased downward.

    Attributes:
        particles: $x_t^i$, ``(T, N, ...)``.
        log_weights: $\log W_t^i$, normalised, ``(T, N)``.
        ancestors: $a_t^i$, the index in ``particles[t - 1]`` of the parent of $x_t^i$, ``(T, N)``;
            ``ancestors[0] = arange(N)``.
        log_evidence_increments: $\log \sum_i \bar W_{t-1}^{i} G_t^i$, ``(T,)``.
        log_evidence: $\log \hat Z_T$, the sum of the increments.
        ess: effective sample size $1 / \sum_i (W_t^i)^2$ of the weights at step $t$, ``(T,)``.
        resampled: whether the particles were resampled before moving to step $t$, ``(T,)``;
            ``resampled[0]`` is False.
    """

    particles: Any
    log_weights: jax.Array
    ancestors: jax.Array
    log_evidence_increments: jax.Array
    log_evidence: jax.Array
    ess: jax.Array
    resampled: jax.Array


def _reweight(log_w_prev, log_g):
    """Increment $\\log\\sum_i e^{\\ell_i + \\log G_i}$, normalised new log-weights and their ESS; a step
    whose weights are all zero gives increment $-\\infty$, log-weights $-\\infty$ and ESS 0."""
    lw = log_w_prev + log_g
    lw = jnp.where(jnp.isnan(lw), -jnp.inf, lw)
    inc = logsumexp(lw)
    ok = jnp.isfinite(inc)
    lw_norm = jnp.where(ok, lw - jnp.where(ok, inc, 0.0), -jnp.inf)
    ess = jnp.where(ok, jnp.exp(-logsumexp(2.0 * lw_norm)), 0.0)
    inc = jnp.where(ok, inc, -jnp.inf)
    return inc, lw_norm, ess


def particle_filter(
    rng_key,
    fk: FeynmanKac,
    num_steps: int,
    num_particles: int,
    *,
    resample_fn: Callable = systematic,
    ess_threshold: float = 0.5,
) -> ParticleFilterResult:
    r"""Particle filter (SMC) of a Feynman–Kac model, with adaptive resampling, as one ``lax.scan``.

    At $t = 0$: $x_0^i \sim M_0$, $\log \hat Z \mathrel{+}= \log \frac1N \sum_i G_0(x_0^i)$. At $t \ge 1$:
    if $\mathrm{ESS}_{t-1} < \tau N$ ($\tau$ = ``ess_threshold``; $\tau \ge 1$ resamples at every step,
    $\tau = 0$ never), draw ancestors $a_t$ with ``resample_fn`` and reset the weights to $1/N$,
    otherwise keep $a_t^i = i$ and the weights; then $x_t^i \sim M_t(x_{t-1}^{a_t^i}, \cdot)$ and
    $\log\hat Z \mathrel{+}= \log \sum_i \bar W_{t-1}^i G_t(x_{t-1}^{a_t^i}, x_t^i)$.

    If every particle has zero weight at a step (all log-potentials $-\infty$ or NaN; NaN counts as
    $-\infty$), that step's increment and ``log_evidence`` are $-\infty$, its ``ess`` is 0 and its
    log-weights are all $-\infty$; the filter then resamples (any $\tau > 0$) from uniform weights and
    continues, so the arrays stay finite-shaped and the evidence stays $-\infty$.

    Args:
        rng_key: a JAX PRNG key.
        fk: the [`FeynmanKac`][markovppl.particles.FeynmanKac] model.
        num_steps: $T \ge 1$.
        num_particles: $N \ge 2$.
        resample_fn: ``(rng_key, log_weights, num_samples) -> indices``, e.g.
            [`systematic`][markovppl.particles.systematic] (default).
        ess_threshold: $\tau$; resample when the ESS falls below $\tau N$ (a float or a traced scalar:
            changing it does not recompile).

    Returns:
        A [`ParticleFilterResult`][markovppl.particles.ParticleFilterResult].

    Raises:
        ValueError: ``num_particles < 2``, ``num_steps < 1``, a negative ``ess_threshold`` or
            ``fk.log_g`` not returning shape ``(num_particles,)``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> import markovppl as mp
        >>> from markovppl.particles import bootstrap_lgssm, particle_filter
        >>> ssm = mp.LinearGaussianSSM(jnp.zeros(1), jnp.eye(1), 0.9 * jnp.eye(1), jnp.eye(1),
        ...                            jnp.eye(1), 0.25 * jnp.eye(1))
        >>> y = jnp.array([[0.1], [0.5], [0.3], [-0.2]])
        >>> pf = particle_filter(jax.random.PRNGKey(0), bootstrap_lgssm(ssm, y), 4, 2000)
        >>> pf.particles.shape, pf.log_weights.shape, pf.ancestors.shape
        ((4, 2000, 1), (4, 2000), (4, 2000))
        >>> bool(abs(pf.log_evidence - ssm.log_prob(y)) < 0.1)
        True
    """
    num_particles = int(num_particles)
    num_steps = int(num_steps)
    if num_particles < 2:
        raise ValueError(f"num_particles must be at least 2, got {num_particles}")
    if num_steps < 1:
        raise ValueError(f"num_steps must be at least 1, got {num_steps}")
    if is_concrete(ess_threshold) and not ess_threshold >= 0:
        raise ValueError(f"ess_threshold must be non-negative, got {ess_threshold}")
    return _particle_filter(rng_key, fk, num_steps, num_particles, resample_fn, ess_threshold)


def _particle_filter(rng_key, fk, num_steps, num_particles, resample_fn, ess_threshold):
    """The filter body; not jitted here (callers jit), so models whose functions close over traced
    parameters (e.g. inside NUTS or PMMH) work."""
    n = num_particles
    always = jnp.asarray(ess_threshold) >= 1.0

    k_init, key_steps = jax.random.split(rng_key)
    x0 = fk.m0(k_init, n)
    log_g0 = jnp.asarray(fk.log_g(0, x0, x0))
    if log_g0.shape != (n,):
        raise ValueError(f"fk.log_g must return one log-potential per particle, shape ({n},), got {log_g0.shape}")
    log_uniform = jnp.full((n,), -jnp.log(n), dtype=jnp.result_type(log_g0.dtype, float))
    inc0, lw0, ess0 = _reweight(log_uniform, log_g0)
    arange = jnp.arange(n, dtype=jnp.int32)

    def step(carry, inp):
        x_prev, lw_prev, ess_prev = carry
        t, key = inp
        k_res, k_move = jax.random.split(key)
        do_resample = always | (ess_prev < ess_threshold * n)
        idx = jnp.where(do_resample, resample_fn(k_res, lw_prev, n).astype(jnp.int32), arange)
        lw_base = jnp.where(do_resample, log_uniform, lw_prev)
        x_anc = jax.tree.map(lambda a: a[idx], x_prev)
        x_t = fk.m(k_move, t, x_anc)
        inc, lw, ess = _reweight(lw_base, jnp.asarray(fk.log_g(t, x_anc, x_t)))
        return (x_t, lw, ess), (x_t, lw, idx, inc, ess, do_resample)

    if num_steps > 1:
        ts = jnp.arange(1, num_steps)
        keys = jax.random.split(key_steps, num_steps - 1)
        _, (xs, lws, idxs, incs, esss, res) = jax.lax.scan(step, (x0, lw0, ess0), (ts, keys))
        cat = lambda first, rest: jnp.concatenate([jnp.asarray(first)[None], rest], axis=0)
        particles = jax.tree.map(cat, x0, xs)
        log_weights, ancestors = cat(lw0, lws), cat(arange, idxs)
        increments, ess, resampled = cat(inc0, incs), cat(ess0, esss), cat(False, res)
    else:
        particles = jax.tree.map(lambda a: a[None], x0)
        log_weights, ancestors = lw0[None], arange[None]
        increments, ess, resampled = inc0[None], ess0[None], jnp.zeros((1,), bool)
    return ParticleFilterResult(particles, log_weights, ancestors, increments, jnp.sum(increments), ess, resampled)
