r"""Finite-state hidden Markov models as NumPyro distributions over the observation sequence."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from jax.scipy.special import logsumexp
from numpyro.distributions import constraints

from .. import _validation as v
from ..backward import backward_filter, backward_filter_parallel, leaf
from ..guided import forward_guide, sample_noise
from ..guided.marginals import categorical_marginals
from ..kernels.finite import Categorical, Emission, select_row
from ..kernels.initial import CategoricalLaw
from ..kernels.time import is_time_varying, split_time
from ._hmm_evidence import hmm_log_evidence
from ._sequence import MarkovSequence, compiled, missing_steps, time_first, time_last

__all__ = ["HMM", "HMMFilter", "HMMPosterior", "HMMForecast", "stationary_distribution"]


class HMMFilter(NamedTuple):
    r"""Forward filter of an HMM.

    Attributes:
        log_evidence: $\log p(y_{0:T-1})$, shape ``batch``.
        filtered_probs: $p(x_t \mid y_{0:t})$, ``(*batch, T, K)``.
        predicted_probs: $p(x_t \mid y_{0:t-1})$, ``(*batch, T, K)``.
        log_predictive: $\log p(y_t \mid y_{0:t-1})$, ``(*batch, T)``; 0 at missing steps.

    Examples:
        >>> import jax.numpy as jnp, numpyro.distributions as dist
        >>> hmm = HMM(jnp.array([0.5, 0.5]), jnp.array([[0.9, 0.1], [0.1, 0.9]]),
        ...           dist.Poisson(jnp.array([1.0, 10.0])))
        >>> y = jnp.array([0, 1, 12, 9])
        >>> f = hmm.filter(y)
        >>> f.filtered_probs.shape, f.log_predictive.shape
        ((4, 2), (4,))
        >>> bool(jnp.allclose(f.log_predictive.sum(), f.log_evidence))   # one-step terms sum to the evidence
        True
    """

    log_evidence: jax.Array
    filtered_probs: jax.Array
    predicted_probs: jax.Array
    log_predictive: jax.Array


class HMMPosterior(NamedTuple):
    r"""Smoothing result of an HMM.

    Attributes:
        log_evidence: $\log p(y_{0:T-1})$.
        smoothed_probs: $p(x_t \mid y_{0:T-1})$, ``(*batch, T, K)``.
        pairwise_probs: $p(x_t, x_{t+1} \mid y_{0:T-1})$, ``(*batch, T-1, K, K)``.

    Examples:
        >>> import jax.numpy as jnp, numpyro.distributions as dist
        >>> hmm = HMM(jnp.array([0.5, 0.5]), jnp.array([[0.9, 0.1], [0.1, 0.9]]),
        ...           dist.Poisson(jnp.array([1.0, 10.0])))
        >>> y = jnp.array([0, 1, 12, 9])
        >>> post = hmm.smooth(y)
        >>> post.smoothed_probs.shape, post.pairwise_probs.shape
        ((4, 2), (3, 2, 2))
        >>> post.smoothed_probs.argmax(-1).tolist()                  # most probable state at each step
        [0, 0, 1, 1]
    """

    log_evidence: jax.Array
    smoothed_probs: jax.Array
    pairwise_probs: jax.Array


class HMMForecast(NamedTuple):
    r"""$h$-step-ahead forecast after the last observation.

    Attributes:
        state_probs: $p(x_{T-1+h} \mid y_{0:T-1})$ for $h = 1..H$, ``(*batch, H, K)``.
        predictive: the mixture $\sum_k p(x=k)\, p(y \mid x=k)$ per horizon, a NumPyro distribution
            with batch shape ``(*batch, H)``.

    Examples:
        >>> import jax.numpy as jnp, numpyro.distributions as dist
        >>> hmm = HMM(jnp.array([0.5, 0.5]), jnp.array([[0.9, 0.1], [0.1, 0.9]]),
        ...           dist.Poisson(jnp.array([1.0, 10.0])))
        >>> y = jnp.array([0, 1, 12, 9])
        >>> fc = hmm.forecast(y, 3)
        >>> fc.state_probs.shape, fc.predictive.batch_shape
        ((3, 2), (3,))
        >>> fc.state_probs.sum(-1).round(6).tolist()
        [1.0, 1.0, 1.0]
    """

    state_probs: jax.Array
    predictive: dist.Distribution


def stationary_distribution(transition_matrix) -> jax.Array:
    r"""Stationary law $\pi = \pi P$ of an irreducible transition matrix ``(..., K, K)``.

    Solves $(I - P + \mathbf{1}\mathbf{1}^\top)^\top \pi = \mathbf{1}$; differentiable in $P$.

    Examples:
        >>> import jax.numpy as jnp
        >>> stationary_distribution(jnp.array([[0.9, 0.1], [0.2, 0.8]])).round(4).tolist()
        [0.6667, 0.3333]
    """
    p = jnp.asarray(transition_matrix)
    k = p.shape[-1]
    a = jnp.swapaxes(jnp.eye(k, dtype=p.dtype) - p + 1.0, -1, -2)
    return jnp.linalg.solve(a, jnp.ones(p.shape[:-1], p.dtype)[..., None])[..., 0]


class StateMixture(dist.Distribution):
    r"""$p(y) = \sum_k w_k\, e(y \mid x = k)$ for any emission law batched over the $K$ states.

    Unlike ``MixtureSameFamily`` it allows components whose support depends on parameters
    (e.g. categorical emissions). ``probs`` ``(..., K)``; batch shape is ``probs.shape[:-1]``.
    """

    pytree_data_fields = ("probs", "emission")

    def __init__(self, probs, emission, *, validate_args=None):
        self.probs, self.emission = probs, emission
        batch = jax.lax.broadcast_shapes(probs.shape[:-1], emission.batch_shape[:-1])
        super().__init__(batch_shape=batch, event_shape=emission.event_shape, validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        return self.emission.support

    @compiled()
    def log_prob(self, value):
        y = jnp.expand_dims(value, -1 - len(self.event_shape))
        return logsumexp(jnp.log(self.probs) + self.emission.log_prob(y), -1)

    def sample(self, key, sample_shape=()):
        k_x, k_y = jax.random.split(key)
        shape = tuple(sample_shape) + self.batch_shape
        x = jax.random.categorical(k_x, jnp.log(self.probs), shape=shape)
        ys = self.emission.expand(shape + self.emission.batch_shape[-1:]).sample(k_y)
        ev = len(self.event_shape)
        idx = x.reshape(x.shape + (1,) * (1 + ev))
        return jnp.take_along_axis(ys, idx, axis=len(shape))[..., 0, :] if ev else jnp.take_along_axis(ys, idx, -1)[..., 0]


class HMM(MarkovSequence):
    r"""Hidden Markov model with $K$ hidden states, a distribution over $y_{0:T-1}$.

    $$x_0 \sim \pi_0,\quad x_{t+1} \mid x_t \sim P_t[x_t, \cdot],\quad y_t \mid x_t \sim e(\cdot \mid x_t).$$

    ``log_prob`` is the exact evidence $p(y_{0:T-1})$ from the backward filter (normalised at every
    step, differentiable in every parameter).

    Args:
        initial_probs: $\pi_0$ ``(..., K)``, the law of the state at the **first observation** (the
            dynamax/Stan convention), or ``"stationary"`` for the stationary law of $P$.
        transition_matrix: $P$ ``(..., K, K)``, row-stochastic, or ``mp.time_varying(P)`` with
            ``T - 1`` steps along the leading axis.
        emission: NumPyro distribution whose rightmost batch axis indexes the state, e.g.
            ``dist.Poisson(rates)``.
        num_steps: $T$; needed to ``sample`` unless the transitions are time-varying. Without it the
            event shape's time axis is 1 and ``log_prob`` accepts any length.
        missing: optional boolean ``(..., T)``; flagged steps (and NaN observations) contribute exactly 0.
        parallel: use the parallel-in-time backward filter.

    Observations have shape ``(*batch, T, *emission.event_shape)``.

    Examples:
        >>> import jax, jax.numpy as jnp, numpyro.distributions as dist
        >>> hmm = HMM(jnp.array([0.5, 0.5]), jnp.array([[0.9, 0.1], [0.1, 0.9]]),
        ...           dist.Poisson(jnp.array([1.0, 10.0])), num_steps=5)
        >>> y = hmm.sample(jax.random.PRNGKey(0))
        >>> y.shape, hmm.log_prob(y).shape
        ((5,), ())
    """

    pytree_data_fields = ("initial_probs", "transition_matrix", "emission", "missing")
    pytree_aux_fields = ("num_steps", "parallel")

    def __init__(
        self,
        initial_probs,
        transition_matrix,
        emission: dist.Distribution,
        *,
        num_steps: int | None = None,
        missing=None,
        parallel: bool = False,
        validate_args=None,
    ):
        if not is_time_varying(transition_matrix):
            transition_matrix = jnp.asarray(transition_matrix)
        Categorical(transition_matrix).validate("transition_matrix")
        num_states = Categorical(transition_matrix).num_states
        if isinstance(initial_probs, str):
            if initial_probs != "stationary":
                raise ValueError(f"initial_probs must be an array or 'stationary', got {initial_probs!r}")
            if is_time_varying(transition_matrix):
                raise ValueError("initial_probs='stationary' needs a time-homogeneous transition_matrix")
            initial_probs = stationary_distribution(transition_matrix)
        initial_probs = jnp.asarray(initial_probs)
        v.check_ndim("initial_probs", initial_probs, 1, "(..., K)")
        if initial_probs.shape[-1] != num_states:
            raise ValueError(f"initial_probs has {initial_probs.shape[-1]} states but transition_matrix has {num_states}")
        v.check_stochastic("initial_probs", initial_probs)
        Emission(emission).validate(num_states)
        self.initial_probs = initial_probs
        self.transition_matrix = transition_matrix
        self.emission = emission
        self.missing = None if missing is None else jnp.asarray(missing, bool)
        self.parallel = bool(parallel)
        self.num_steps = self._resolve_num_steps(num_steps, transition_matrix)
        p = getattr(transition_matrix, "value", transition_matrix)
        p_batch = p.shape[1:-2] if is_time_varying(transition_matrix) else p.shape[:-2]
        batch_shape = jax.lax.broadcast_shapes(initial_probs.shape[:-1], p_batch, emission.batch_shape[:-1])
        event_shape = (self.num_steps or 1,) + tuple(emission.event_shape)
        super().__init__(batch_shape=batch_shape, event_shape=event_shape, validate_args=validate_args)

    # ----------------------------------------------------------------- structure
    @property
    def num_states(self) -> int:
        r"""$K$, the number of hidden states.

        Examples:
            >>> HMM(jnp.ones(3) / 3, jnp.eye(3), dist.Poisson(jnp.arange(1.0, 4.0))).num_states
            3
        """
        return self.initial_probs.shape[-1]

    @property
    def _obs_event_ndim(self) -> int:
        return len(self.emission.event_shape)

    @constraints.dependent_property(is_discrete=False, event_dim=1)
    def support(self):
        return constraints.independent(self.emission.support, 1)

    def missing_steps(self, obs) -> jax.Array:
        r"""Boolean ``(*batch, T)``: steps with a NaN observation or flagged in ``missing``.

        A missing step contributes $\log p(y_t \mid y_{0:t-1}) = 0$: its leaf message is $g_t \equiv 1$.

        Examples:
            >>> hmm = HMM(jnp.array([0.5, 0.5]), jnp.eye(2), dist.Normal(jnp.array([0.0, 5.0]), 1.0))
            >>> hmm.missing_steps(jnp.array([0.1, jnp.nan, 4.9])).tolist()
            [False, True, False]
        """
        return missing_steps(jnp.asarray(obs), self.missing, self._obs_event_ndim)

    def _law(self) -> CategoricalLaw:
        return CategoricalLaw(jnp.log(self.initial_probs))

    def _transition(self) -> Categorical:
        return Categorical(self.transition_matrix)

    def _leaves(self, value):
        """Leaf messages ``(T, *batch, K)`` and missing flags ``(T, *batch)``."""
        self._steps_of(value)
        ev = self._obs_event_ndim
        value = jnp.asarray(value)
        miss = missing_steps(value, self.missing, ev)
        y = time_first(value, ev)
        miss_t = jnp.moveaxis(jnp.broadcast_to(miss, value.shape[: value.ndim - ev]), -1, 0)
        # replace missing observations by an observed value so no NaN reaches log_prob or its gradient
        any_obs = jnp.argmax(~miss_t, axis=0)
        filler = jnp.take_along_axis(y, any_obs.reshape((1,) + any_obs.shape + (1,) * ev), axis=0)
        if jnp.issubdtype(y.dtype, jnp.floating):
            filler = jnp.nan_to_num(filler)
        y_safe = jnp.where(miss_t.reshape(miss_t.shape + (1,) * ev), filler, y)
        return leaf(Emission(self.emission), y_safe, miss_t, ev), miss_t

    @compiled("store_messages")
    def _backward(self, value, store_messages: bool = True):
        run = backward_filter_parallel if self.parallel else backward_filter
        leaves, _ = self._leaves(value)
        return run(self._law(), self._transition(), leaves, store_messages=store_messages)

    # ----------------------------------------------------------------- NumPyro contract
    def log_prob(self, value):
        r"""$\log p(y_{0:T-1})$, exact, shape ``sample_batch + batch_shape``.

        The backward filter gives the value; its gradient comes from the smoothing distribution
        (Fisher's identity, see ``markovppl.families._hmm_evidence``) rather than from differentiating
        through the scan.

        Examples:
            >>> hmm = HMM(jnp.array([0.5, 0.5]), jnp.array([[0.9, 0.1], [0.1, 0.9]]),
            ...           dist.Poisson(jnp.array([1.0, 10.0])))
            >>> y = jnp.array([0, 1, 12, 9, 0])
            >>> round(float(hmm.log_prob(y)), 2)
            -12.94
        """
        if self.parallel:
            return self._backward(value, store_messages=False).log_evidence
        leaves, _ = self._leaves(value)
        return hmm_log_evidence(self.initial_probs, self.transition_matrix, leaves.log_h + leaves.log_norm[..., None])

    def sample_with_states(self, key, sample_shape=()):
        r"""Simulate ``(states, observations)``: states $x_{0:T-1}$ ``(*sample, *batch, T)`` and
        observations $y_{0:T-1}$ ``(*sample, *batch, T, *event)``.

        Examples:
            >>> hmm = HMM(jnp.array([0.5, 0.5]), jnp.array([[0.9, 0.1], [0.1, 0.9]]),
            ...           dist.Poisson(jnp.array([1.0, 10.0])), num_steps=6)
            >>> x, y = hmm.sample_with_states(jax.random.PRNGKey(0), (3,))
            >>> x.shape, y.shape
            ((3, 6), (3, 6))
        """
        t = self._require_num_steps()
        k_x0, k_x, k_y = jax.random.split(key, 3)
        shape = tuple(sample_shape) + self.batch_shape
        logits0 = jnp.broadcast_to(jnp.log(self.initial_probs), shape + (self.num_states,))
        x0 = jax.random.categorical(k_x0, logits0)
        xs, kernel_at = split_time(self._transition())

        def _step(x_prev, inputs):
            key_t, xs_t = inputs
            log_p = jnp.log(kernel_at(xs_t).transition_matrix)
            row = select_row(log_p, x_prev)
            x_t = jax.random.categorical(key_t, row)
            return x_t, x_t

        _, rest = jax.lax.scan(_step, x0, (jax.random.split(k_x, t - 1), xs))
        states = jnp.concatenate([x0[None], rest], 0)  # (T, *shape)
        ys = self.emission.expand((t,) + shape + (self.num_states,)).sample(k_y)  # (T, *shape, K, *event)
        ev = self._obs_event_ndim
        idx = states.reshape(states.shape + (1,) * (ev + 1))
        obs = jnp.take_along_axis(ys, idx, axis=states.ndim)[..., 0, :] if ev else jnp.take_along_axis(ys, idx, axis=-1)[..., 0]
        return time_last(states, 0), time_last(obs, ev)

    def sample(self, key, sample_shape=()):
        r"""Simulate observation sequences $y_{0:T-1}$ (needs ``num_steps`` or time-varying transitions).

        Examples:
            >>> hmm = HMM(jnp.array([0.5, 0.5]), jnp.array([[0.9, 0.1], [0.1, 0.9]]),
            ...           dist.Poisson(jnp.array([1.0, 10.0])), num_steps=6)
            >>> hmm.sample(jax.random.PRNGKey(0), (2,)).shape
            (2, 6)
        """
        return self.sample_with_states(key, sample_shape)[1]

    def sample_with_intermediates(self, key, sample_shape=()):
        r"""NumPyro hook: observations and ``[states]``, as ``sample_with_states`` in reverse order.

        Examples:
            >>> hmm = HMM(jnp.array([0.5, 0.5]), jnp.eye(2), dist.Poisson(jnp.array([1.0, 10.0])), num_steps=3)
            >>> y, [x] = hmm.sample_with_intermediates(jax.random.PRNGKey(0))
            >>> y.shape, x.shape
            ((3,), (3,))
        """
        states, obs = self.sample_with_states(key, sample_shape)
        return obs, [states]

    @classmethod
    def infer_shapes(cls, initial_probs, transition_matrix, emission_batch_shape, emission_event_shape=(), num_steps=None):
        r"""Shapes ``(batch_shape, event_shape)`` from the shapes of the parameters: the batch shape
        broadcasts the leading axes of $\pi_0$ ``(..., K)``, $P$ ``(..., K, K)`` and the emission.

        Examples:
            >>> HMM.infer_shapes((4, 2), (2, 2), (2,), num_steps=10)
            ((4,), (10,))
        """
        batch = jax.lax.broadcast_shapes(tuple(initial_probs)[:-1], tuple(transition_matrix)[:-2], tuple(emission_batch_shape)[:-1])
        return batch, (num_steps or 1,) + tuple(emission_event_shape)

    # ----------------------------------------------------------------- inference
    @compiled()
    def filter(self, obs) -> HMMFilter:
        r"""Forward filter (normalised at every step); see [`HMMFilter`][markovppl.families.hmm.HMMFilter].

        $p(x_t \mid y_{0:t}) \propto p(x_t \mid y_{0:t-1})\, e(y_t \mid x_t)$ and
        $p(x_{t+1} \mid y_{0:t}) = \sum_{x} p(x_t = x \mid y_{0:t}) P_t[x, \cdot]$.

        Examples:
            >>> hmm = HMM(jnp.array([0.5, 0.5]), jnp.array([[0.9, 0.1], [0.1, 0.9]]),
            ...           dist.Poisson(jnp.array([1.0, 10.0])))
            >>> y = jnp.array([0, 1, 12, 9, 0])
            >>> f = hmm.filter(y)
            >>> f.filtered_probs.shape, f.filtered_probs[2].argmax().item()
            ((5, 2), 1)
        """
        leaves, miss = self._leaves(obs)
        xs, kernel_at = split_time(self._transition())
        pred0 = jnp.broadcast_to(self.initial_probs, leaves.log_h.shape[1:])

        def _update(pred, g, miss_t):
            joint = pred * jnp.exp(g.log_h)  # log h normalised to max 0: no overflow
            total = jnp.sum(joint, -1)
            return joint / total[..., None], jnp.where(miss_t, 0.0, jnp.log(total) + g.log_norm)

        def _step(filt, inputs):
            g_t, miss_t, xs_t = inputs
            pred = jnp.sum(filt[..., :, None] * kernel_at(xs_t).transition_matrix, axis=-2)
            filt_t, ll_t = _update(pred, g_t, miss_t)
            return filt_t, (filt_t, pred, ll_t)

        first = jax.tree.map(lambda x: x[0], leaves)
        filt0, ll0 = _update(pred0, first, miss[0])
        rest = jax.tree.map(lambda x: x[1:], leaves)
        _, (filt, pred, ll) = jax.lax.scan(_step, filt0, (rest, miss[1:], xs))
        cat = lambda a, b: jnp.concatenate([a[None], b], 0)
        ll = cat(ll0, ll)
        return HMMFilter(ll.sum(0), time_last(cat(filt0, filt), 1), time_last(cat(pred0, pred), 1), time_last(ll, 0))

    def log_predictive(self, obs) -> jax.Array:
        r"""One-step-ahead $\log p(y_t \mid y_{0:t-1})$, ``(*batch, T)``; they sum to ``log_prob``.

        Examples:
            >>> hmm = HMM(jnp.array([0.5, 0.5]), jnp.array([[0.9, 0.1], [0.1, 0.9]]),
            ...           dist.Poisson(jnp.array([1.0, 10.0])))
            >>> y = jnp.array([0, 1, 12, 9, 0])
            >>> lp = hmm.log_predictive(y)
            >>> lp.shape, bool(jnp.allclose(lp.sum(), hmm.log_prob(y), atol=1e-4))
            ((5,), True)
        """
        return self.filter(obs).log_predictive

    @compiled()
    def smooth(self, obs) -> HMMPosterior:
        r"""Smoothing marginals $p(x_t \mid y)$ and pairwise marginals, by pushing the guided chain forward:
        $p(x_0 \mid y) \propto \pi_0 h_0$, $p(x_{t+1} \mid y) = \sum_x p(x_t = x \mid y)\, \kappa^\circ_t(x, \cdot)$.

        Examples:
            >>> hmm = HMM(jnp.array([0.5, 0.5]), jnp.array([[0.9, 0.1], [0.1, 0.9]]),
            ...           dist.Poisson(jnp.array([1.0, 10.0])))
            >>> y = jnp.array([0, 1, 12, 9, 0])
            >>> post = hmm.smooth(y)
            >>> post.smoothed_probs.argmax(-1).tolist(), post.pairwise_probs.shape
            ([0, 0, 1, 1, 0], (4, 2, 2))
        """
        back = self._backward(obs)
        m = categorical_marginals(self._law(), self._transition(), back.messages)
        return HMMPosterior(back.log_evidence, time_last(m.probs, 1), time_last(m.pairwise, 2))

    @compiled("sample_shape")
    def posterior_sample(self, rng_key, obs, sample_shape=()) -> jax.Array:
        r"""Exact draws of $x_{0:T-1} \mid y$ by forward guiding, ``(*sample_shape, *batch, T)``.

        Examples:
            >>> hmm = HMM(jnp.array([0.5, 0.5]), jnp.array([[0.9, 0.1], [0.1, 0.9]]),
            ...           dist.Poisson(jnp.array([1.0, 10.0])))
            >>> y = jnp.array([0, 1, 12, 9, 0])
            >>> hmm.posterior_sample(jax.random.PRNGKey(1), y, (3,)).shape
            (3, 5)
        """
        back = self._backward(obs)
        batch = back.log_evidence.shape
        noise = sample_noise(rng_key, self._law(), back.messages.log_h.shape[0], tuple(sample_shape) + batch)
        return time_last(forward_guide(self._law(), self._transition(), back.messages, noise).path, 0)

    @compiled()
    def posterior_mode(self, obs) -> jax.Array:
        r"""Viterbi path $\arg\max_{x} p(x_{0:T-1} \mid y)$, ``(*batch, T)``.

        Examples:
            >>> hmm = HMM(jnp.array([0.5, 0.5]), jnp.array([[0.9, 0.1], [0.1, 0.9]]),
            ...           dist.Poisson(jnp.array([1.0, 10.0])))
            >>> y = jnp.array([0, 1, 12, 9, 0])
            >>> hmm.posterior_mode(y).tolist()
            [0, 0, 1, 1, 0]
        """
        leaves, _ = self._leaves(obs)
        xs, kernel_at = split_time(self._transition())

        def _step(v_next, inputs):
            g_t, xs_t = inputs
            scores = jnp.log(kernel_at(xs_t).transition_matrix) + v_next[..., None, :]
            best = jnp.max(scores, -1)
            v_t = g_t + best
            return v_t - jnp.max(v_t, -1, keepdims=True), jnp.argmax(scores, -1)

        v_last = leaves.log_h[-1]
        v0, pointers = jax.lax.scan(_step, v_last, (leaves.log_h[:-1], xs), reverse=True)
        x0 = jnp.argmax(jnp.log(self.initial_probs) + v0, -1)

        def _follow(x_prev, ptr):
            x_t = jnp.take_along_axis(ptr, x_prev[..., None], -1)[..., 0]
            return x_t, x_t

        _, rest = jax.lax.scan(_follow, x0, pointers)
        return time_last(jnp.concatenate([x0[None], rest], 0), 0)

    @compiled("horizon")
    def forecast(self, obs, horizon: int) -> HMMForecast:
        r"""State probabilities and predictive laws for $y_{T}, \dots, y_{T-1+H}$:
        $p(x_{T-1+h} \mid y) = p(x_{T-1} \mid y)\, P^h$, mixed over the emission.

        Examples:
            >>> hmm = HMM(jnp.array([0.5, 0.5]), jnp.array([[0.9, 0.1], [0.1, 0.9]]),
            ...           dist.Poisson(jnp.array([1.0, 10.0])))
            >>> y = jnp.array([0, 1, 12, 9, 0])
            >>> fc = hmm.forecast(y, horizon=3)
            >>> fc.state_probs.shape, fc.predictive.batch_shape
            ((3, 2), (3,))
        """
        if is_time_varying(self.transition_matrix):
            raise ValueError("forecast needs a time-homogeneous transition_matrix (future steps are unknown)")
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        last = self.filter(obs).filtered_probs[..., -1, :]

        def _step(p, _):
            p = jnp.einsum("...i,...ij->...j", p, self.transition_matrix)
            return p, p

        _, probs = jax.lax.scan(_step, last, None, length=horizon)
        probs = time_last(probs, 1)
        return HMMForecast(probs, StateMixture(probs, self.emission))
