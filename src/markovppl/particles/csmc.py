r"""Conditional SMC and the particle Gibbs kernel on latent paths.

Conditional SMC (Andrieu, Doucet & Holenstein 2010) runs a particle filter in which one slot (slot 0
here) is pinned to a **reference path** $\zeta_{0:T-1}$ and resamples at every step; a new path is
then drawn from the particle system. Three path-sampling rules are available:

* ``"genealogy"`` — plain CSMC: the reference keeps its own ancestor, $a_t^0 = 0$, and the new path
  is traced back through the ancestors from $b_{T-1} \sim \mathrm{Cat}(W_{T-1})$.
* ``"ancestor"`` — ancestor sampling (PGAS, Lindsten, Jordan & Schön 2014): the reference's
  ancestor is redrawn at every step,
  $a_t^0 \sim \mathrm{Cat}\big(W_{t-1}^j\, m_t(x_{t-1}^j, \zeta_t)\, G_t(x_{t-1}^j, \zeta_t)\big)$,
  then the path is traced through the ancestors.
* ``"backward"`` — backward sampling (CBPF, Whiteley 2010):
  $b_{T-1} \sim \mathrm{Cat}(W_{T-1})$ and, in one reverse scan,
  $b_{t-1} \sim \mathrm{Cat}\big(W_{t-1}^j\, m_t(x_{t-1}^j, x_t^{b_t})\, G_t(x_{t-1}^j, x_t^{b_t})\big)$.

Each leaves the path law $Q_T$ of the [`FeynmanKac`][markovppl.particles.FeynmanKac] model
invariant (for the bootstrap model of a state-space model: the smoothing law
$p(x_{0:T-1} \mid y_{0:T-1})$). ``"ancestor"`` and ``"backward"`` need the transition density
``fk.log_m``; backward sampling mixes best (it renews the whole path even when the genealogy has
collapsed).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from .feynman_kac import FeynmanKac
from .resampling import conditional, multinomial

__all__ = [
    "CSMCInfo",
    "ParticleGibbsInfo",
    "ParticleGibbsState",
    "conditional_smc",
    "particle_gibbs_init",
    "particle_gibbs_step",
]

PATH_SAMPLING = ("backward", "ancestor", "genealogy")


class CSMCInfo(NamedTuple):
    r"""Diagnostics of one [`conditional_smc`][markovppl.particles.csmc.conditional_smc] run.

    Attributes:
        log_evidence: $\log \hat Z_T$ of the conditional run,
            $\sum_t \log \frac1N \sum_i G_t(x_{t-1}^{a_t^i}, x_t^i)$ (resampling at every step).
        ess: effective sample size of the normalised weights at each step, ``(T,)``.
        num_changed: number of time steps at which the new path differs from the reference.
        fraction_changed: ``num_changed / T`` (the renewal rate of the path).
    """

    log_evidence: jax.Array
    ess: jax.Array
    num_changed: jax.Array
    fraction_changed: jax.Array


class ParticleGibbsState(NamedTuple):
    """State of the particle Gibbs kernel: the current path, a pytree with leading time axis ``T``."""

    path: Any


class ParticleGibbsInfo(NamedTuple):
    """Diagnostics of one [`particle_gibbs_step`][markovppl.particles.csmc.particle_gibbs_step]; the
    fields are those of [`CSMCInfo`][markovppl.particles.csmc.CSMCInfo]."""

    log_evidence: jax.Array
    ess: jax.Array
    num_changed: jax.Array
    fraction_changed: jax.Array


class _System(NamedTuple):
    """The forward particle system of a (conditional) SMC run with resampling at every step."""

    particles: Any              # (T, N, ...)
    log_weights: jax.Array      # (T, N), normalised
    ancestors: jax.Array        # (T, N); ancestors[0] = arange(N)
    increments: jax.Array       # (T,)
    ess: jax.Array              # (T,)


# --------------------------------------------------------------------------- pytree helpers
def _take(tree, idx):
    return jax.tree.map(lambda a: a[idx], tree)


def _at(tree, t):
    return jax.tree.map(lambda a: a[t], tree)


def _pin(tree, value, slot=0):
    return jax.tree.map(lambda a, v: a.at[slot].set(v.astype(a.dtype)), tree, value)


def _repeat(value, n):
    """``n`` copies of one particle along a new leading axis."""
    return jax.tree.map(lambda v: jnp.broadcast_to(v, (n,) + v.shape), value)


def _time_length(tree) -> int:
    leaves = jax.tree.leaves(tree)
    if not leaves:
        raise ValueError("the reference path is an empty pytree")
    lengths = {int(jnp.shape(a)[0]) if jnp.ndim(a) else -1 for a in leaves}
    if len(lengths) != 1 or -1 in lengths:
        raise ValueError(f"every leaf of the reference path needs the same leading time axis, got lengths {sorted(lengths)}")
    (T,) = lengths
    if T < 1:
        raise ValueError("the reference path has no time steps")
    return T


def _check_particles_match(x0, reference, num_particles):
    """The particles drawn from ``m0`` and the reference share structure and per-particle shapes."""
    if jax.tree.structure(x0) != jax.tree.structure(reference):
        raise ValueError("the reference path and the particles of fk.m0 have different pytree structures")
    for a, r in zip(jax.tree.leaves(x0), jax.tree.leaves(reference)):
        if a.shape[:1] != (num_particles,) or a.shape[1:] != r.shape[1:]:
            raise ValueError(f"reference states have shape {r.shape[1:]} per step, but fk.m0 draws particles of "
                             f"shape {a.shape} (expected ({num_particles}, *{r.shape[1:]}))")


def _normalise(log_w):
    """Normalised log-weights, the log-mean increment and the ESS; NaN counts as $-\\infty$."""
    n = log_w.shape[0]
    log_w = jnp.where(jnp.isnan(log_w), -jnp.inf, log_w)
    total = logsumexp(log_w)
    ok = jnp.isfinite(total)
    lw = jnp.where(ok, log_w - jnp.where(ok, total, 0.0), -jnp.inf)
    ess = jnp.where(ok, jnp.exp(-logsumexp(2.0 * lw)), 0.0)
    inc = jnp.where(ok, total - jnp.log(n), -jnp.inf)
    return lw, inc, ess


def _log_potential(fk, t, x_prev, x_t, n):
    out = jnp.asarray(fk.log_g(t, x_prev, x_t))
    if out.shape != (n,):
        raise ValueError(f"fk.log_g must return one log-potential per particle, shape ({n},), got {out.shape}")
    return out


def backward_log_weights(fk: FeynmanKac, t, log_w_prev, x_prev, x_t_single):
    r"""Log backward weights $\log W_{t-1}^j + \log m_t(x_{t-1}^j, x) + \log G_t(x_{t-1}^j, x)$ of the
    predecessors $x_{t-1}^j$ (leading axis ``N``) of one state ``x`` at step ``t``, shape ``(N,)``."""
    n = log_w_prev.shape[0]
    x_rep = _repeat(x_t_single, n)
    out = log_w_prev + jnp.asarray(fk.log_m(t, x_prev, x_rep)) + jnp.asarray(fk.log_g(t, x_prev, x_rep))
    return jnp.where(jnp.isnan(out), -jnp.inf, out)


def _csmc_forward(rng_key, fk, reference, num_particles, ancestor_sampling, resample_fn) -> _System:
    """Conditional SMC forward pass (slot 0 pinned to ``reference``), one ``lax.scan``."""
    n = num_particles
    cond_resample = conditional(resample_fn)
    k0, k_steps = jax.random.split(rng_key)
    x0 = fk.m0(k0, n)
    _check_particles_match(x0, reference, n)
    x0 = _pin(x0, _at(reference, 0))
    lw0, inc0, ess0 = _normalise(_log_potential(fk, 0, x0, x0, n))
    T = _time_length(reference)
    arange = jnp.arange(n, dtype=jnp.int32)

    def step(carry, inp):
        x_prev, lw_prev = carry
        t, key, ref_t = inp
        k_res, k_anc, k_move = jax.random.split(key, 3)
        pinned = jnp.zeros((), jnp.int32)
        if ancestor_sampling:
            pinned = jax.random.categorical(k_anc, backward_log_weights(fk, t, lw_prev, x_prev, ref_t)).astype(jnp.int32)
        idx = cond_resample(k_res, lw_prev, n, pinned).astype(jnp.int32)
        x_anc = _take(x_prev, idx)
        x_t = _pin(fk.m(k_move, t, x_anc), ref_t)
        lw, inc, ess = _normalise(_log_potential(fk, t, x_anc, x_t, n))
        return (x_t, lw), (x_t, lw, idx, inc, ess)

    ts = jnp.arange(1, T)
    keys = jax.random.split(k_steps, T)[1:]
    refs = jax.tree.map(lambda a: a[1:], reference)
    _, (xs, lws, idxs, incs, esss) = jax.lax.scan(step, (x0, lw0), (ts, keys, refs))
    cat = lambda first, rest: jnp.concatenate([jnp.asarray(first)[None], rest], axis=0)
    return _System(jax.tree.map(cat, x0, xs), cat(lw0, lws), cat(arange, idxs), cat(inc0, incs), cat(ess0, esss))


def _trace_genealogy(rng_key, system: _System):
    """Indices $b_t$: $b_{T-1} \\sim \\mathrm{Cat}(W_{T-1})$, $b_{t-1} = a_t^{b_t}$ (reverse scan)."""
    b_last = jax.random.categorical(rng_key, system.log_weights[-1]).astype(jnp.int32)

    def step(b, anc_t):
        b_prev = anc_t[b]
        return b_prev, b_prev

    _, bs = jax.lax.scan(step, b_last, system.ancestors[1:], reverse=True)
    return jnp.concatenate([bs, b_last[None]])


def _backward_indices(rng_key, fk, system: _System):
    """Indices $b_t$ by backward sampling (reverse scan)."""
    T = system.log_weights.shape[0]
    k_last, k_steps = jax.random.split(rng_key)
    b_last = jax.random.categorical(k_last, system.log_weights[-1]).astype(jnp.int32)
    x_prev_all = jax.tree.map(lambda a: a[:-1], system.particles)
    x_next_all = jax.tree.map(lambda a: a[1:], system.particles)

    def step(b, inp):
        t, key, lw_prev, x_prev, x_next = inp
        logits = backward_log_weights(fk, t, lw_prev, x_prev, _at(x_next, b))
        b_prev = jax.random.categorical(key, logits).astype(jnp.int32)
        return b_prev, b_prev

    keys = jax.random.split(k_steps, T)[1:]
    _, bs = jax.lax.scan(step, b_last, (jnp.arange(1, T), keys, system.log_weights[:-1], x_prev_all, x_next_all),
                         reverse=True)
    return jnp.concatenate([bs, b_last[None]])


def _path_from_indices(particles, idx, like):
    """The states ``particles[t, idx[t]]``, with the dtypes of the pytree ``like`` (the reference)."""
    T = idx.shape[0]
    return jax.tree.map(lambda a, r: a[jnp.arange(T), idx].astype(r.dtype), particles, like)


def _changed(path, reference):
    per_leaf = [jnp.any((a != r.astype(a.dtype)).reshape(a.shape[0], -1), axis=1) for a, r in
                zip(jax.tree.leaves(path), jax.tree.leaves(reference))]
    return jnp.any(jnp.stack(per_leaf), axis=0)


def _validate(fk, reference, num_particles, path_sampling) -> int:
    if path_sampling not in PATH_SAMPLING:
        raise ValueError(f"path_sampling must be one of {PATH_SAMPLING}, got {path_sampling!r}")
    if int(num_particles) != num_particles or int(num_particles) < 2:
        raise ValueError(f"num_particles must be an integer >= 2, got {num_particles}")
    if path_sampling in ("backward", "ancestor") and fk.log_m is None:
        raise ValueError(f"path_sampling={path_sampling!r} needs the transition density fk.log_m, which this "
                         "FeynmanKac model does not provide; use path_sampling='genealogy'")
    return _time_length(reference)


def conditional_smc(
    rng_key,
    fk: FeynmanKac,
    reference,
    num_particles: int,
    *,
    path_sampling: str = "backward",
    resample_fn: Callable = multinomial,
):
    r"""One conditional SMC sweep: a new path given the reference path, leaving $Q_T$ invariant.

    The forward pass is one ``lax.scan``: $x_0^i \sim M_0$ ($i \ge 1$), $x_0^0 = \zeta_0$; at every
    $t \ge 1$ conditional resampling pins slot 0 (its ancestor is 0, or drawn by ancestor sampling),
    $x_t^i \sim M_t(x_{t-1}^{a_t^i}, \cdot)$ for $i \ge 1$, $x_t^0 = \zeta_t$, and
    $w_t^i = G_t(x_{t-1}^{a_t^i}, x_t^i)$. The new path is drawn by ``path_sampling`` (module
    docstring); backward sampling is one reverse ``lax.scan`` costing $O(TN)$.

    Args:
        rng_key: a JAX PRNG key.
        fk: the [`FeynmanKac`][markovppl.particles.FeynmanKac] model; ``fk.log_m`` is needed for
            ``"backward"`` and ``"ancestor"``.
        reference: the reference path $\zeta$, a pytree whose leaves have leading time axis ``T``
            and per-step shapes equal to those of one particle of ``fk.m0`` (e.g. ``(T,)`` integer
            states of an HMM, ``(T, d)`` floats of an LGSSM). It should have positive density under
            $Q_T$; if every particle of a step has zero weight the sweep's ``log_evidence`` is
            $-\infty$ and the returned path is meaningless.
        num_particles: $N \ge 2$ (including the reference).
        path_sampling: ``"backward"`` (default), ``"ancestor"`` or ``"genealogy"``.
        resample_fn: the resampling scheme, passed to
            [`conditional`][markovppl.particles.conditional] (the free indices are drawn
            multinomially for every scheme).

    Returns:
        ``(path, info)``: the new path (same structure and shapes as ``reference``) and a
        [`CSMCInfo`][markovppl.particles.csmc.CSMCInfo].

    Raises:
        ValueError: unknown ``path_sampling``, ``num_particles < 2``, ``fk.log_m`` missing for
            ``"backward"``/``"ancestor"``, a reference whose leaves disagree on ``T`` or whose states
            do not match the particles of ``fk.m0``, or ``fk.log_g`` of the wrong shape.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> import markovppl as mp
        >>> from markovppl.particles import bootstrap_lgssm, conditional_smc
        >>> ssm = mp.LinearGaussianSSM(jnp.zeros(1), jnp.eye(1), 0.9 * jnp.eye(1), jnp.eye(1),
        ...                            jnp.eye(1), 0.25 * jnp.eye(1))
        >>> y = jnp.array([[0.1], [0.5], [0.3], [-0.2]])
        >>> fk = bootstrap_lgssm(ssm, y)
        >>> path, info = jax.jit(lambda key: conditional_smc(key, fk, jnp.zeros((4, 1)), 16))(jax.random.PRNGKey(0))
        >>> path.shape, info.ess.shape, bool(info.fraction_changed > 0)
        ((4, 1), (4,), True)
    """
    _validate(fk, reference, num_particles, path_sampling)
    return _conditional_smc(rng_key, fk, reference, int(num_particles), path_sampling, resample_fn)


def _conditional_smc(rng_key, fk, reference, num_particles, path_sampling, resample_fn):
    k_fwd, k_path = jax.random.split(rng_key)
    system = _csmc_forward(k_fwd, fk, reference, num_particles, path_sampling == "ancestor", resample_fn)
    if path_sampling == "backward":
        idx = _backward_indices(k_path, fk, system)
    else:
        idx = _trace_genealogy(k_path, system)
    path = _path_from_indices(system.particles, idx, reference)
    changed = _changed(path, reference)
    num_changed = jnp.sum(changed).astype(jnp.int32)
    info = CSMCInfo(jnp.sum(system.increments), system.ess, num_changed,
                    num_changed / jnp.asarray(changed.shape[0], system.log_weights.dtype))
    return path, info


def particle_gibbs_init(reference) -> ParticleGibbsState:
    r"""Initial state of the particle Gibbs kernel from a starting path (leading time axis ``T``).

    Examples:
        >>> import jax.numpy as jnp
        >>> particle_gibbs_init(jnp.zeros((5, 2))).path.shape
        (5, 2)
    """
    _time_length(reference)
    return ParticleGibbsState(jax.tree.map(jnp.asarray, reference))


def particle_gibbs_step(
    rng_key,
    state: ParticleGibbsState,
    fk: FeynmanKac,
    num_particles: int,
    *,
    path_sampling: str = "backward",
    resample_fn: Callable = multinomial,
):
    r"""One particle Gibbs transition: a [`conditional_smc`][markovppl.particles.csmc.conditional_smc]
    sweep with the current path as reference. The kernel leaves $Q_T$ invariant and, with
    ``"backward"`` or ``"ancestor"``, is uniformly ergodic for $N \ge 2$ under bounded potentials
    (Chopin & Singh 2015).

    Args:
        rng_key: a JAX PRNG key.
        state: a [`ParticleGibbsState`][markovppl.particles.csmc.ParticleGibbsState].
        fk: the Feynman–Kac model (may close over parameters that change between steps).
        num_particles: $N \ge 2$.
        path_sampling: ``"backward"`` (default), ``"ancestor"`` or ``"genealogy"``.
        resample_fn: as in ``conditional_smc``.

    Returns:
        ``(new_state, info)`` with a [`ParticleGibbsInfo`][markovppl.particles.csmc.ParticleGibbsInfo].

    Raises:
        ValueError: as [`conditional_smc`][markovppl.particles.csmc.conditional_smc].

    Examples:
        >>> import jax, jax.numpy as jnp, numpyro.distributions as dist
        >>> import markovppl as mp
        >>> from markovppl.particles import bootstrap_hmm, particle_gibbs_init, particle_gibbs_step
        >>> hmm = mp.HMM(jnp.array([0.5, 0.5]), jnp.array([[0.9, 0.1], [0.1, 0.9]]),
        ...              dist.Normal(jnp.array([-1.0, 1.0]), 1.0))
        >>> fk = bootstrap_hmm(hmm, jnp.array([-1.2, 0.8, 1.1]))
        >>> state = particle_gibbs_init(jnp.zeros(3, jnp.int32))
        >>> state, info = jax.jit(particle_gibbs_step, static_argnums=(2, 3))(jax.random.PRNGKey(0), state, fk, 8)
        >>> state.path.shape, state.path.dtype == jnp.int32
        ((3,), True)
    """
    _validate(fk, state.path, num_particles, path_sampling)
    path, info = _conditional_smc(rng_key, fk, state.path, int(num_particles), path_sampling, resample_fn)
    return ParticleGibbsState(path), ParticleGibbsInfo(*info)
