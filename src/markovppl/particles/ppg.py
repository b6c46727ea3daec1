r"""Parisian particle Gibbs (PPG): PaRIS driven by conditional SMC, with a roll-out estimator.

PPG (Cardoso, Janati El Idrissi, Le Corff, Moulines & Olsson 2023, arXiv:2301.00900) estimates a
smoothed additive functional $\varphi(h) = E_{Q_T}[\sum_t h_t(x_{t-1}, x_t)]$ with less bias than
PaRIS, whose self-normalised estimate is biased at fixed $N$. One iteration $\ell$, given the path
$\zeta[\ell-1]$:

1. **conditional PaRIS** ([`conditional_paris`][markovppl.particles.paris.conditional_paris]):
   conditional SMC with $\zeta[\ell-1]$ pinned in slot 0 (multinomial resampling at every step),
   $K$ backward draws $J_t^{i,k} \sim \Lambda_t(i, \cdot)$ for **every** slot, the pinned one included,
   and the PaRIS statistics $\tau_t^i$; the iteration's estimate is
   $\mu[\ell] = \sum_i W_{T-1}^i \tau_{T-1}^i$;
2. **path tracing**: $b_{T-1} \sim \mathrm{Cat}(W_{T-1})$ and, backwards,
   $b_{t-1} = J_t^{b_t, U_t}$ with $U_t$ uniform on $\{1..K\}$; $\zeta[\ell]_t = x_t^{b_t}$.

The **roll-out estimator** averages the iterations after a burn-in $k_0$:
$\Pi_{k_0,k}(h) = (k - k_0)^{-1} \sum_{\ell = k_0 + 1}^{k} \mu[\ell]$.

Why it is valid. Picking one of $K$ draws from $\Lambda_t(b_t, \cdot)$ uniformly is one draw from
$\Lambda_t(b_t, \cdot)$, so the traced path has exactly the law of conditional backward sampling
(CBPF): the path chain leaves $Q_T$ invariant and is uniformly ergodic (Chopin & Singh 2015). And by
induction over $t$, $E[h(\zeta[\ell]) \mid \text{particle system}] = \mu[\ell]$ exactly (the
"implicit Rao–Blackwellisation"): $\mu[\ell]$ is the conditional expectation of $h$ at the chain's
next state, so $E[\Pi_{k_0,k}(h)] \to \varphi(h)$ with a bias that decays geometrically in $k_0$, and
is zero when $\zeta[0] \sim Q_T$.

Provenance: this module implements the reconstruction labelled "variant (a)" in the project's
research brief, in which the pinned slot's backward draws are i.i.d. from $\Lambda_t$ like the
others; its validity rests on the argument above and is checked by the tests (one-step invariance
from exact smoother draws, the brute-force path law of a small HMM and the Rao–Blackwell identity).
The paper's own algorithm could not be read here (only its abstract), so whether it treats the
pinned slot the same way is **unverified**; see ``docs/particle_gibbs.md``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from .csmc import _at, _changed, _path_from_indices, _time_length
from .feynman_kac import FeynmanKac
from .paris import ConditionalPaRISResult, _paris_forward, _validate
from .resampling import multinomial

__all__ = ["PPGInfo", "PPGResult", "PPGState", "path_functional", "ppg_init", "ppg_step", "parisian_particle_gibbs",
           "trace_path"]


class PPGState(NamedTuple):
    """State of the PPG kernel: the current path (pytree with leading time axis ``T``)."""

    path: Any


class PPGInfo(NamedTuple):
    r"""Diagnostics of one [`ppg_step`][markovppl.particles.ppg.ppg_step].

    Attributes:
        estimate: $\mu = \sum_i W_{T-1}^i \tau_{T-1}^i$, this iteration's estimate of $\varphi(h)$
            ($= E[h(\text{new path}) \mid \text{particle system}]$).
        log_evidence: $\log \hat Z_T$ of the conditional run.
        ess: ``(T,)``.
        num_changed: time steps at which the new path differs from the old one.
        fraction_changed: ``num_changed / T``.
    """

    estimate: Any
    log_evidence: jax.Array
    ess: jax.Array
    num_changed: jax.Array
    fraction_changed: jax.Array


class PPGResult(NamedTuple):
    r"""Output of [`parisian_particle_gibbs`][markovppl.particles.ppg.parisian_particle_gibbs].

    Attributes:
        estimate: the roll-out estimate $\Pi_{k_0,k}(h)$.
        estimates: $\mu[\ell]$ for $\ell = 1..k$ (leading axis ``k``).
        path: the last path $\zeta[k]$ (a valid reference for a further run).
        fraction_changed: renewal rate of the path at each iteration, ``(k,)``.
    """

    estimate: Any
    estimates: Any
    path: Any
    fraction_changed: jax.Array


def trace_path(rng_key, system: ConditionalPaRISResult):
    r"""Trace one path through the backward indices of a conditional PaRIS run:
    $b_{T-1} \sim \mathrm{Cat}(W_{T-1})$, $b_{t-1} = J_t^{b_t, U_t}$ with $U_t$ uniform on
    $\{1..K\}$ (one reverse ``lax.scan``).

    Returns:
        The ``(T,)`` int32 slot indices $b_t$; the path is ``particles[t, b[t]]``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> import markovppl as mp
        >>> from markovppl.particles import bootstrap_lgssm, conditional_paris, trace_path
        >>> ssm = mp.LinearGaussianSSM(jnp.zeros(1), jnp.eye(1), 0.9 * jnp.eye(1), jnp.eye(1),
        ...                            jnp.eye(1), 0.25 * jnp.eye(1))
        >>> fk = bootstrap_lgssm(ssm, jnp.array([[0.1], [0.5], [0.3]]))
        >>> res = conditional_paris(jax.random.PRNGKey(0), fk, lambda t, xp, x: x[:, 0], jnp.zeros((3, 1)), 4)
        >>> trace_path(jax.random.PRNGKey(1), res).shape
        (3,)
    """
    J = system.backward_indices
    T, _, K = J.shape
    k_last, k_steps = jax.random.split(rng_key)
    b_last = jax.random.categorical(k_last, system.log_weights[-1]).astype(jnp.int32)
    u = jax.random.randint(k_steps, (T,), 0, K)

    def step(b, inp):
        J_t, u_t = inp
        b_prev = J_t[b, u_t]
        return b_prev, b_prev

    _, bs = jax.lax.scan(step, b_last, (J[1:], u[1:]), reverse=True)
    return jnp.concatenate([bs, b_last[None]])


def path_functional(h: Callable, path):
    r"""The additive functional along one path, $\sum_{t=0}^{T-1} h_t(x_{t-1}, x_t)$ (with
    $h_0$ evaluated as ``h(0, x0, x0)``), in one ``lax.scan``.

    Examples:
        >>> import jax.numpy as jnp
        >>> float(path_functional(lambda t, xp, x: x[:, 0], jnp.arange(4.0)[:, None]))
        6.0
    """
    first = _at(path, 0)
    one = lambda tree: jax.tree.map(lambda a: a[None], tree)          # a single particle, leading axis 1
    total0 = jax.tree.map(lambda v: v[0], h(0, one(first), one(first)))
    T = _time_length(path)

    def step(acc, inp):
        t, prev, cur = inp
        val = jax.tree.map(lambda v: v[0], h(t, one(prev), one(cur)))
        return jax.tree.map(jnp.add, acc, val), None

    prevs = jax.tree.map(lambda a: a[:-1], path)
    curs = jax.tree.map(lambda a: a[1:], path)
    total, _ = jax.lax.scan(step, total0, (jnp.arange(1, T), prevs, curs))
    return total


def ppg_init(reference) -> PPGState:
    """Initial PPG state from a starting path, e.g. a draw of a particle filter or smoother.

    Examples:
        >>> import jax.numpy as jnp
        >>> ppg_init(jnp.zeros((4, 1))).path.shape
        (4, 1)
    """
    _time_length(reference)
    return PPGState(jax.tree.map(jnp.asarray, reference))


def ppg_step(
    rng_key,
    state: PPGState,
    fk: FeynmanKac,
    h: Callable,
    num_particles: int,
    *,
    num_backward: int = 2,
    backward_sampler: str = "exact",
    max_trials: int | None = None,
    resample_fn: Callable = multinomial,
):
    r"""One PPG iteration: conditional PaRIS given the current path, then path tracing.

    The path kernel leaves $Q_T$ invariant (module docstring); ``info.estimate`` is $\mu$.

    Args:
        rng_key: a JAX PRNG key.
        state: a [`PPGState`][markovppl.particles.ppg.PPGState].
        fk: the Feynman–Kac model (needs ``fk.log_m``; ``fk.log_m_bound`` for the rejection-based
            samplers).
        h: ``h(t, x_prev, x_t) -> pytree`` of floating values per particle, as in
            [`paris_smoother`][markovppl.particles.paris.paris_smoother].
        num_particles: $N \ge 2$.
        num_backward: $K$ (default 2).
        backward_sampler: ``"exact"`` (default), ``"rejection"`` or ``"hybrid"``.
        max_trials: as in ``paris_smoother``.
        resample_fn: passed to [`conditional`][markovppl.particles.conditional].

    Returns:
        ``(new_state, info)`` with a [`PPGInfo`][markovppl.particles.ppg.PPGInfo].

    Raises:
        ValueError: as [`conditional_paris`][markovppl.particles.paris.conditional_paris].

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> import markovppl as mp
        >>> from markovppl.particles import bootstrap_lgssm, ppg_init, ppg_step
        >>> ssm = mp.LinearGaussianSSM(jnp.zeros(1), jnp.eye(1), 0.9 * jnp.eye(1), jnp.eye(1),
        ...                            jnp.eye(1), 0.25 * jnp.eye(1))
        >>> fk = bootstrap_lgssm(ssm, jnp.array([[0.1], [0.5], [0.3]]))
        >>> step = jax.jit(lambda k, s: ppg_step(k, s, fk, lambda t, xp, x: x[:, 0], 8))
        >>> state, info = step(jax.random.PRNGKey(0), ppg_init(jnp.zeros((3, 1))))
        >>> state.path.shape, info.estimate.shape
        ((3, 1), ())
    """
    max_trials = _validate(fk, num_particles, num_backward, backward_sampler, max_trials)
    T = _time_length(state.path)
    return _ppg_step(rng_key, state, fk, h, T, int(num_particles), int(num_backward), backward_sampler, max_trials,
                     resample_fn)


def _ppg_step(rng_key, state, fk, h, T, n, K, sampler, max_trials, resample_fn):
    k_fwd, k_path = jax.random.split(rng_key)
    system = _paris_forward(k_fwd, fk, h, T, n, K, sampler, max_trials, resample_fn, reference=state.path, store=True)
    idx = trace_path(k_path, system)
    path = _path_from_indices(system.particles, idx, state.path)
    changed = _changed(path, state.path)
    num_changed = jnp.sum(changed).astype(jnp.int32)
    info = PPGInfo(system.estimate, system.log_evidence, system.ess, num_changed,
                   num_changed / jnp.asarray(T, system.log_weights.dtype))
    return PPGState(path), info


def parisian_particle_gibbs(
    rng_key,
    fk: FeynmanKac,
    h: Callable,
    reference,
    num_particles: int,
    num_iterations: int,
    *,
    burn_in: int = 0,
    num_backward: int = 2,
    backward_sampler: str = "exact",
    max_trials: int | None = None,
    resample_fn: Callable = multinomial,
) -> PPGResult:
    r"""PPG roll-out estimate $\Pi_{k_0,k}(h)$ of $E_{Q_T}[\sum_t h_t(x_{t-1}, x_t)]$: ``num_iterations``
    = $k$ PPG iterations from ``reference`` in one ``lax.scan``, averaging $\mu[\ell]$ over
    $\ell > k_0$ = ``burn_in``.

    Cost: $k$ conditional PaRIS runs, $O(kTNK)$ with the hybrid/rejection samplers and
    $O(kTN^2)$ with ``"exact"``; memory $O(TNK)$ for the backward indices of one iteration.

    Args:
        rng_key: a JAX PRNG key.
        fk: the Feynman–Kac model (needs ``fk.log_m``).
        h: the additive functional (as in [`paris_smoother`][markovppl.particles.paris.paris_smoother]).
        reference: the starting path $\zeta[0]$ (pytree, leading time axis ``T``); e.g. a path
            traced from an unconditional particle filter, or the last path of a previous run.
        num_particles: $N \ge 2$.
        num_iterations: $k \ge 1$.
        burn_in: $k_0$, $0 \le k_0 < k$.
        num_backward: $K$, as in [`ppg_step`][markovppl.particles.ppg.ppg_step].
        backward_sampler: as in ``ppg_step``.
        max_trials: as in ``ppg_step``.
        resample_fn: as in ``ppg_step``.

    Returns:
        A [`PPGResult`][markovppl.particles.ppg.PPGResult].

    Raises:
        ValueError: $k < 1$, $k_0 \notin [0, k)$, or as ``ppg_step``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> import markovppl as mp
        >>> from markovppl.particles import bootstrap_lgssm, parisian_particle_gibbs
        >>> ssm = mp.LinearGaussianSSM(jnp.zeros(1), jnp.eye(1), 0.9 * jnp.eye(1), jnp.eye(1),
        ...                            jnp.eye(1), 0.25 * jnp.eye(1))
        >>> y = jnp.array([[0.1], [0.5], [0.3]])
        >>> fk = bootstrap_lgssm(ssm, y)
        >>> run = jax.jit(lambda k: parisian_particle_gibbs(k, fk, lambda t, xp, x: x[:, 0], jnp.zeros((3, 1)),
        ...                                                 16, 200, burn_in=20))
        >>> res = run(jax.random.PRNGKey(0))
        >>> res.estimates.shape, bool(abs(res.estimate - ssm.smooth(y).smoothed_means.sum()) < 0.15)
        ((200,), True)
    """
    max_trials = _validate(fk, num_particles, num_backward, backward_sampler, max_trials)
    k = int(num_iterations)
    if k != num_iterations or k < 1:
        raise ValueError(f"num_iterations must be a positive integer, got {num_iterations}")
    if int(burn_in) != burn_in or not 0 <= int(burn_in) < k:
        raise ValueError(f"burn_in must be an integer in [0, num_iterations), got {burn_in}")
    T = _time_length(reference)
    n, K, k0 = int(num_particles), int(num_backward), int(burn_in)

    def body(state, key):
        state, info = _ppg_step(key, state, fk, h, T, n, K, backward_sampler, max_trials, resample_fn)
        return state, (info.estimate, info.fraction_changed)

    state, (estimates, frac) = jax.lax.scan(body, ppg_init(reference), jax.random.split(rng_key, k))
    estimate = jax.tree.map(lambda e: jnp.mean(e[k0:], axis=0), estimates)
    return PPGResult(estimate, estimates, state.path, frac)
