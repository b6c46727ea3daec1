r"""Nonlinear state-space models given by NumPyro distributions, and their bootstrap Feynman–Kac model.

$$x_0 \sim \mu_0,\qquad x_t \mid x_{t-1} \sim f_t(x_{t-1}, \cdot)\ (t \ge 1),\qquad
y_t \mid x_t \sim g_t(x_t, \cdot)\ (t \ge 0).$$

A [`StateSpaceModel`][markovppl.particles.StateSpaceModel] is an *inference-only* model object, not a
NumPyro distribution over $y$: a NumPyro distribution must have an exact ``log_prob``, and
$p(y_{0:T-1})$ of a nonlinear model has none (a particle filter only estimates it without bias). It
offers instead what each inference mode needs:

* [`bootstrap`][markovppl.particles.state_space.StateSpaceModel.bootstrap] — the bootstrap
  [`FeynmanKac`][markovppl.particles.FeynmanKac] model (with the transition density, so backward
  sampling and PaRIS apply) for particle filters, conditional SMC, PaRIS and particle marginal
  Metropolis–Hastings;
* [`path_prior`][markovppl.particles.state_space.StateSpaceModel.path_prior] and
  [`observation_law`][markovppl.particles.state_space.StateSpaceModel.observation_law] — NumPyro distributions with
  exact ``log_prob`` over the latent path and over $y$ given the path, so that a NumPyro model can
  write the joint density $p(x, y \mid \theta)$ with the path as a sample site (particle Gibbs in
  NumPyro moves that site by conditional SMC and the parameters by NUTS);
* [`sample`][markovppl.particles.state_space.StateSpaceModel.sample] — forward simulation.

Conventions: ``transition(t, x_prev)`` and ``emission(t, x)`` are called with a leading particle axis
on the state (``(N, *state_shape)``) and return a distribution with batch shape ``(N,)`` (state, resp.
observation, shapes as event shape); ``t`` may be a traced integer. A step whose observation is all NaN
(or flagged in ``missing``) is missing: its potential is 1.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from numpyro.distributions import constraints

from .._validation import is_concrete
from .feynman_kac import FeynmanKac

__all__ = ["StateSpaceModel", "MarkovPathPrior", "ObservationLaw"]


def _nan_to_zero(y):
    return jnp.where(jnp.isnan(y), 0.0, y) if jnp.issubdtype(y.dtype, jnp.floating) else y


class StateSpaceModel:
    r"""A (possibly nonlinear, non-Gaussian) state-space model given by NumPyro distributions.

    Args:
        initial: NumPyro distribution of $x_0$, batch shape ``()``, event shape = the state shape.
        transition: ``transition(t, x_prev) -> distribution`` of $x_t$ given $x_{t-1}$ (``t >= 1``),
            batched over the leading particle axis of ``x_prev``; its ``log_prob`` is the transition
            density $\log f_t(x_{t-1}, x_t)$ (used by backward sampling, PaRIS and the path prior).
        emission: ``emission(t, x) -> distribution`` of $y_t$ given $x_t$, batched over the leading
            particle axis of ``x``.
        num_steps: $T$, needed only for [`sample`][markovppl.particles.state_space.StateSpaceModel.sample] and
            [`path_prior`][markovppl.particles.state_space.StateSpaceModel.path_prior] (otherwise taken from the data).
        missing: optional boolean ``(T,)``, steps whose observation is missing (in addition to all-NaN
            steps).
        log_transition_bound: optional ``(t) -> scalar``, an upper bound of $\log f_t(x, x')$ over
            $x, x'$ (for rejection-sampling backward kernels).

    Raises:
        TypeError: ``initial`` is not a NumPyro distribution or a callable argument is not callable.
        ValueError: ``initial`` is batched, or ``num_steps < 1``.

    Examples:
        >>> import jax, jax.numpy as jnp, numpyro.distributions as dist
        >>> from markovppl.particles import StateSpaceModel, particle_filter
        >>> growth = StateSpaceModel(
        ...     dist.Normal(0.0, jnp.sqrt(5.0)),
        ...     lambda t, x: dist.Normal(x / 2 + 25 * x / (1 + x**2) + 8 * jnp.cos(1.2 * t), jnp.sqrt(10.0)),
        ...     lambda t, x: dist.Normal(x**2 / 20, 1.0), num_steps=20)
        >>> x, y = growth.sample(jax.random.PRNGKey(0))
        >>> x.shape, y.shape
        ((20,), (20,))
        >>> pf = particle_filter(jax.random.PRNGKey(1), growth.bootstrap(y), 20, 500)
        >>> bool(jnp.isfinite(pf.log_evidence))
        True
    """

    def __init__(self, initial, transition: Callable, emission: Callable, num_steps: int | None = None, *,
                 missing=None, log_transition_bound: Callable | None = None):
        if not isinstance(initial, dist.Distribution):
            raise TypeError(f"initial must be a NumPyro distribution, got {type(initial).__name__}")
        if tuple(initial.batch_shape) != ():
            raise ValueError(f"initial must have batch_shape (), got {tuple(initial.batch_shape)}; "
                             "put the state dimensions in the event shape (e.g. .to_event(1))")
        for name, fn in (("transition", transition), ("emission", emission)):
            if not callable(fn):
                raise TypeError(f"{name} must be a callable (t, x) -> distribution, got {type(fn).__name__}")
        if log_transition_bound is not None and not callable(log_transition_bound):
            raise TypeError("log_transition_bound must be a callable t -> scalar")
        if num_steps is not None:
            num_steps = int(num_steps)
            if num_steps < 1:
                raise ValueError(f"num_steps must be at least 1, got {num_steps}")
        self.initial = initial
        self.transition = transition
        self.emission = emission
        self.num_steps = num_steps
        self.missing = None if missing is None else jnp.asarray(missing, bool)
        self.log_transition_bound = log_transition_bound

    @property
    def state_shape(self) -> tuple:
        """Shape of one state $x_t$ (the event shape of ``initial``).

        Examples:
            >>> import numpyro.distributions as dist
            >>> StateSpaceModel(dist.Normal(0.0, 1.0).expand([2]).to_event(1), lambda t, x: None,
            ...                 lambda t, x: None).state_shape
            (2,)
        """
        return tuple(self.initial.event_shape)

    # ------------------------------------------------------------------ simulation
    def sample(self, rng_key, num_steps: int | None = None):
        r"""Simulate one path and its observations: ``(x, y)`` with ``x`` ``(T, *state_shape)`` and
        ``y`` ``(T, *obs_shape)``, as one ``lax.scan``.

        Args:
            rng_key: a JAX PRNG key.
            num_steps: $T$ (default: the model's ``num_steps``).

        Raises:
            ValueError: no number of steps is known.

        Examples:
            >>> import jax, jax.numpy as jnp, numpyro.distributions as dist
            >>> ssm = StateSpaceModel(dist.Normal(0.0, 1.0), lambda t, x: dist.Normal(0.9 * x, 1.0),
            ...                       lambda t, x: dist.Poisson(jnp.exp(x)))
            >>> x, y = ssm.sample(jax.random.PRNGKey(0), 5)
            >>> x.shape, y.shape, y.dtype.kind
            ((5,), (5,), 'i')
        """
        num_steps = self._steps(num_steps)
        k0, ky0, k_rest = jax.random.split(rng_key, 3)
        x0 = self.initial.sample(k0, (1,))
        y0 = self.emission(0, x0).sample(ky0)

        def step(x_prev, inp):
            t, key = inp
            kx, ky = jax.random.split(key)
            x = self.transition(t, x_prev).sample(kx)
            return x, (x[0], self.emission(t, x).sample(ky)[0])

        if num_steps == 1:
            return x0, y0
        _, (xs, ys) = jax.lax.scan(step, x0, (jnp.arange(1, num_steps), jax.random.split(k_rest, num_steps - 1)))
        return jnp.concatenate([x0, xs], 0), jnp.concatenate([y0, ys], 0)

    def _steps(self, num_steps):
        num_steps = self.num_steps if num_steps is None else int(num_steps)
        if num_steps is None:
            raise ValueError("the number of steps is unknown: pass num_steps (here or to the model)")
        if num_steps < 1:
            raise ValueError(f"num_steps must be at least 1, got {num_steps}")
        return num_steps

    # ------------------------------------------------------------------ data handling
    def _prepare(self, obs):
        """Observations with missing steps zero-filled, the missing flags ``(T,)`` and the observation
        event rank, after the shape checks."""
        y = jnp.asarray(obs)
        if y.ndim < 1 or y.shape[0] < 1:
            raise ValueError(f"obs must have a leading time axis with at least one step, got shape {y.shape}")
        if self.num_steps is not None and y.shape[0] != self.num_steps:
            raise ValueError(f"obs has {y.shape[0]} steps but the model was built with num_steps={self.num_steps}")
        x_probe = jax.eval_shape(lambda k: self.initial.sample(k, (1,)), jax.random.PRNGKey(0))
        em = jax.eval_shape(lambda x: _event_shape_probe(self.emission(0, x)), x_probe)
        obs_shape = tuple(int(s) for s in em.shape)
        if tuple(y.shape[1:]) != obs_shape:
            raise ValueError(f"obs must have shape (T, *{obs_shape}) for this model's emission, got {y.shape}")
        ev = len(obs_shape)
        axes = tuple(range(1, 1 + ev))
        if jnp.issubdtype(y.dtype, jnp.floating):
            nan = jnp.isnan(y)
            miss = jnp.all(nan, axis=axes) if ev else nan
            if ev and is_concrete(y) and np.any(np.any(np.isnan(np.asarray(y)), axis=axes)
                                                & ~np.all(np.isnan(np.asarray(y)), axis=axes)):
                raise ValueError("obs has steps with some but not all entries NaN; a step is missing only as a "
                                 "whole (a generic emission cannot marginalise single coordinates)")
        else:
            miss = jnp.zeros(y.shape[:1], bool)
        if self.missing is not None:
            if self.missing.shape != y.shape[:1]:
                raise ValueError(f"missing must have shape ({y.shape[0]},), got {self.missing.shape}")
            miss = miss | self.missing
        return _nan_to_zero(y), miss, ev

    def _log_emission(self, y, miss):
        def log_g(t, x_prev, x_t):
            lp = self.emission(t, x_t).log_prob(y[t])
            return jnp.where(miss[t], 0.0, lp)

        return log_g

    def _log_transition(self, t, x_prev, x_t):
        r"""$\log f_t(x_{t-1}, x_t)$ with the particles of ``x_prev`` and ``x_t`` paired one to one;
        leading axes broadcast (a leading axis of 1 is scored against every particle of the other)."""
        x_prev, x_t = jnp.asarray(x_prev), jnp.asarray(x_t)
        n = max(x_prev.shape[0], x_t.shape[0])
        xp = jnp.broadcast_to(x_prev, (n,) + tuple(x_prev.shape[1:]))
        xt = jnp.broadcast_to(x_t, (n,) + tuple(x_t.shape[1:]))
        return self.transition(t, xp).log_prob(xt)

    # ------------------------------------------------------------------ Feynman-Kac
    def bootstrap(self, obs) -> FeynmanKac:
        r"""Bootstrap Feynman–Kac model: $M_0 = \mu_0$, $M_t = f_t$, $\log G_t = \log g_t(x_t, y_t)$
        (0 at a missing step), so that $Z_T = p(y_{0:T-1})$ and $Q_T$ is the smoothing law.

        ``log_m`` is the transition distribution's ``log_prob``, ``log_m0`` the initial distribution's;
        ``log_m_bound`` is the model's ``log_transition_bound`` (``None`` if not given).

        Args:
            obs: ``(T, *obs_shape)`` observations.

        Returns:
            A [`FeynmanKac`][markovppl.particles.FeynmanKac] on states ``(N, *state_shape)``.

        Raises:
            ValueError: ``obs`` of the wrong shape, a partially missing step, or a ``missing`` of the
                wrong shape.

        Examples:
            >>> import jax, jax.numpy as jnp, numpyro.distributions as dist
            >>> ssm = StateSpaceModel(dist.Normal(0.0, 1.0), lambda t, x: dist.Normal(0.9 * x, 1.0),
            ...                       lambda t, x: dist.Normal(x, 0.5))
            >>> fk = ssm.bootstrap(jnp.array([0.3, jnp.nan, -0.1]))
            >>> x0 = fk.m0(jax.random.PRNGKey(0), 4)
            >>> fk.log_g(1, x0, x0).tolist(), fk.log_m(1, x0, x0).shape
            ([0.0, 0.0, 0.0, 0.0], (4,))
        """
        y, miss, _ = self._prepare(obs)
        bound = self.log_transition_bound
        return FeynmanKac(
            m0=lambda rng_key, n: self.initial.sample(rng_key, (n,)),
            m=lambda rng_key, t, x_prev: self.transition(t, x_prev).sample(rng_key),
            log_g=self._log_emission(y, miss),
            log_m=self._log_transition,
            log_m_bound=None if bound is None else (lambda t: jnp.asarray(bound(t))),
            log_m0=self.initial.log_prob,
        )

    # ------------------------------------------------------------------ NumPyro laws
    def path_prior(self, num_steps: int | None = None) -> "MarkovPathPrior":
        r"""The prior law of the latent path $x_{0:T-1}$ as a NumPyro distribution (exact ``log_prob``).

        Examples:
            >>> import jax, jax.numpy as jnp, numpyro.distributions as dist
            >>> ssm = StateSpaceModel(dist.Normal(0.0, 1.0), lambda t, x: dist.Normal(0.9 * x, 1.0),
            ...                       lambda t, x: dist.Normal(x, 0.5))
            >>> prior = ssm.path_prior(3)
            >>> prior.event_shape, round(float(prior.log_prob(jnp.zeros(3))), 4)   # 3 * log N(0; 0, 1)
            ((3,), -2.7568)
        """
        return MarkovPathPrior(self, self._steps(num_steps))

    def observation_law(self, path) -> "ObservationLaw":
        r"""The law of $y_{0:T-1}$ given the latent path as a NumPyro distribution:
        $\log p(y \mid x) = \sum_t \log g_t(x_t, y_t)$ over the non-missing steps.

        Examples:
            >>> import jax.numpy as jnp, numpyro.distributions as dist
            >>> ssm = StateSpaceModel(dist.Normal(0.0, 1.0), lambda t, x: dist.Normal(0.9 * x, 1.0),
            ...                       lambda t, x: dist.Normal(x, 1.0))
            >>> law = ssm.observation_law(jnp.zeros(2))
            >>> round(float(law.log_prob(jnp.array([0.0, jnp.nan]))), 4)         # one observed step
            -0.9189
        """
        return ObservationLaw(self, path)


def _event_shape_probe(d):
    return jnp.zeros(tuple(d.event_shape))


class MarkovPathPrior(dist.Distribution):
    r"""Prior law of the latent path of a [`StateSpaceModel`][markovppl.particles.StateSpaceModel]:
    $\log p(x_{0:T-1}) = \log \mu_0(x_0) + \sum_{t \ge 1} \log f_t(x_{t-1}, x_t)$, event shape
    ``(T, *state_shape)``. Made by [`StateSpaceModel.path_prior`][markovppl.particles.state_space.StateSpaceModel.path_prior];
    use it as the latent sample site of a NumPyro model (see
    [`markovppl.infer.particle_gibbs`][markovppl.infer.particle_gibbs]).

    Examples:
        >>> import jax, jax.numpy as jnp, numpyro.distributions as dist
        >>> ssm = StateSpaceModel(dist.Normal(0.0, 1.0), lambda t, x: dist.Normal(0.9 * x, 1.0),
        ...                       lambda t, x: dist.Normal(x, 0.5))
        >>> ssm.path_prior(4).sample(jax.random.PRNGKey(0), (2,)).shape
        (2, 4)
    """

    pytree_aux_fields = ("ssm", "num_steps")

    def __init__(self, ssm: StateSpaceModel, num_steps: int, *, validate_args=None):
        self.ssm = ssm
        self.num_steps = int(num_steps)
        state_shape = ssm.state_shape
        base = ssm.initial.support                      # the state space; one more event dim for time
        self._support = constraints.independent(base, 1 + len(state_shape) - base.event_dim)
        super().__init__(batch_shape=(), event_shape=(self.num_steps,) + state_shape, validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        n = int(np.prod(sample_shape)) if sample_shape else 1
        keys = jax.random.split(key, n)
        paths = jax.vmap(lambda k: self.ssm.sample(k, self.num_steps)[0])(keys)
        return paths.reshape(tuple(sample_shape) + self.event_shape)

    def log_prob(self, value):
        value = jnp.asarray(value)
        nd = len(self.event_shape)
        batch = value.shape[: value.ndim - nd]
        flat = value.reshape((-1,) + self.event_shape)

        def one(x):
            lp0 = self.ssm.initial.log_prob(x[0])
            if self.num_steps == 1:
                return lp0
            ts = jnp.arange(1, self.num_steps)
            lps = jax.vmap(lambda t, xp, xt: self.ssm.transition(t, xp[None]).log_prob(xt[None])[0])(ts, x[:-1], x[1:])
            return lp0 + jnp.sum(lps)

        return jax.vmap(one)(flat).reshape(batch)

    @property
    def support(self):
        return self._support


class ObservationLaw(dist.Distribution):
    r"""Law of the observations $y_{0:T-1}$ of a [`StateSpaceModel`][markovppl.particles.StateSpaceModel]
    given its latent path: $\log p(y \mid x) = \sum_{t\ \text{observed}} \log g_t(x_t, y_t)$. Made by
    [`StateSpaceModel.observation_law`][markovppl.particles.state_space.StateSpaceModel.observation_law].

    Examples:
        >>> import jax, jax.numpy as jnp, numpyro.distributions as dist
        >>> ssm = StateSpaceModel(dist.Normal(0.0, 1.0), lambda t, x: dist.Normal(x, 1.0),
        ...                       lambda t, x: dist.Normal(x, 0.5))
        >>> ssm.observation_law(jnp.zeros(3)).sample(jax.random.PRNGKey(0)).shape
        (3,)
    """

    pytree_data_fields = ("path",)
    pytree_aux_fields = ("ssm",)

    def __init__(self, ssm: StateSpaceModel, path, *, validate_args=None):
        self.ssm = ssm
        self.path = jnp.asarray(path)
        num_steps = self.path.shape[0]
        d = ssm.emission(0, self.path[:1])
        self._obs_shape = tuple(d.event_shape)
        self._support = constraints.independent(d.support, 1)
        super().__init__(batch_shape=(), event_shape=(num_steps,) + self._obs_shape, validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        n = int(np.prod(sample_shape)) if sample_shape else 1
        ts = jnp.arange(self.path.shape[0])

        def one(k):
            keys = jax.random.split(k, ts.shape[0])
            return jax.vmap(lambda t, x, kk: self.ssm.emission(t, x[None]).sample(kk)[0])(ts, self.path, keys)

        out = jax.vmap(one)(jax.random.split(key, n))
        return out.reshape(tuple(sample_shape) + self.event_shape)

    def log_prob(self, value):
        y, miss, _ = self.ssm._prepare(value)
        ts = jnp.arange(y.shape[0])
        lps = jax.vmap(lambda t, x, yt: self.ssm.emission(t, x[None]).log_prob(yt)[0])(ts, self.path, y)
        return jnp.sum(jnp.where(miss, 0.0, lps))

    @property
    def support(self):
        return self._support
