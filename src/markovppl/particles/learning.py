r"""Parameter learning with particle smoothers: Fisher-identity scores, stochastic-approximation MLE
and Markov score climbing.

**Score by Fisher's identity.** For a family of Feynman–Kac models ``fk_fn(theta)`` (e.g. the
bootstrap model of a state-space model with parameters $\theta$),

$$\nabla_\theta \log Z_T(\theta) = E_{Q_T^\theta}\Big[\nabla_\theta \log\big(m_0^\theta(x_0) G_0^\theta(x_0)\big)
+ \sum_{t \ge 1} \nabla_\theta \log\big(m_t^\theta(x_{t-1}, x_t)\, G_t^\theta(x_{t-1}, x_t)\big)\Big],$$

an additive functional ([`fisher_score_functional`][markovppl.particles.learning.fisher_score_functional])
that PaRIS or PPG estimate; the gradients come from ``jax.jacfwd`` of the model's log-densities at the
particles, never from differentiating through resampling.

**Stochastic-approximation MLE** ([`sa_mle`][markovppl.particles.learning.sa_mle]): at each
iteration the score is estimated at the current $\theta_k$ — by one PPG iteration whose conditional
path carries over to the next $\theta$ (Cardoso et al. 2023), or by an independent PaRIS run — and
$\theta_{k+1} = \theta_k + \gamma_{k+1} \hat S_k$ (Robbins–Monro, $\gamma_k = \gamma_0 k^{-a}$), or any
optax optimiser. Iterates are Polyak-averaged.

**Markov score climbing** ([`markov_score_climbing`][markovppl.particles.learning.markov_score_climbing],
Naesseth, Lindsten & Blei 2020): fit a variational family $q_\lambda(x_{0:T-1})$ by minimising
$\mathrm{KL}(Q_T \,\|\, q_\lambda)$ with steps $\lambda \mathrel{+}= \epsilon_k \nabla_\lambda \log q_\lambda(\zeta[k])$
along a $Q_T$-invariant Markov chain $\zeta[k]$. With an additive $\log q_\lambda$ the PPG estimate
$\mu[k] = E[\nabla_\lambda \log q_\lambda(\zeta[k+1]) \mid \text{system}]$ replaces the single-path
gradient (its Rao–Blackwellisation).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from .csmc import _time_length
from .feynman_kac import FeynmanKac
from .paris import _paris_forward, _validate
from .ppg import PPGState, _ppg_step
from .resampling import multinomial

__all__ = ["LearningResult", "fisher_score_functional", "score_paris", "sa_mle", "markov_score_climbing"]


class LearningResult(NamedTuple):
    r"""Output of [`sa_mle`][markovppl.particles.learning.sa_mle] and
    [`markov_score_climbing`][markovppl.particles.learning.markov_score_climbing].

    Attributes:
        params: the last iterate $\theta_k$ (or $\lambda_k$).
        params_average: Polyak average of the iterates from ``averaging_start`` on.
        trace: all iterates, leading axis ``k``.
        scores: the score estimates used at each iteration, leading axis ``k``.
        path: the last path of the PPG chain (a reference for continuing).
    """

    params: Any
    params_average: Any
    trace: Any
    scores: Any
    path: Any


def _is_zero(t) -> bool:
    return not isinstance(t, jax.core.Tracer) and int(t) == 0


def fisher_score_functional(fk_fn: Callable, theta) -> Callable:
    r"""The additive functional of Fisher's identity at ``theta``:
    $h_0(x_0) = \nabla_\theta[\log m_0^\theta(x_0) + \log G_0^\theta(x_0)]$ and
    $h_t(x_{t-1}, x_t) = \nabla_\theta[\log m_t^\theta(x_{t-1}, x_t) + \log G_t^\theta(x_{t-1}, x_t)]$, so that
    $E_{Q_T^\theta}[\sum_t h_t] = \nabla_\theta \log Z_T(\theta)$.

    Args:
        fk_fn: ``theta -> FeynmanKac``, differentiable in ``theta`` through ``log_m0``, ``log_m`` and
            ``log_g`` (e.g. ``lambda th: bootstrap_lgssm(make_ssm(th), y)``).
        theta: a pytree of floating parameters.

    Returns:
        ``h(t, x_prev, x_t) -> pytree like theta`` whose leaves have a leading particle axis. At a
        concrete ``t == 0`` it returns the initial term; at a traced ``t`` (inside a scan) the
        transition term, blended with the initial term where ``t == 0``.

    Raises:
        ValueError: ``fk_fn(theta)`` lacks ``log_m`` or ``log_m0``.

    Examples:
        >>> import jax.numpy as jnp
        >>> import markovppl as mp
        >>> from markovppl.particles import bootstrap_lgssm
        >>> y = jnp.array([[0.3], [0.1]])
        >>> fk_fn = lambda th: bootstrap_lgssm(mp.LinearGaussianSSM(jnp.zeros(1), jnp.eye(1), th["rho"] * jnp.eye(1),
        ...                                    jnp.eye(1), jnp.eye(1), jnp.eye(1)), y)
        >>> h = fisher_score_functional(fk_fn, {"rho": 0.5})
        >>> h(1, jnp.ones((3, 1)), jnp.zeros((3, 1)))["rho"].tolist()      # d/drho of -(x_t - rho x_prev)^2 / 2
        [-0.5, -0.5, -0.5]
    """
    fk = fk_fn(theta)
    if fk.log_m is None or fk.log_m0 is None:
        raise ValueError("the Fisher score needs fk.log_m and fk.log_m0 (transition and initial densities)")

    def initial(th, x):
        f = fk_fn(th)
        return f.log_m0(x) + f.log_g(0, x, x)

    def transition(th, t, xp, x):
        f = fk_fn(th)
        return f.log_m(t, xp, x) + f.log_g(t, xp, x)

    def h(t, x_prev, x_t):
        if _is_zero(t):
            return jax.jacfwd(initial)(theta, x_t)
        trans = jax.jacfwd(transition)(theta, t, x_prev, x_t)
        if not isinstance(t, jax.core.Tracer):
            return trans
        init = jax.jacfwd(initial)(theta, x_t)
        return jax.tree.map(lambda a, b: jnp.where(t == 0, b, a), trans, init)

    return h


def score_paris(
    rng_key,
    fk_fn: Callable,
    theta,
    num_steps: int,
    num_particles: int,
    *,
    num_backward: int = 2,
    backward_sampler: str = "exact",
    max_trials: int | None = None,
    resample_fn: Callable = multinomial,
):
    r"""PaRIS estimate of the score $\nabla_\theta \log Z_T(\theta)$ (Fisher's identity), with the
    particle filter's $\log \hat Z_T$.

    Returns:
        ``(score, log_evidence)``, ``score`` a pytree like ``theta``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> import markovppl as mp
        >>> from markovppl.particles import bootstrap_lgssm
        >>> y = jnp.array([[0.3], [0.1], [0.5]])
        >>> make = lambda th: mp.LinearGaussianSSM(jnp.zeros(1), jnp.eye(1), th * jnp.eye(1), jnp.eye(1),
        ...                                        jnp.eye(1), jnp.eye(1))
        >>> fk_fn = lambda th: bootstrap_lgssm(make(th), y)
        >>> score, _ = jax.jit(lambda k: score_paris(k, fk_fn, 0.5, 3, 2000))(jax.random.PRNGKey(0))
        >>> bool(abs(score - jax.grad(lambda th: make(th).log_prob(y))(0.5)) < 0.1)
        True
    """
    fk = fk_fn(theta)
    max_trials = _validate(fk, num_particles, num_backward, backward_sampler, max_trials)
    res = _paris_forward(rng_key, fk, fisher_score_functional(fk_fn, theta), int(num_steps), int(num_particles),
                         int(num_backward), backward_sampler, max_trials, resample_fn)
    return res.estimate, res.log_evidence


def _check_iterations(num_iterations, averaging_start):
    k = int(num_iterations)
    if k != num_iterations or k < 1:
        raise ValueError(f"num_iterations must be a positive integer, got {num_iterations}")
    start = k // 2 if averaging_start is None else int(averaging_start)
    if not 0 <= start < k:
        raise ValueError(f"averaging_start must be in [0, num_iterations), got {averaging_start}")
    return k, start


def _climb(rng_key, params0, path0, k, start, score_fn, step_size, decay, optimizer):
    """Shared ascent loop: ``score_fn(key, params, path) -> (score, new_path)``; one ``lax.scan``."""
    if optimizer is None:
        opt_state0 = jnp.zeros((), jnp.int32)
    else:
        opt_state0 = optimizer.init(params0)

    def body(carry, inp):
        params, opt_state, path = carry
        key, i = inp
        score, path = score_fn(key, params, path)
        if optimizer is None:
            gamma = step_size * (i + 1.0) ** (-decay)
            params = jax.tree.map(lambda p, g: p + gamma * g, params, score)
        else:
            neg = jax.tree.map(jnp.negative, score)                 # optax minimises
            updates, opt_state = optimizer.update(neg, opt_state, params)
            params = jax.tree.map(jnp.add, params, updates)
        return (params, opt_state, path), (params, score)

    (params, _, path), (trace, scores) = jax.lax.scan(
        body, (params0, opt_state0, path0), (jax.random.split(rng_key, k), jnp.arange(k)))
    average = jax.tree.map(lambda a: jnp.mean(a[start:], axis=0), trace)
    return LearningResult(params, average, trace, scores, path)


def _as_float_tree(tree):
    out = jax.tree.map(lambda a: jnp.asarray(a, jnp.result_type(a, float)), tree)
    return out


def sa_mle(
    rng_key,
    fk_fn: Callable,
    theta0,
    reference,
    num_particles: int,
    num_iterations: int,
    *,
    score_method: str = "ppg",
    step_size: float = 1e-2,
    decay: float = 0.6,
    optimizer=None,
    averaging_start: int | None = None,
    num_backward: int = 2,
    backward_sampler: str = "exact",
    max_trials: int | None = None,
    resample_fn: Callable = multinomial,
) -> LearningResult:
    r"""Maximum likelihood by stochastic approximation with particle score estimates.

    Iteration $k$: $\hat S_k$ = the Fisher-identity score at $\theta_k$ from one PPG iteration
    (``score_method="ppg"``: conditional PaRIS given the current path, which is then renewed and kept
    for $\theta_{k+1}$) or from an independent PaRIS run (``"paris"``); then
    $\theta_{k+1} = \theta_k + \gamma_0 (k+1)^{-a} \hat S_k$, or an optax step on $-\hat S_k$.

    Args:
        rng_key: a JAX PRNG key.
        fk_fn: ``theta -> FeynmanKac`` (needs ``log_m`` and ``log_m0``, differentiable in ``theta``).
        theta0: initial parameters (pytree of floats, unconstrained: map them to the model inside
            ``fk_fn``).
        reference: the starting path of the PPG chain (leading time axis ``T``; with ``"paris"`` only
            its length is used).
        num_particles: $N \ge 2$.
        num_iterations: $k \ge 1$.
        score_method: ``"ppg"`` (default) or ``"paris"``.
        step_size: $\gamma_0$ (ignored with ``optimizer``). The score grows like $T$: scale
            $\gamma_0 \propto 1/T$.
        decay: $a \in (1/2, 1]$.
        optimizer: an optax ``GradientTransformation`` (anything with ``init(params)`` and
            ``update(grads, state, params)``), used instead of Robbins–Monro steps.
        averaging_start: first iterate of the Polyak average (default ``k // 2``).
        num_backward: $K$, as in [`ppg_step`][markovppl.particles.ppg.ppg_step].
        backward_sampler: as in ``ppg_step``.
        max_trials: as in ``ppg_step``.
        resample_fn: as in ``ppg_step``.

    Returns:
        A [`LearningResult`][markovppl.particles.learning.LearningResult].

    Raises:
        ValueError: unknown ``score_method``, bad iteration counts, or as ``ppg_step``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> import markovppl as mp
        >>> from markovppl.particles import bootstrap_lgssm
        >>> y = jnp.array([[0.3], [0.9], [1.2], [0.8]])
        >>> make = lambda th: mp.LinearGaussianSSM(jnp.zeros(1), jnp.eye(1), th * jnp.eye(1), jnp.eye(1),
        ...                                        jnp.eye(1), 0.25 * jnp.eye(1))
        >>> fk_fn = lambda th: bootstrap_lgssm(make(th), y)
        >>> run = jax.jit(lambda k: sa_mle(k, fk_fn, 0.0, jnp.zeros((4, 1)), 8, 50, step_size=0.1))
        >>> res = run(jax.random.PRNGKey(0))
        >>> res.trace.shape, bool(res.params_average > 0.3)
        ((50,), True)
    """
    if score_method not in ("ppg", "paris"):
        raise ValueError(f"score_method must be 'ppg' or 'paris', got {score_method!r}")
    k, start = _check_iterations(num_iterations, averaging_start)
    theta0 = _as_float_tree(theta0)
    fk0 = fk_fn(theta0)
    max_trials = _validate(fk0, num_particles, num_backward, backward_sampler, max_trials)
    if fk0.log_m0 is None:
        raise ValueError("the Fisher score needs fk.log_m0 (the initial density)")
    T = _time_length(reference)
    n, K = int(num_particles), int(num_backward)

    def score_fn(key, theta, path):
        fk = fk_fn(theta)
        h = fisher_score_functional(fk_fn, theta)
        if score_method == "paris":
            res = _paris_forward(key, fk, h, T, n, K, backward_sampler, max_trials, resample_fn)
            return res.estimate, path
        state, info = _ppg_step(key, PPGState(path), fk, h, T, n, K, backward_sampler, max_trials, resample_fn)
        return info.estimate, state.path

    return _climb(rng_key, theta0, jax.tree.map(jnp.asarray, reference), k, start, score_fn, step_size, decay, optimizer)


def markov_score_climbing(
    rng_key,
    fk: FeynmanKac,
    log_q: Callable,
    lam0,
    reference,
    num_particles: int,
    num_iterations: int,
    *,
    step_size: float = 1e-2,
    decay: float = 0.6,
    optimizer=None,
    averaging_start: int | None = None,
    num_backward: int = 2,
    backward_sampler: str = "exact",
    max_trials: int | None = None,
    resample_fn: Callable = multinomial,
) -> LearningResult:
    r"""Markov score climbing with PPG: fit $q_\lambda$ to $Q_T$ by minimising $\mathrm{KL}(Q_T\|q_\lambda)$.

    $\log q_\lambda(x_{0:T-1}) = \sum_t$ ``log_q(lam, t, x_prev, x_t)`` must be additive over
    consecutive pairs (forward- or backward-Markov families, mean-field families; the $t = 0$ term is
    called as ``log_q(lam, 0, x0, x0)``). Each iteration runs one PPG step on ``fk`` (which leaves
    $Q_T$ invariant), uses its estimate $\mu$ of $E[\nabla_\lambda \log q_\lambda(\zeta_{\text{new}}) \mid
    \text{system}]$ and steps $\lambda \mathrel{+}= \epsilon_k \mu$ (or an optax step on $-\mu$).

    Args:
        rng_key: a JAX PRNG key.
        fk: the Feynman–Kac model of the target (needs ``fk.log_m``).
        log_q: ``log_q(lam, t, x_prev, x_t) -> (n,)`` additive log-density terms, differentiable in
            ``lam``.
        lam0: initial variational parameters (pytree of floats).
        reference: the starting path (leading time axis ``T``).
        num_particles: $N \ge 2$.
        num_iterations: $k \ge 1$.
        step_size: $\epsilon_0$ of the steps $\epsilon_k = \epsilon_0 k^{-a}$ (ignored with ``optimizer``).
        decay: $a$.
        optimizer: an optax-style optimiser, as in [`sa_mle`][markovppl.particles.learning.sa_mle].
        averaging_start: first iterate of the Polyak average (default ``k // 2``).
        num_backward: $K$, as in [`ppg_step`][markovppl.particles.ppg.ppg_step].
        backward_sampler: as in ``ppg_step``.
        max_trials: as in ``ppg_step``.
        resample_fn: as in ``ppg_step``.

    Returns:
        A [`LearningResult`][markovppl.particles.learning.LearningResult] (``params`` = $\lambda$).

    Raises:
        ValueError: bad iteration counts, or as ``ppg_step``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> import markovppl as mp
        >>> from markovppl.particles import bootstrap_lgssm
        >>> ssm = mp.LinearGaussianSSM(jnp.zeros(1), jnp.eye(1), 0.9 * jnp.eye(1), jnp.eye(1),
        ...                            jnp.eye(1), 0.25 * jnp.eye(1))
        >>> fk = bootstrap_lgssm(ssm, jnp.array([[0.3], [0.9], [1.2]]))
        >>> log_q = lambda lam, t, xp, x: -0.5 * (x[:, 0] - lam[t]) ** 2       # q = prod_t N(x_t; lam_t, 1)
        >>> run = jax.jit(lambda k: markov_score_climbing(k, fk, log_q, jnp.zeros(3), jnp.zeros((3, 1)), 8, 200,
        ...                                               step_size=0.3))
        >>> lam = run(jax.random.PRNGKey(0)).params_average
        >>> bool(jnp.max(jnp.abs(lam - ssm.smooth(jnp.array([[0.3], [0.9], [1.2]])).smoothed_means[:, 0])) < 0.15)
        True
    """
    k, start = _check_iterations(num_iterations, averaging_start)
    max_trials = _validate(fk, num_particles, num_backward, backward_sampler, max_trials)
    lam0 = _as_float_tree(lam0)
    T = _time_length(reference)
    n, K = int(num_particles), int(num_backward)

    def score_fn(key, lam, path):
        h = lambda t, xp, x: jax.jacfwd(lambda l: log_q(l, t, xp, x))(lam)
        state, info = _ppg_step(key, PPGState(path), fk, h, T, n, K, backward_sampler, max_trials, resample_fn)
        return info.estimate, state.path

    return _climb(rng_key, lam0, jax.tree.map(jnp.asarray, reference), k, start, score_fn, step_size, decay, optimizer)
