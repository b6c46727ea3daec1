r"""PaRIS: forward-only smoothing of additive functionals (Olsson & Westerborn 2017).

For an additive functional $h_{0:T-1}(x_{0:T-1}) = \sum_{t=0}^{T-1} h_t(x_{t-1}, x_t)$ (the term
$h_0(x_0)$ is written $h_0(x_0, x_0)$, as for the potentials of a
[`FeynmanKac`][markovppl.particles.FeynmanKac] model), PaRIS estimates the smoothed expectation
$E_{Q_T}[h_{0:T-1}]$ online, with $O(NK)$ work per step and no path storage. Each particle carries a
statistic $\tau_t^i \approx E[h_{0:t}(X_{0:t}) \mid X_t = x_t^i]$:

$$\tau_0^i = h_0(x_0^i), \qquad \tau_t^i = \frac1K \sum_{k=1}^{K} \big[\tau_{t-1}^{J_t^{i,k}}
+ h_t(x_{t-1}^{J_t^{i,k}}, x_t^i)\big], \qquad
J_t^{i,k} \sim \Lambda_t(i, j) \propto W_{t-1}^j\, m_t(x_{t-1}^j, x_t^i)\, G_t(x_{t-1}^j, x_t^i),$$

and $\sum_i W_t^i \tau_t^i$ estimates $E_{Q_t}[h_{0:t}]$ at every $t$. $K \ge 2$ backward draws are
needed for a variance that grows only linearly in $T$.

Backward samplers (``backward_sampler``):

* ``"exact"`` — categorical draws over all $N$ predecessors: $O(N^2)$ work per step, any model with
  ``fk.log_m``.
* ``"rejection"`` — propose $j \sim \mathrm{Cat}(W_{t-1})$, accept with probability
  $m_t(x_{t-1}^j, x_t^i) / \bar m_t$ (``fk.log_m_bound``); all $NK$ draws run in one batched
  ``while_loop`` until every draw is accepted or ``max_trials`` proposals were made, then the
  draws still missing are made exactly (one $O(N^2)$ step, only when needed). The loop runs as
  long as the *slowest* of the $NK$ draws, and under ``vmap`` the exact fallback is always
  computed (``cond`` becomes ``select``), so this sampler pays off only for large $N$ outside
  ``vmap``.
* ``"hybrid"`` — fixed cost $O(NKL)$ with $L$ = ``max_trials``: $L$ rejection proposals per draw in
  one vectorised step, the first accepted is used, and a draw with no acceptance falls back to the
  particle's own ancestor $a_t^i$ — itself an exact draw from $\Lambda_t(i, \cdot)$ given $x_t^i$
  when the ancestors are drawn multinomially (Dau & Chopin 2022). The pinned reference of a
  conditional run, whose ancestor is not such a draw, falls back to an exact $O(N)$ draw. The $K$
  draws of one particle are then exact marginally but not independent (they can share the
  ancestor).

``"rejection"`` and ``"hybrid"`` target $\propto W_{t-1}^j m_t(x_{t-1}^j, x_t^i)$: they are exact
when $G_t(x_{t-1}, x_t)$ does not depend on $x_{t-1}$ (true of the bootstrap models); use
``"exact"`` otherwise.

[`conditional_paris`][markovppl.particles.paris.conditional_paris] runs the same recursion on a
conditional SMC system (a reference path pinned in slot 0), as needed by Parisian particle Gibbs
([`markovppl.particles.ppg`][markovppl.particles.ppg]).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from .csmc import (_at, _check_particles_match, _log_potential, _normalise, _pin, _take, _time_length,
                   backward_log_weights)
from .feynman_kac import FeynmanKac
from .resampling import conditional, multinomial, normalized_weights

__all__ = ["PaRISResult", "ConditionalPaRISResult", "paris_smoother", "conditional_paris"]

BACKWARD_SAMPLERS = ("exact", "rejection", "hybrid")


class PaRISResult(NamedTuple):
    r"""Output of [`paris_smoother`][markovppl.particles.paris.paris_smoother].

    Attributes:
        estimate: $\sum_i W_{T-1}^i \tau_{T-1}^i$, the estimate of $E_{Q_T}[h_{0:T-1}]$ (a pytree
            shaped like one particle's value of ``h``).
        running_estimates: $\sum_i W_t^i \tau_t^i$ for every $t$ (the online estimates of
            $E_{Q_t}[h_{0:t}]$), leading axis ``T``.
        log_evidence: $\log \hat Z_T$ of the underlying particle filter (resampling at every step);
            $-\infty$ if at some step every particle has zero weight (NaN log-potentials count as
            $-\infty$), in which case the estimates are meaningless.
        ess: effective sample size of the filter weights, ``(T,)``.
    """

    estimate: Any
    running_estimates: Any
    log_evidence: jax.Array
    ess: jax.Array


class ConditionalPaRISResult(NamedTuple):
    r"""Output of [`conditional_paris`][markovppl.particles.paris.conditional_paris]: the fields of
    [`PaRISResult`][markovppl.particles.paris.PaRISResult] plus the particle system needed to trace
    paths.

    Attributes:
        estimate: $\mu = \sum_i W_{T-1}^i \tau_{T-1}^i$.
        running_estimates: online estimates, leading axis ``T``.
        log_evidence: $\log \hat Z_T$ of the conditional run.
        ess: ``(T,)``.
        particles: $x_t^i$, ``(T, N, ...)``; slot 0 holds the reference.
        log_weights: normalised log-weights, ``(T, N)``.
        backward_indices: $J_t^{i,k}$, ``(T, N, K)`` (``backward_indices[0]`` is unused, zeros).
    """

    estimate: Any
    running_estimates: Any
    log_evidence: jax.Array
    ess: jax.Array
    particles: Any
    log_weights: jax.Array
    backward_indices: jax.Array


# --------------------------------------------------------------------------- backward samplers
def _exact_draws(key, fk, t, lw_prev, x_prev, x_t, num_draws):
    """``(N, K)`` exact draws from $\\Lambda_t(i, \\cdot)$ for every particle $i$ of ``x_t``."""
    logits = jax.vmap(lambda xi: backward_log_weights(fk, t, lw_prev, x_prev, xi))(x_t)        # (N, N)
    n = logits.shape[0]
    return jax.random.categorical(key, logits, axis=-1, shape=(num_draws, n)).T.astype(jnp.int32)


def _proposals(key, lw_prev, shape):
    """Indices drawn from $\\mathrm{Cat}(W_{t-1})$ by inverting the cumulative weights."""
    w = normalized_weights(lw_prev)
    cdf = jnp.cumsum(w)
    u = jax.random.uniform(key, shape, dtype=cdf.dtype) * cdf[-1]
    return jnp.clip(jnp.searchsorted(cdf, u, side="right"), 0, w.shape[0] - 1).astype(jnp.int32)


def _accept(key, fk, t, x_prev, x_t, props, log_bound):
    """Rejection test of the proposals ``props`` (leading axes ``(N, ...)``) for the particles of x_t."""
    n = props.shape[0]
    owner = jnp.broadcast_to(jnp.arange(n).reshape((n,) + (1,) * (props.ndim - 1)), props.shape).reshape(-1)
    flat = props.reshape(-1)
    log_m = jnp.asarray(fk.log_m(t, _take(x_prev, flat), _take(x_t, owner))).reshape(props.shape)
    u = jax.random.uniform(key, props.shape, dtype=log_m.dtype)
    return jnp.log(u) < log_m - log_bound


def _rejection_draws(key, fk, t, lw_prev, x_prev, x_t, num_draws, max_trials):
    n = lw_prev.shape[0]
    log_bound = jnp.asarray(fk.log_m_bound(t))

    def cond(state):
        _, done, count, _ = state
        return jnp.logical_and(count < max_trials, ~jnp.all(done))

    def body(state):
        J, done, count, k = state
        k, k_prop, k_acc = jax.random.split(k, 3)
        props = _proposals(k_prop, lw_prev, (n, num_draws))
        ok = _accept(k_acc, fk, t, x_prev, x_t, props, log_bound) & ~done
        return jnp.where(ok, props, J), done | ok, count + 1, k

    k_loop, k_exact = jax.random.split(key)
    init = (jnp.zeros((n, num_draws), jnp.int32), jnp.zeros((n, num_draws), bool), jnp.zeros((), jnp.int32), k_loop)
    J, done, _, _ = jax.lax.while_loop(cond, body, init)
    return jax.lax.cond(jnp.all(done), lambda: J,
                        lambda: jnp.where(done, J, _exact_draws(k_exact, fk, t, lw_prev, x_prev, x_t, num_draws)))


def _hybrid_draws(key, fk, t, lw_prev, x_prev, x_t, ancestors, num_draws, max_trials, pinned):
    n = lw_prev.shape[0]
    k_prop, k_acc, k_pin = jax.random.split(key, 3)
    props = _proposals(k_prop, lw_prev, (n, num_draws, max_trials))
    ok = _accept(k_acc, fk, t, x_prev, x_t, props, jnp.asarray(fk.log_m_bound(t)))
    first = jnp.argmax(ok, axis=-1)
    chosen = jnp.take_along_axis(props, first[..., None], axis=-1)[..., 0]
    fallback = jnp.broadcast_to(ancestors[:, None], (n, num_draws))
    if pinned:
        exact0 = jax.random.categorical(k_pin, backward_log_weights(fk, t, lw_prev, x_prev, _at(x_t, 0)),
                                        shape=(num_draws,)).astype(jnp.int32)
        fallback = fallback.at[0].set(exact0)
    return jnp.where(jnp.any(ok, axis=-1), chosen, fallback).astype(jnp.int32)


# --------------------------------------------------------------------------- forward recursion
def _paris_forward(rng_key, fk, h, num_steps, num_particles, num_backward, sampler, max_trials, resample_fn,
                   reference=None, store=False):
    n, K = num_particles, num_backward
    conditional_run = reference is not None
    cond_resample = conditional(resample_fn) if conditional_run else None
    permute = (not conditional_run) and resample_fn is not multinomial
    k0, k_steps = jax.random.split(rng_key)
    x0 = fk.m0(k0, n)
    if conditional_run:
        _check_particles_match(x0, reference, n)
        x0 = _pin(x0, _at(reference, 0))
    lw0, inc0, ess0 = _normalise(_log_potential(fk, 0, x0, x0, n))
    tau0 = h(0, x0, x0)
    _check_h(tau0, n)
    tau0 = jax.tree.map(lambda v: jnp.asarray(v, jnp.result_type(v, lw0.dtype)), tau0)
    est0 = _weighted_sum(lw0, tau0)

    def step(carry, inp):
        x_prev, lw_prev, tau_prev = carry
        t, key = inp[0], inp[1]
        k_res, k_perm, k_move, k_back = jax.random.split(key, 4)
        if conditional_run:
            idx = cond_resample(k_res, lw_prev, n, jnp.zeros((), jnp.int32)).astype(jnp.int32)
        else:
            idx = resample_fn(k_res, lw_prev, n).astype(jnp.int32)
            if permute:
                idx = jax.random.permutation(k_perm, idx)
        x_anc = _take(x_prev, idx)
        x_t = fk.m(k_move, t, x_anc)
        if conditional_run:
            x_t = _pin(x_t, inp[2])
        lw, inc, ess = _normalise(_log_potential(fk, t, x_anc, x_t, n))
        if sampler == "exact":
            J = _exact_draws(k_back, fk, t, lw_prev, x_prev, x_t, K)
        elif sampler == "rejection":
            J = _rejection_draws(k_back, fk, t, lw_prev, x_prev, x_t, K, max_trials)
        else:
            J = _hybrid_draws(k_back, fk, t, lw_prev, x_prev, x_t, idx, K, max_trials, conditional_run)
        flat = J.reshape(-1)
        owner = jnp.repeat(jnp.arange(n), K)
        incr = h(t, _take(x_prev, flat), _take(x_t, owner))
        tau = jax.tree.map(lambda tp, hv: jnp.mean((tp[flat] + hv).reshape((n, K) + hv.shape[1:]), axis=1).astype(tp.dtype),
                           tau_prev, incr)
        out = (_weighted_sum(lw, tau), inc, ess)
        if store:
            out = out + (x_t, lw, J)
        return (x_t, lw, tau), out

    ts = jnp.arange(1, num_steps)
    keys = jax.random.split(k_steps, num_steps)[1:]
    xs = (ts, keys) + ((jax.tree.map(lambda a: a[1:], reference),) if conditional_run else ())
    (_, lw_last, tau_last), outs = jax.lax.scan(step, (x0, lw0, tau0), xs)
    cat = lambda first, rest: jnp.concatenate([jnp.asarray(first)[None], rest], axis=0)
    running = jax.tree.map(cat, est0, outs[0])
    increments, ess = cat(inc0, outs[1]), cat(ess0, outs[2])
    estimate = _weighted_sum(lw_last, tau_last)
    if not store:
        return PaRISResult(estimate, running, jnp.sum(increments), ess)
    particles = jax.tree.map(cat, x0, outs[3])
    log_weights = cat(lw0, outs[4])
    J_all = cat(jnp.zeros((n, K), jnp.int32), outs[5])
    return ConditionalPaRISResult(estimate, running, jnp.sum(increments), ess, particles, log_weights, J_all)


def _weighted_sum(lw, tree):
    w = normalized_weights(lw)
    return jax.tree.map(lambda v: jnp.tensordot(w.astype(v.dtype), v, axes=1), tree)


def _check_h(value, n):
    for leaf in jax.tree.leaves(value):
        if jnp.ndim(leaf) < 1 or jnp.shape(leaf)[0] != n:
            raise ValueError(f"h must return a pytree whose leaves have leading axis {n} (one value per particle), "
                             f"got a leaf of shape {jnp.shape(leaf)}")
        if not jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
            raise ValueError("h must return floating-point values")


def _validate(fk, num_particles, num_backward, sampler, max_trials):
    if int(num_particles) != num_particles or int(num_particles) < 2:
        raise ValueError(f"num_particles must be an integer >= 2, got {num_particles}")
    if int(num_backward) != num_backward or int(num_backward) < 1:
        raise ValueError(f"num_backward must be a positive integer (K >= 2 recommended), got {num_backward}")
    if sampler not in BACKWARD_SAMPLERS:
        raise ValueError(f"backward_sampler must be one of {BACKWARD_SAMPLERS}, got {sampler!r}")
    if fk.log_m is None:
        raise ValueError("PaRIS needs the transition density fk.log_m, which this FeynmanKac model does not provide")
    if sampler in ("rejection", "hybrid") and fk.log_m_bound is None:
        raise ValueError(f"backward_sampler={sampler!r} needs the bound fk.log_m_bound; use backward_sampler='exact'")
    if max_trials is None:
        max_trials = int(num_particles) if sampler == "rejection" else 10
    if int(max_trials) != max_trials or int(max_trials) < 1:
        raise ValueError(f"max_trials must be a positive integer, got {max_trials}")
    return int(max_trials)


def paris_smoother(
    rng_key,
    fk: FeynmanKac,
    h: Callable,
    num_steps: int,
    num_particles: int,
    *,
    num_backward: int = 2,
    backward_sampler: str = "exact",
    max_trials: int | None = None,
    resample_fn: Callable = multinomial,
) -> PaRISResult:
    r"""PaRIS estimate of the smoothed additive functional $E_{Q_T}[\sum_t h_t(x_{t-1}, x_t)]$.

    One ``lax.scan`` over a particle filter that resamples at every step (module docstring for the
    recursion and the backward samplers).

    Args:
        rng_key: a JAX PRNG key.
        fk: the [`FeynmanKac`][markovppl.particles.FeynmanKac] model; needs ``fk.log_m`` (and
            ``fk.log_m_bound`` for ``"rejection"``/``"hybrid"``).
        h: ``h(t, x_prev, x_t) -> pytree`` of floating leaves with a leading particle axis (any
            length; called on the $NK$ sampled pairs). At $t = 0$ it is called as ``h(0, x0, x0)``
            and gives the initial term $h_0(x_0)$ (return zeros for none).
        num_steps: $T \ge 1$.
        num_particles: $N \ge 2$.
        num_backward: $K$, backward draws per particle ($K \ge 2$ for stability; $K = 1$ allowed).
        backward_sampler: ``"exact"`` (default), ``"rejection"`` or ``"hybrid"``.
        max_trials: proposals per draw for ``"rejection"`` (default $N$) and ``"hybrid"`` (default 10).
        resample_fn: resampling scheme (default multinomial; other schemes' indices are randomly
            permuted so that each ancestor is marginally $\mathrm{Cat}(W)$, as ``"hybrid"`` needs).

    Returns:
        A [`PaRISResult`][markovppl.particles.paris.PaRISResult].

    Raises:
        ValueError: $N < 2$, $K < 1$, $T < 1$, unknown sampler, missing ``fk.log_m`` (or
            ``fk.log_m_bound`` where needed), ``h`` not returning one floating value per particle.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> import markovppl as mp
        >>> from markovppl.particles import bootstrap_lgssm, paris_smoother
        >>> ssm = mp.LinearGaussianSSM(jnp.zeros(1), jnp.eye(1), 0.9 * jnp.eye(1), jnp.eye(1),
        ...                            jnp.eye(1), 0.25 * jnp.eye(1))
        >>> y = jnp.array([[0.1], [0.5], [0.3], [-0.2]])
        >>> fk = bootstrap_lgssm(ssm, y)
        >>> sum_x = lambda t, xp, x: x[:, 0]                      # h_t = x_t, so h_{0:T-1} = sum_t x_t
        >>> res = jax.jit(lambda k: paris_smoother(k, fk, sum_x, 4, 500))(jax.random.PRNGKey(0))
        >>> exact = ssm.smooth(y).smoothed_means.sum()
        >>> res.running_estimates.shape, bool(abs(res.estimate - exact) < 0.2)
        ((4,), True)
    """
    max_trials = _validate(fk, num_particles, num_backward, backward_sampler, max_trials)
    if int(num_steps) != num_steps or int(num_steps) < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps}")
    return _paris_forward(rng_key, fk, h, int(num_steps), int(num_particles), int(num_backward), backward_sampler,
                          max_trials, resample_fn)


def conditional_paris(
    rng_key,
    fk: FeynmanKac,
    h: Callable,
    reference,
    num_particles: int,
    *,
    num_backward: int = 2,
    backward_sampler: str = "exact",
    max_trials: int | None = None,
    resample_fn: Callable = multinomial,
) -> ConditionalPaRISResult:
    r"""PaRIS on a conditional SMC system: slot 0 is pinned to ``reference`` (conditional
    multinomial resampling at every step), and the backward draws $J_t^{i,k}$ of **every** slot,
    the pinned one included, are drawn from $\Lambda_t(i, \cdot)$ (i.i.d. with ``"exact"`` and
    ``"rejection"``; exact marginally with ``"hybrid"``). The result keeps the particles and backward indices so that a path can be traced
    ([`markovppl.particles.ppg`][markovppl.particles.ppg]).

    Args:
        rng_key: a JAX PRNG key.
        fk: the Feynman–Kac model (needs ``fk.log_m``).
        h: the additive functional, as in [`paris_smoother`][markovppl.particles.paris.paris_smoother].
        reference: the reference path, a pytree with leading time axis ``T`` (as in
            [`conditional_smc`][markovppl.particles.csmc.conditional_smc]).
        num_particles: $N \ge 2$, the reference included.
        num_backward: $K$.
        backward_sampler: ``"exact"``, ``"rejection"`` or ``"hybrid"``.
        max_trials: as in ``paris_smoother``.
        resample_fn: passed to [`conditional`][markovppl.particles.conditional].

    Returns:
        A [`ConditionalPaRISResult`][markovppl.particles.paris.ConditionalPaRISResult].

    Raises:
        ValueError: as ``paris_smoother``, or a reference that does not match the particles of ``fk.m0``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> import markovppl as mp
        >>> from markovppl.particles import bootstrap_lgssm, conditional_paris
        >>> ssm = mp.LinearGaussianSSM(jnp.zeros(1), jnp.eye(1), 0.9 * jnp.eye(1), jnp.eye(1),
        ...                            jnp.eye(1), 0.25 * jnp.eye(1))
        >>> fk = bootstrap_lgssm(ssm, jnp.array([[0.1], [0.5], [0.3]]))
        >>> res = jax.jit(lambda k: conditional_paris(k, fk, lambda t, xp, x: x[:, 0], jnp.zeros((3, 1)), 8))(
        ...     jax.random.PRNGKey(0))
        >>> res.particles.shape, res.backward_indices.shape, bool(jnp.all(res.particles[:, 0] == 0.0))
        ((3, 8, 1), (3, 8, 2), True)
    """
    max_trials = _validate(fk, num_particles, num_backward, backward_sampler, max_trials)
    T = _time_length(reference)
    return _paris_forward(rng_key, fk, h, T, int(num_particles), int(num_backward), backward_sampler, max_trials,
                          resample_fn, reference=reference, store=True)
