r"""Linear-Gaussian state-space models as NumPyro distributions over the observation sequence."""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from numpyro.distributions import constraints

from .. import _linalg as la
from .. import _validation as v
from ..backward import backward_filter, backward_filter_parallel, leaf
from ..guided import forward_guide, sample_noise
from ..guided.marginals import gaussian_marginals
from ..kernels.gaussian import LinearGaussian
from ..kernels.initial import GaussianLaw
from ..kernels.time import is_time_varying, split_time
from ._sequence import MarkovSequence, compiled, time_first, time_last

__all__ = ["LinearGaussianSSM", "LGSSMFilter", "LGSSMPosterior", "LGSSMForecast"]


class LGSSMFilter(NamedTuple):
    r"""Kalman filter output.

    Attributes:
        log_evidence: $\log p(y_{0:T-1})$.
        filtered_means, filtered_covs: moments of $p(x_t \mid y_{0:t})$, ``(*batch, T, d[, d])``.
        predicted_means, predicted_covs: moments of $p(x_t \mid y_{0:t-1})$.
        log_predictive: $\log p(y_t \mid y_{0:t-1})$ over the observed coordinates, ``(*batch, T)``.

    Examples:
        >>> import jax.numpy as jnp
        >>> ssm = LinearGaussianSSM(jnp.zeros(1), jnp.eye(1), jnp.eye(1), 0.1 * jnp.eye(1),
        ...                         jnp.eye(1), jnp.eye(1))                      # local level model
        >>> y = jnp.array([[0.3], [0.1], [0.8], [1.2]])
        >>> f = ssm.filter(y)
        >>> f.filtered_means.shape, f.filtered_covs.shape, f.log_predictive.shape
        ((4, 1), (4, 1, 1), (4,))
        >>> bool(jnp.allclose(f.log_predictive.sum(), f.log_evidence))   # one-step terms sum to the evidence
        True
    """

    log_evidence: jax.Array
    filtered_means: jax.Array
    filtered_covs: jax.Array
    predicted_means: jax.Array
    predicted_covs: jax.Array
    log_predictive: jax.Array


class LGSSMPosterior(NamedTuple):
    r"""Smoother output: moments of $p(x_t \mid y)$ and $\mathrm{Cov}(x_t, x_{t+1} \mid y)$.

    Attributes:
        log_evidence: $\log p(y_{0:T-1})$.
        smoothed_means, smoothed_covs: $E[x_t \mid y]$ ``(*batch, T, d)`` and $\mathrm{Cov}(x_t \mid y)$
            ``(*batch, T, d, d)``.
        smoothed_cross_covs: $\mathrm{Cov}(x_t, x_{t+1} \mid y)$, ``(*batch, T-1, d, d)``.

    Examples:
        >>> import jax.numpy as jnp
        >>> ssm = LinearGaussianSSM(jnp.zeros(1), jnp.eye(1), jnp.eye(1), 0.1 * jnp.eye(1),
        ...                         jnp.eye(1), jnp.eye(1))                      # local level model
        >>> y = jnp.array([[0.3], [0.1], [0.8], [1.2]])
        >>> post = ssm.smooth(y)
        >>> post.smoothed_means.shape, post.smoothed_covs.shape, post.smoothed_cross_covs.shape
        ((4, 1), (4, 1, 1), (3, 1, 1))
        >>> bool((post.smoothed_covs <= ssm.filter(y).filtered_covs).all())   # smoothing never adds variance
        True
    """

    log_evidence: jax.Array
    smoothed_means: jax.Array
    smoothed_covs: jax.Array
    smoothed_cross_covs: jax.Array


class LGSSMForecast(NamedTuple):
    r"""$h$-step-ahead moments of states and observations, and the predictive laws.

    Attributes:
        state_means, state_covs: moments of $p(x_{T-1+h} \mid y_{0:T-1})$ for $h = 1..H$,
            ``(*batch, H, d[, d])``.
        obs_means, obs_covs: moments of $p(y_{T-1+h} \mid y_{0:T-1})$, ``(*batch, H, m[, m])``.
        predictive: ``MultivariateNormal`` with batch shape ``(*batch, H)``.

    Examples:
        >>> import jax.numpy as jnp
        >>> ssm = LinearGaussianSSM(jnp.zeros(1), jnp.eye(1), jnp.eye(1), 0.1 * jnp.eye(1),
        ...                         jnp.eye(1), jnp.eye(1))                      # local level model
        >>> y = jnp.array([[0.3], [0.1], [0.8], [1.2]])
        >>> fc = ssm.forecast(y, 3)
        >>> fc.obs_means.shape, fc.obs_covs.shape, fc.predictive.batch_shape
        ((3, 1), (3, 1, 1), (3,))
        >>> fc.obs_covs[:, 0, 0].argsort().tolist()                     # uncertainty grows with the horizon
        [0, 1, 2]
    """

    state_means: jax.Array
    state_covs: jax.Array
    obs_means: jax.Array
    obs_covs: jax.Array
    predictive: dist.Distribution


def _val(x):
    return getattr(x, "value", x)


class LinearGaussianSSM(MarkovSequence):
    r"""Linear-Gaussian state-space model, a distribution over $y_{0:T-1}$:

    $$x_0 \sim N(m_0, P_0),\quad x_t = A x_{t-1} + b + N(0, Q),\quad y_t = H x_t + c + N(0, R),$$

    with an observation at $t = 0$ ($m_0, P_0$ is the law of the first observed state). ``log_prob``
    is the exact evidence from the backward information filter (exponent-form messages; $H$ never
    inverted, so partial observation, $\dim y < \dim x$ and singular $Q$ are fine).

    Args:
        initial_mean: $m_0$ ``(..., d)``.
        initial_cov: $P_0$ ``(..., d, d)``, positive semi-definite.
        transition_matrix: $A$ ``(..., d, d)`` (or ``mp.time_varying`` with ``T - 1`` steps).
        transition_cov: $Q$ ``(..., d, d)``, positive semi-definite (or time-varying).
        emission_matrix: $H$ ``(..., m, d)``.
        emission_cov: $R$ ``(..., m, m)``, positive definite.
        transition_offset: $b$ ``(..., d)`` (default 0; may be time-varying).
        emission_offset: $c$ ``(..., m)`` (default 0).
        num_steps: $T$, needed to ``sample`` unless transitions are time-varying.
        diffuse: a diffuse start, by the large-variance approximation $P_0 = \kappa I$ with
            $\kappa$ = ``diffuse_scale`` (pass ``initial_cov=None``; ``initial_mean`` is the centre,
            usually 0). The log-likelihood then differs from the exact diffuse log-likelihood by terms of
            order $1/\kappa$ plus a parameter-free constant, so maximum-likelihood estimates and posteriors
            agree with the exact diffuse treatment to that order. Use float64 with large $\kappa$.
        diffuse_scale: $\kappa$ (default $10^7$); choose it far above the squared scale of the state.
        missing: optional boolean ``(..., T)`` of missing steps. NaN in some coordinates of $y_t$ makes
            just those coordinates missing.
        parallel: use the parallel-in-time backward filter.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> ssm = LinearGaussianSSM(jnp.zeros(1), jnp.eye(1), jnp.eye(1), 0.1 * jnp.eye(1),
        ...                         jnp.eye(1), jnp.eye(1), num_steps=4)
        >>> y = ssm.sample(jax.random.PRNGKey(0))
        >>> y.shape, ssm.log_prob(y).shape
        ((4, 1), ())
    """

    pytree_data_fields = (
        "initial_mean", "initial_cov", "transition_matrix", "transition_cov", "emission_matrix",
        "emission_cov", "transition_offset", "emission_offset", "missing",
    )
    pytree_aux_fields = ("num_steps", "parallel")
    _obs_event_ndim = 1

    def __init__(
        self,
        initial_mean,
        initial_cov,
        transition_matrix,
        transition_cov,
        emission_matrix,
        emission_cov,
        transition_offset=None,
        emission_offset=None,
        *,
        num_steps: int | None = None,
        missing=None,
        parallel: bool = False,
        diffuse: bool = False,
        diffuse_scale: float = 1e7,
        validate_args=None,
    ):
        as_arr = lambda x: x if is_time_varying(x) else jnp.asarray(x)
        initial_mean = jnp.asarray(initial_mean)
        if diffuse:
            if initial_cov is not None:
                raise ValueError("initial_cov must be None when diffuse=True (the start is kappa * I)")
            if not diffuse_scale > 0:
                raise ValueError(f"diffuse_scale must be positive, got {diffuse_scale}")
            initial_cov = diffuse_scale * jnp.eye(initial_mean.shape[-1], dtype=initial_mean.dtype)
        elif initial_cov is None:
            raise ValueError("initial_cov is required (or pass diffuse=True for a diffuse start)")
        initial_cov = jnp.asarray(initial_cov)
        transition_matrix, transition_cov = as_arr(transition_matrix), as_arr(transition_cov)
        emission_matrix, emission_cov = jnp.asarray(emission_matrix), jnp.asarray(emission_cov)
        v.check_ndim("initial_mean", initial_mean, 1, "(..., d)")
        d = initial_mean.shape[-1]
        if transition_offset is None:
            transition_offset = jnp.zeros(d, initial_mean.dtype)
        if emission_offset is None:
            emission_offset = jnp.zeros(emission_matrix.shape[-2:-1], initial_mean.dtype)
        transition_offset, emission_offset = as_arr(transition_offset), jnp.asarray(emission_offset)
        for name, x in [("emission_matrix", emission_matrix), ("emission_cov", emission_cov), ("emission_offset", emission_offset)]:
            if is_time_varying(x):
                raise ValueError(f"{name}: time-varying emission parameters are not supported yet")
        if _val(transition_matrix).shape[-2:] != (d, d):
            raise ValueError(f"transition_matrix must have shape (..., {d}, {d}) to match initial_mean, got {_val(transition_matrix).shape}")
        if emission_matrix.ndim < 2 or emission_matrix.shape[-1] != d:
            raise ValueError(f"emission_matrix must have shape (..., m, {d}), got {emission_matrix.shape}")
        if initial_cov.shape[-2:] != (d, d):
            raise ValueError(f"initial_cov must have shape (..., {d}, {d}), got {initial_cov.shape}")
        v.check_finite("initial_mean", initial_mean)
        v.check_covariance("initial_cov", initial_cov, definite=False)
        LinearGaussian(transition_matrix, transition_offset, transition_cov).validate(
            ("transition_matrix", "transition_offset", "transition_cov"), definite=False)
        LinearGaussian(emission_matrix, emission_offset, emission_cov).validate(
            ("emission_matrix", "emission_offset", "emission_cov"), definite=True)
        self.initial_mean, self.initial_cov = initial_mean, initial_cov
        self.transition_matrix, self.transition_cov = transition_matrix, transition_cov
        self.emission_matrix, self.emission_cov = emission_matrix, emission_cov
        self.transition_offset, self.emission_offset = transition_offset, emission_offset
        self.missing = None if missing is None else jnp.asarray(missing, bool)
        self.parallel = bool(parallel)
        self.num_steps = self._resolve_num_steps(num_steps, self._transition_raw())
        tv_batch = lambda x, k: x.value.shape[1:-k] if is_time_varying(x) else x.shape[:-k]
        batch_shape = jax.lax.broadcast_shapes(
            initial_mean.shape[:-1], initial_cov.shape[:-2], tv_batch(transition_matrix, 2), tv_batch(transition_cov, 2),
            tv_batch(transition_offset, 1), emission_matrix.shape[:-2], emission_cov.shape[:-2], emission_offset.shape[:-1],
        )
        event_shape = (self.num_steps or 1, emission_matrix.shape[-2])
        super().__init__(batch_shape=batch_shape, event_shape=event_shape, validate_args=validate_args)

    support = constraints.independent(constraints.real, 2)

    @property
    def state_dim(self) -> int:
        r"""$d = \dim x_t$.

        Examples:
            >>> LinearGaussianSSM(jnp.zeros(2), jnp.eye(2), jnp.eye(2), jnp.eye(2), jnp.ones((1, 2)), jnp.eye(1)).state_dim
            2
        """
        return self.initial_mean.shape[-1]

    @property
    def obs_dim(self) -> int:
        r"""$m = \dim y_t$.

        Examples:
            >>> LinearGaussianSSM(jnp.zeros(2), jnp.eye(2), jnp.eye(2), jnp.eye(2), jnp.ones((1, 2)), jnp.eye(1)).obs_dim
            1
        """
        return self.emission_matrix.shape[-2]

    def _transition_raw(self) -> LinearGaussian:
        return LinearGaussian(self.transition_matrix, self.transition_offset, self.transition_cov)

    def _transition(self) -> LinearGaussian:
        return self._transition_raw().prepared()

    def _emission(self) -> LinearGaussian:
        return LinearGaussian(self.emission_matrix, self.emission_offset, self.emission_cov)

    def _law(self) -> GaussianLaw:
        return GaussianLaw(self.initial_mean, la.psd_sqrt(self.initial_cov))

    def _coord_missing(self, value):
        """Missing flags per coordinate, ``(*batch, T, m)``."""
        value = jnp.asarray(value)
        miss = jnp.isnan(value)
        if self.missing is not None:
            miss = miss | jnp.asarray(self.missing, bool)[..., None]
        return miss

    def missing_steps(self, obs) -> jax.Array:
        r"""Boolean ``(*batch, T)``: steps whose coordinates are all missing (NaN or flagged).

        A step with only some coordinates missing is not a missing step: its leaf message uses the
        observed coordinates only.

        Examples:
            >>> ssm = LinearGaussianSSM(jnp.zeros(1), jnp.eye(1), jnp.eye(1), 0.1 * jnp.eye(1),
            ...                         jnp.eye(1), 0.5 * jnp.eye(1))
            >>> y = jnp.array([[0.1], [0.4], [jnp.nan], [0.2]])
            >>> ssm.missing_steps(y).tolist()
            [False, False, True, False]
        """
        return self._coord_missing(jnp.asarray(obs, float)).all(-1)

    def _observations(self, value):
        """Observations and per-coordinate missing flags, time first: ``(T, *batch, m)`` each."""
        self._steps_of(value)
        value = jnp.asarray(value)
        if not jnp.issubdtype(value.dtype, jnp.floating):
            value = value.astype(self.initial_mean.dtype)
        miss = jnp.broadcast_to(self._coord_missing(value), value.shape)
        return time_first(value, 1), time_first(miss, 1)

    def _leaves(self, value):
        y, miss = self._observations(value)
        return leaf(self._emission(), y, miss)

    @compiled("store_messages")
    def _backward(self, value, store_messages: bool = True):
        run = backward_filter_parallel if self.parallel else backward_filter
        leaves = self._leaves(value)
        return run(self._law(), self._transition(), leaves, store_messages=store_messages)

    @compiled()
    def log_prob(self, value):
        r"""$\log p(y_{0:T-1})$ over all observed coordinates, shape ``sample_batch + batch_shape``.

        Computed by the covariance-form Kalman filter, which needs only $m \times m$ factorisations per
        step ($m$ = observation dimension) where the backward information filter needs $d \times d$
        ones; both give the same exact evidence (the backward filter's root message is tested equal).
        With ``parallel=True`` the parallel-in-time backward filter is used instead.

        Examples:
            >>> args = (jnp.zeros(1), jnp.eye(1), jnp.eye(1), 0.1 * jnp.eye(1), jnp.eye(1), 0.5 * jnp.eye(1))
            >>> y = jnp.array([[0.1], [0.4], [jnp.nan], [0.2]])      # NaN: a missing step
            >>> kalman = LinearGaussianSSM(*args).log_prob(y)
            >>> backward = LinearGaussianSSM(*args, parallel=True).log_prob(y)
            >>> round(float(kalman), 3), bool(jnp.allclose(kalman, backward, atol=1e-4))
            (-2.953, True)
        """
        if self.parallel:
            return self._backward(value, store_messages=False).log_evidence
        return self._kalman(value, store=False)

    @classmethod
    def infer_shapes(cls, initial_mean, initial_cov, transition_matrix, transition_cov, emission_matrix,
                     emission_cov, transition_offset=(), emission_offset=(), num_steps=None):
        r"""Shapes ``(batch_shape, event_shape)`` from the shapes of the parameters; the event shape
        is $(T, m)$.
        """
        batch = jax.lax.broadcast_shapes(
            tuple(initial_mean)[:-1], tuple(initial_cov)[:-2], tuple(transition_matrix)[:-2], tuple(transition_cov)[:-2],
            tuple(emission_matrix)[:-2], tuple(emission_cov)[:-2], tuple(transition_offset)[:-1], tuple(emission_offset)[:-1],
        )
        return batch, (num_steps or 1, tuple(emission_matrix)[-2])

    def sample_with_states(self, key, sample_shape=()):
        r"""Simulate ``(states, observations)``: $x_{0:T-1}$ ``(*sample, *batch, T, d)`` and
        $y_{0:T-1}$ ``(*sample, *batch, T, m)``.

        Examples:
            >>> ssm = LinearGaussianSSM(jnp.zeros(2), jnp.eye(2), jnp.eye(2), 0.1 * jnp.eye(2),
            ...                         jnp.ones((1, 2)), jnp.eye(1), num_steps=5)
            >>> x, y = ssm.sample_with_states(jax.random.PRNGKey(0))
            >>> x.shape, y.shape
            ((5, 2), (5, 1))
        """
        t = self._require_num_steps()
        shape = tuple(sample_shape) + self.batch_shape
        k_x, k_y = jax.random.split(key)
        z = jax.random.normal(k_x, (t,) + shape + (self.state_dim,), self.initial_mean.dtype)
        law = self._law()
        x0 = law.mean + la.matvec(law.cov_sqrt, z[0])
        xs, kernel_at = split_time(self._transition())

        def _step(x_prev, inputs):
            z_t, xs_t = inputs
            k = kernel_at(xs_t)
            x_t = la.matvec(k.A, x_prev) + k.b + la.matvec(k.cov_sqrt, z_t)
            return x_t, x_t

        _, rest = jax.lax.scan(_step, x0, (z[1:], xs))
        states = jnp.concatenate([x0[None], rest], 0)
        e = self._emission()
        noise = jax.random.normal(k_y, states.shape[:-1] + (self.obs_dim,), states.dtype)
        obs = la.matvec(e.A, states) + e.b + la.matvec(la.psd_sqrt(e.Q), noise)
        return time_last(states, 1), time_last(obs, 1)

    def sample(self, key, sample_shape=()):
        r"""Simulate observation sequences $y_{0:T-1}$ (needs ``num_steps`` or time-varying transitions).

        Examples:
            >>> ssm = LinearGaussianSSM(jnp.zeros(1), jnp.eye(1), jnp.eye(1), 0.1 * jnp.eye(1),
            ...                         jnp.eye(1), jnp.eye(1), num_steps=4)
            >>> ssm.sample(jax.random.PRNGKey(0), (2,)).shape
            (2, 4, 1)
        """
        return self.sample_with_states(key, sample_shape)[1]

    def sample_with_intermediates(self, key, sample_shape=()):
        r"""NumPyro hook: observations $y$ and ``[states]`` $[x]$.

        Examples:
            >>> ssm = LinearGaussianSSM(jnp.zeros(1), jnp.eye(1), jnp.eye(1), 0.1 * jnp.eye(1),
            ...                         jnp.eye(1), jnp.eye(1), num_steps=4)
            >>> y, [x] = ssm.sample_with_intermediates(jax.random.PRNGKey(0))
            >>> y.shape, x.shape
            ((4, 1), (4, 1))
        """
        states, obs = self.sample_with_states(key, sample_shape)
        return obs, [states]

    # ----------------------------------------------------------------- inference
    @compiled()
    def filter(self, obs) -> LGSSMFilter:
        r"""Kalman filter (covariance form, missing coordinates dropped exactly): moments of
        $p(x_t \mid y_{0:t})$ and $p(x_t \mid y_{0:t-1})$; see [`LGSSMFilter`][markovppl.families.lgssm.LGSSMFilter].

        Examples:
            >>> ssm = LinearGaussianSSM(jnp.zeros(1), jnp.eye(1), jnp.eye(1), 0.1 * jnp.eye(1),
            ...                         jnp.eye(1), 0.5 * jnp.eye(1))
            >>> y = jnp.array([[0.1], [0.4], [jnp.nan], [0.2]])
            >>> f = ssm.filter(y)
            >>> f.filtered_means.shape, f.filtered_covs.shape
            ((4, 1), (4, 1, 1))
        """
        return self._kalman(obs, store=True)

    def _kalman(self, obs, store: bool):
        r"""Covariance-form Kalman filter. Missing coordinates are removed exactly by zeroing their rows
        of $H$ and of the residual and replacing $R$ by $\mathrm{blockdiag}(R_{oo}, I)$; these masked
        arrays are formed for all steps before the scan, so the loop body is pure arithmetic."""
        y, miss = self._observations(obs)
        e = self._emission()
        xs, kernel_at = split_time(self._transition())
        obs_t = ~miss
        eye_m = jnp.eye(self.obs_dim, dtype=y.dtype)
        h_all = jnp.where(obs_t[..., :, None], e.A, 0.0)
        r_all = jnp.where(obs_t[..., :, None] & obs_t[..., None, :], e.Q, jnp.where(miss[..., :, None], eye_m, 0.0))
        y_all = jnp.where(obs_t, jnp.where(obs_t, y, 0.0) - e.b, 0.0)
        const_all = -0.5 * math.log(2 * math.pi) * jnp.sum(obs_t, -1).astype(y.dtype)

        def _update(mean, cov, h, r, y_t):
            resid = y_t - la.matvec(h, mean)
            ph = la.matmul(cov, jnp.swapaxes(h, -1, -2))
            chol = la.cholesky(la.symmetrize(la.matmul(h, ph) + r))
            w = la.solve_lower(chol, resid[..., None])[..., 0]
            gain_t = la.solve_lower_transpose(chol, la.solve_lower(chol, jnp.swapaxes(ph, -1, -2)))  # S^{-1} H P
            mean_f = mean + la.matvec(jnp.swapaxes(gain_t, -1, -2), resid)
            cov_f = la.symmetrize(cov - la.matmul(ph, gain_t))
            return mean_f, cov_f, -0.5 * jnp.sum(w**2, -1) - 0.5 * la.chol_logdet(chol)

        batch = y.shape[1:-1]
        mean0 = jnp.broadcast_to(self.initial_mean, batch + (self.state_dim,))
        cov0 = jnp.broadcast_to(self.initial_cov, batch + (self.state_dim,) * 2)
        mf0, cf0, ll0 = _update(mean0, cov0, h_all[0], r_all[0], y_all[0])

        def _step(carry, inputs):
            mean, cov = carry
            h, r, y_t, xs_t = inputs
            k = kernel_at(xs_t)
            mp_ = la.matvec(k.A, mean) + k.b
            cp = la.symmetrize(la.matmul(k.A, la.matmul(cov, jnp.swapaxes(k.A, -1, -2))) + k.Q)
            mf, cf, ll = _update(mp_, cp, h, r, y_t)
            return (mf, cf), ((mf, cf, mp_, cp, ll) if store else ll)

        rest = (h_all[1:], r_all[1:], y_all[1:], xs)
        # at small state dimensions the fused loop body is short and unrolling 4 steps measurably cuts the
        # per-iteration overhead (benchmarks/bench_filters.py); larger bodies gain nothing from it
        unroll = 4 if self.state_dim <= la.FUSED_MAX_DIM else 1
        _, out = jax.lax.scan(_step, (mf0, cf0), rest, unroll=unroll)
        ll = jnp.concatenate([ll0[None], out[-1] if store else out], 0) + const_all
        if not store:
            return jnp.sum(ll, 0)
        mf, cf, mp_, cp, _ = out
        cat = lambda a, b: jnp.concatenate([a[None], b], 0)
        return LGSSMFilter(
            ll.sum(0), time_last(cat(mf0, mf), 1), time_last(cat(cf0, cf), 2),
            time_last(cat(mean0, mp_), 1), time_last(cat(cov0, cp), 2), time_last(ll, 0),
        )

    def log_predictive(self, obs) -> jax.Array:
        r"""One-step-ahead $\log p(y_t \mid y_{0:t-1})$, ``(*batch, T)``; they sum to ``log_prob``.

        Examples:
            >>> ssm = LinearGaussianSSM(jnp.zeros(1), jnp.eye(1), jnp.eye(1), 0.1 * jnp.eye(1),
            ...                         jnp.eye(1), 0.5 * jnp.eye(1))
            >>> y = jnp.array([[0.1], [0.4], [jnp.nan], [0.2]])
            >>> lp = ssm.log_predictive(y)
            >>> float(lp[2]), bool(jnp.allclose(lp.sum(), ssm.log_prob(y), atol=1e-4))
            (0.0, True)
        """
        return self.filter(obs).log_predictive

    @compiled()
    def smooth(self, obs) -> LGSSMPosterior:
        r"""Smoothing moments of $p(x_t \mid y_{0:T-1})$ (equal to the RTS smoother) by pushing the
        guided chain forward; see [`LGSSMPosterior`][markovppl.families.lgssm.LGSSMPosterior].

        Examples:
            >>> ssm = LinearGaussianSSM(jnp.zeros(1), jnp.eye(1), jnp.eye(1), 0.1 * jnp.eye(1),
            ...                         jnp.eye(1), 0.5 * jnp.eye(1))
            >>> y = jnp.array([[0.1], [0.4], [jnp.nan], [0.2]])
            >>> post = ssm.smooth(y)
            >>> post.smoothed_means.shape, post.smoothed_cross_covs.shape
            ((4, 1), (3, 1, 1))
        """
        back = self._backward(obs)
        m = gaussian_marginals(self._law(), self._transition(), back.messages)
        return LGSSMPosterior(back.log_evidence, time_last(m.means, 1), time_last(m.covs, 2), time_last(m.cross_covs, 2))

    @compiled("sample_shape")
    def posterior_sample(self, rng_key, obs, sample_shape=()) -> jax.Array:
        r"""Exact joint draws of $x_{0:T-1} \mid y$ by forward guiding, ``(*sample_shape, *batch, T, d)``.

        Examples:
            >>> ssm = LinearGaussianSSM(jnp.zeros(1), jnp.eye(1), jnp.eye(1), 0.1 * jnp.eye(1),
            ...                         jnp.eye(1), 0.5 * jnp.eye(1))
            >>> y = jnp.array([[0.1], [0.4], [jnp.nan], [0.2]])
            >>> ssm.posterior_sample(jax.random.PRNGKey(1), y, (10,)).shape
            (10, 4, 1)
        """
        back = self._backward(obs)
        batch = back.log_evidence.shape
        noise = sample_noise(rng_key, self._law(), back.messages.c.shape[0], tuple(sample_shape) + batch)
        return time_last(forward_guide(self._law(), self._transition(), back.messages, noise).path, 1)

    @compiled("horizon")
    def forecast(self, obs, horizon: int) -> LGSSMForecast:
        r"""Moments of $x_{T-1+h}$ and $y_{T-1+h}$ given $y_{0:T-1}$ for $h = 1..H$:
        $m_{h} = A m_{h-1} + b$, $P_{h} = A P_{h-1} A^\top + Q$, $y$: $H m_h + c$, $H P_h H^\top + R$.

        Examples:
            >>> ssm = LinearGaussianSSM(jnp.zeros(1), jnp.eye(1), jnp.eye(1), 0.1 * jnp.eye(1),
            ...                         jnp.eye(1), 0.5 * jnp.eye(1))
            >>> y = jnp.array([[0.1], [0.4], [jnp.nan], [0.2]])
            >>> fc = ssm.forecast(y, horizon=2)
            >>> fc.obs_means.shape, fc.predictive.batch_shape
            ((2, 1), (2,))
        """
        if is_time_varying(self.transition_matrix) or is_time_varying(self.transition_cov) or is_time_varying(self.transition_offset):
            raise ValueError("forecast needs time-homogeneous transitions (future steps are unknown)")
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        f = self.filter(obs)
        k, e = self._transition(), self._emission()

        def _step(carry, _):
            mean, cov = carry
            mean = la.matvec(k.A, mean) + k.b
            cov = la.symmetrize(la.matmul(k.A, la.matmul(cov, jnp.swapaxes(k.A, -1, -2))) + k.Q)
            return (mean, cov), (mean, cov)

        _, (means, covs) = jax.lax.scan(_step, (f.filtered_means[..., -1, :], f.filtered_covs[..., -1, :, :]), None, length=horizon)
        obs_means = la.matvec(e.A, means) + e.b
        obs_covs = la.symmetrize(la.matmul(e.A, la.matmul(covs, jnp.swapaxes(e.A, -1, -2))) + e.Q)
        means, covs, obs_means, obs_covs = time_last(means, 1), time_last(covs, 2), time_last(obs_means, 1), time_last(obs_covs, 2)
        return LGSSMForecast(means, covs, obs_means, obs_covs, dist.MultivariateNormal(obs_means, obs_covs))
