r"""Guided Feynman–Kac models: proposals from BFFG backward messages, and user-supplied proposals.

**Guided (twisted) models.** Given positive functions $\psi_t$ on the state space (here the backward
messages $\tilde h_t(x) \propto p(y_{t:T-1} \mid x_t = x)$ of the model itself or of an auxiliary model
with the same state space), the twisted model moves particles by the guided kernels and reweights by the
twisted potentials
$$M_0^\psi = \frac{\mu_0 \psi_0}{\mu_0(\psi_0)},\quad
M_t^\psi(x_{t-1}, dx_t) = \frac{f_t(x_{t-1}, dx_t)\, \psi_t(x_t)}{f_t\psi_t(x_{t-1})},\quad
G_t^\psi(x_t) = \frac{g_t(x_t)\, f_{t+1}\psi_{t+1}(x_t)}{\psi_t(x_t)}\ (\times \mu_0(\psi_0)\ \text{at}\ t = 0),$$
with $f_T\psi_T \equiv 1$. The products telescope, so the path law $Q_T$ (the smoothing law) and the
normaliser $Z_T = p(y_{0:T-1})$ are those of the bootstrap model: the particle filter's $\hat Z_T$ stays
unbiased for any $\psi$. With the model's own exact messages, $g_t \cdot f_{t+1}h_{t+1} = h_t$, every
potential is constant ($G_0^\psi = Z_T$, $G_t^\psi = 1$): the fully adapted filter, whose evidence
estimate has zero variance and whose particles are exact smoothing draws. With messages of a nearby
auxiliary model (e.g. other parameter values, as in BFFG with an auxiliary process) the potentials are
close to constant and the variance of $\log \hat Z_T$ is far below the bootstrap filter's.

**User proposals.** [`proposal_model`][markovppl.particles.proposal_model] moves particles by a
user kernel $q_t(x_{t-1}, dx_t)$ and weights by $G_t = g_t f_t / q_t$ (and $g_0 \mu_0 / q_0$).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from .. import _linalg as la
from ..messages import gaussian as gm
from .feynman_kac import FeynmanKac, _gaussian_transition_density, bootstrap_hmm, bootstrap_lgssm
from .state_space import StateSpaceModel

__all__ = ["guided_lgssm", "guided_hmm", "proposal_model"]


def _at(tree, t):
    return jax.tree.map(lambda a: a[t], tree)


def _check_auxiliary(model, auxiliary, kind, dims):
    if auxiliary is None:
        return model
    if type(auxiliary) is not type(model):
        raise ValueError(f"auxiliary must be a {kind} like the model, got {type(auxiliary).__name__}")
    if dims(auxiliary) != dims(model):
        raise ValueError(f"auxiliary must have the model's state and observation dimensions {dims(model)}, "
                         f"got {dims(auxiliary)}")
    return auxiliary


def guided_lgssm(ssm, obs, *, auxiliary=None) -> FeynmanKac:
    r"""Guided Feynman–Kac model of a [`LinearGaussianSSM`][markovppl.LinearGaussianSSM] with
    $\psi_t$ = the Gaussian backward messages $\tilde h_t$ of ``auxiliary`` (default: ``ssm`` itself).

    The guided kernel $N(x_t; A x_{t-1} + b, Q)\, \tilde h_t(x_t)$ is Gaussian, with mean
    $\mu + K(F - H\mu)$ and covariance $K = (Q^{-1} + H)^{-1}$ (computed without inverting $H$, see
    [`condition`][markovppl.messages.gaussian.condition]); the potentials are those of the module
    docstring. With ``auxiliary=None`` the filter is fully adapted: ``log_evidence`` equals the Kalman
    log-likelihood for every seed.

    Args:
        ssm: an unbatched, time-homogeneous ``LinearGaussianSSM`` (the target model).
        obs: ``(T, m)`` observations; NaN entries (and ``ssm.missing``) are missing.
        auxiliary: an unbatched, time-homogeneous ``LinearGaussianSSM`` with the same state and
            observation dimensions whose backward messages guide the particles.

    Returns:
        A [`FeynmanKac`][markovppl.particles.FeynmanKac] on states ``(N, d)`` with the same $Q_T$ and
        $Z_T$ as [`bootstrap_lgssm`][markovppl.particles.bootstrap_lgssm]; its ``log_m`` is the
        guided kernel's density (``None`` when $Q$ is singular) and ``log_m0`` that of $M_0^\psi$.

    Raises:
        ValueError: as [`bootstrap_lgssm`][markovppl.particles.bootstrap_lgssm], or an auxiliary model
            of another type or dimension.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> import markovppl as mp
        >>> from markovppl.particles import guided_lgssm, particle_filter
        >>> ssm = mp.LinearGaussianSSM(jnp.zeros(1), jnp.eye(1), 0.9 * jnp.eye(1), jnp.eye(1),
        ...                            jnp.eye(1), 0.25 * jnp.eye(1))
        >>> y = jnp.array([[0.1], [0.5], [jnp.nan], [-0.2]])
        >>> pf = particle_filter(jax.random.PRNGKey(0), guided_lgssm(ssm, y), 4, 8)
        >>> bool(abs(pf.log_evidence - ssm.log_prob(y)) < 1e-4)       # fully adapted: exact for any N
        True
    """
    with jax.ensure_compile_time_eval():    # concrete checks stay concrete under an outer jit
        boot = bootstrap_lgssm(ssm, obs)
        dims = lambda s: (s.initial_mean.shape[-1], s.emission_matrix.shape[-2])
        aux = _check_auxiliary(ssm, auxiliary, "LinearGaussianSSM", dims)
        if aux is not ssm:
            bootstrap_lgssm(aux, obs)       # the same validation for the auxiliary model
    y = jnp.asarray(obs)
    if not jnp.issubdtype(y.dtype, jnp.floating):
        y = y.astype(ssm.initial_mean.dtype)
    msgs = aux._backward(y).messages        # log h~_t(x) = c_t + F_t'x - x'H_t x / 2, stacked (T, ...)
    num_steps = y.shape[0]
    A, b, Q = ssm.transition_matrix, ssm.transition_offset, ssm.transition_cov
    m0_, L0, LQ = ssm.initial_mean, la.psd_sqrt(ssm.initial_cov), la.psd_sqrt(Q)
    root = gm.condition(_at(msgs, 0), m0_, L0)
    prior_log_m, _ = _gaussian_transition_density(A, b, Q)

    def tilt(t, x_prev):
        """$N(A x + b, Q)$ tilted by $\\tilde h_t$, batched over the particles of ``x_prev``."""
        return gm.condition(_at(msgs, t), x_prev @ A.T + b, LQ)

    def sample_m0(rng_key, num_particles):
        eps = jax.random.normal(rng_key, (num_particles, root.noise_factor.shape[-1]), dtype=m0_.dtype)
        return root.mean + eps @ root.noise_factor.T

    def sample_m(rng_key, t, x_prev):
        c = tilt(t, x_prev)
        eps = jax.random.normal(rng_key, x_prev.shape[:1] + c.noise_factor.shape[-1:], dtype=x_prev.dtype)
        return c.mean + eps @ c.noise_factor.T

    def log_g(t, x_prev, x_t):
        nxt = jnp.minimum(t + 1, num_steps - 1)
        ahead = jnp.where(t + 1 < num_steps, tilt(nxt, x_t).log_norm, 0.0)
        return (boot.log_g(t, x_prev, x_t) + ahead - gm.evaluate(_at(msgs, t), x_t)
                + jnp.where(t == 0, root.log_norm, 0.0))

    def log_m(t, x_prev, x_t):
        return prior_log_m(t, x_prev, x_t) + gm.evaluate(_at(msgs, t), x_t) - tilt(t, x_prev).log_norm

    prior_log_m0 = _gaussian_transition_density(jnp.zeros_like(A), m0_, ssm.initial_cov)[0]

    def log_m0(x0):
        return prior_log_m0(0, x0, x0) + gm.evaluate(_at(msgs, 0), x0) - root.log_norm

    return FeynmanKac(sample_m0, sample_m, log_g, None if prior_log_m is None else log_m, None,
                      None if prior_log_m0 is None else log_m0)


def guided_hmm(hmm, obs, *, auxiliary=None) -> FeynmanKac:
    r"""Guided Feynman–Kac model of an [`HMM`][markovppl.HMM] with $\psi_t$ = the backward messages
    $\tilde h_t$ (log-vectors over the $K$ states) of ``auxiliary`` (default: ``hmm`` itself).

    $M_t^\psi(i, j) \propto P_{ij} \tilde h_t(j)$; with ``auxiliary=None`` the filter is fully adapted
    and ``log_evidence`` equals the forward-algorithm log-likelihood for every seed.

    Args:
        hmm: an unbatched ``HMM`` with a time-homogeneous transition matrix (the target model).
        obs: ``(T, *emission.event_shape)`` observations; NaN (and ``hmm.missing``) are missing.
        auxiliary: an unbatched ``HMM`` with the same number of states whose messages guide the
            particles (e.g. the model at other parameter values).

    Returns:
        A [`FeynmanKac`][markovppl.particles.FeynmanKac] on integer states ``(N,)`` with the same $Q_T$
        and $Z_T$ as [`bootstrap_hmm`][markovppl.particles.bootstrap_hmm]; ``log_m`` and ``log_m0`` are the
        guided kernels' log-probabilities and ``log_m_bound`` is 0.

    Raises:
        ValueError: as [`bootstrap_hmm`][markovppl.particles.bootstrap_hmm], or an auxiliary model of
            another type or number of states.

    Examples:
        >>> import jax, jax.numpy as jnp, numpyro.distributions as dist
        >>> import markovppl as mp
        >>> from markovppl.particles import guided_hmm, particle_filter
        >>> hmm = mp.HMM(jnp.array([0.5, 0.5]), jnp.array([[0.9, 0.1], [0.2, 0.8]]),
        ...              dist.Normal(jnp.array([-1.0, 1.0]), 1.0))
        >>> y = jnp.array([-1.2, 0.8, jnp.nan, 1.1])
        >>> pf = particle_filter(jax.random.PRNGKey(0), guided_hmm(hmm, y), 4, 4)
        >>> bool(abs(pf.log_evidence - hmm.log_prob(y)) < 1e-4)
        True
    """
    with jax.ensure_compile_time_eval():
        boot = bootstrap_hmm(hmm, obs)
        dims = lambda h: (h.num_states, tuple(h.emission.event_shape))
        aux = _check_auxiliary(hmm, auxiliary, "HMM", dims)
        if aux is not hmm:
            bootstrap_hmm(aux, obs)
    log_psi = aux._backward(jnp.asarray(obs)).messages.log_h        # (T, K), max 0 per step
    num_steps = log_psi.shape[0]
    log_pi0 = jnp.log(hmm.initial_probs)
    log_P = jnp.log(hmm.transition_matrix)
    root_logits = log_pi0 + log_psi[0]
    log_root = logsumexp(root_logits)

    def ahead(t, i):
        return logsumexp(log_P[i] + log_psi[t], axis=-1)

    def sample_m0(rng_key, num_particles):
        return jax.random.categorical(rng_key, root_logits, shape=(num_particles,))

    def sample_m(rng_key, t, x_prev):
        return jax.random.categorical(rng_key, log_P[x_prev] + log_psi[t])

    def log_g(t, x_prev, x_t):
        nxt = jnp.minimum(t + 1, num_steps - 1)
        look = jnp.where(t + 1 < num_steps, ahead(nxt, x_t), 0.0)
        return boot.log_g(t, x_prev, x_t) + look - log_psi[t][x_t] + jnp.where(t == 0, log_root, 0.0)

    def log_m(t, x_prev, x_t):
        return log_P[x_prev, x_t] + log_psi[t][x_t] - ahead(t, x_prev)

    return FeynmanKac(sample_m0, sample_m, log_g, log_m, lambda t: jnp.zeros((), log_P.dtype),
                      lambda x0: root_logits[x0] - log_root)


def proposal_model(model: StateSpaceModel, obs, proposal: Callable, log_proposal: Callable, *,
                   initial_proposal: Callable | None = None,
                   initial_log_proposal: Callable | None = None) -> FeynmanKac:
    r"""Feynman–Kac model of a [`StateSpaceModel`][markovppl.particles.StateSpaceModel] whose particles
    move by a user proposal $q_t$:
    $$M_t = q_t,\qquad \log G_t(x_{t-1}, x_t) = \log g_t(x_t, y_t) + \log f_t(x_{t-1}, x_t)
    - \log q_t(x_{t-1}, x_t),\qquad \log G_0 = \log g_0 + \log \mu_0 - \log q_0,$$
    which has the bootstrap model's $Q_T$ and $Z_T$ whenever $q_t(x_{t-1}, \cdot)$ dominates
    $f_t(x_{t-1}, \cdot)\, g_t$. The proposal may look at the data (close over ``obs``), e.g. the
    locally optimal $q_t \propto f_t g_t$.

    Args:
        model: the state-space model (its ``transition(t, x).log_prob`` is $\log f_t$).
        obs: ``(T, *obs_shape)`` observations (missing steps as in ``model.bootstrap``).
        proposal: ``proposal(rng_key, t, x_prev) -> x_t``, one draw per particle (``t >= 1``).
        log_proposal: ``log_proposal(t, x_prev, x_t) -> (N,)``, $\log q_t(x_{t-1}, x_t)$ with the same
            leading-axis broadcasting as ``FeynmanKac.log_m`` (it is this model's ``log_m``).
        initial_proposal: optional ``initial_proposal(rng_key, N) -> x_0`` (default: $\mu_0$ itself).
        initial_log_proposal: ``initial_log_proposal(x_0) -> (N,)``, required with ``initial_proposal``.

    Returns:
        A [`FeynmanKac`][markovppl.particles.FeynmanKac].

    Raises:
        TypeError: a proposal argument that is not callable.
        ValueError: ``initial_proposal`` without ``initial_log_proposal`` (or the reverse), or ``obs``
            rejected by the model.

    Examples:
        >>> import jax, jax.numpy as jnp, numpyro.distributions as dist
        >>> from markovppl.particles import StateSpaceModel, particle_filter, proposal_model
        >>> ssm = StateSpaceModel(dist.Normal(0.0, 1.0), lambda t, x: dist.Normal(0.9 * x, 1.0),
        ...                       lambda t, x: dist.Normal(x, 0.5))
        >>> wide = lambda t, x: dist.Normal(0.9 * x, 2.0)          # a heavier-tailed random walk
        >>> fk = proposal_model(ssm, jnp.array([0.2, -0.1, 0.4]), lambda k, t, x: wide(t, x).sample(k),
        ...                     lambda t, xp, x: wide(t, xp).log_prob(x))
        >>> particle_filter(jax.random.PRNGKey(0), fk, 3, 100).particles.shape
        (3, 100)
    """
    if not isinstance(model, StateSpaceModel):
        raise TypeError(f"model must be a StateSpaceModel, got {type(model).__name__}")
    for name, fn in (("proposal", proposal), ("log_proposal", log_proposal)):
        if not callable(fn):
            raise TypeError(f"{name} must be callable, got {type(fn).__name__}")
    if (initial_proposal is None) != (initial_log_proposal is None):
        raise ValueError("give both initial_proposal and initial_log_proposal, or neither")
    boot = model.bootstrap(obs)

    def log_g(t, x_prev, x_t):
        lg = boot.log_g(t, x_prev, x_t)
        move = model._log_transition(t, x_prev, x_t) - log_proposal(t, x_prev, x_t)
        if initial_proposal is None:
            first = jnp.zeros_like(lg)
        else:
            first = model.initial.log_prob(x_t) - initial_log_proposal(x_t)
        if isinstance(t, int):                      # the filter's t = 0 call: x_prev is x_0 itself
            return lg + (first if t == 0 else move)
        return lg + jnp.where(t == 0, first, move)

    return FeynmanKac(initial_proposal or boot.m0, proposal, log_g, log_proposal, None,
                      initial_log_proposal or model.initial.log_prob)
