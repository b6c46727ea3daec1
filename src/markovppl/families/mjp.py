r"""Markov jump processes observed with noise at irregular times, as NumPyro distributions."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from .. import _validation as v
from ..jump.bridge import JumpPath, _sample_bridge
from ..kernels.jump import JumpProcess, check_generator, expm_generator
from ..kernels.time import time_varying
from ._sequence import compiled
from .hmm import HMM, StateMixture

__all__ = ["MJPForecast", "MarkovJumpProcess", "check_times"]


def check_times(times, name: str = "times") -> None:
    r"""Raise a ``ValueError`` unless ``times`` ``(..., T)`` is a non-empty, finite, non-decreasing sequence
    (skipped under tracing).

    Examples:
        >>> import numpy as np
        >>> try:
        ...     check_times(np.array([0.0, 2.0, 1.5]))
        ... except ValueError as err:
        ...     print(err)
        times must be sorted (non-decreasing): times[2] = 1.5 < times[1] = 2
    """
    v.check_ndim(name, times, 1, "(..., T)")
    if np.shape(times)[-1] == 0:
        raise ValueError(f"{name} is empty: a jump process needs at least one observation time")
    if not v.is_concrete(times):
        return
    t = np.asarray(times, dtype=float)
    v.check_finite(name, t)
    gaps = np.diff(t, axis=-1)
    if np.any(gaps < 0):
        flat = t.reshape(-1, t.shape[-1])
        row, col = np.argwhere(np.diff(flat, axis=-1) < 0)[0]
        raise ValueError(f"{name} must be sorted (non-decreasing): {name}[{col + 1}] = {flat[row, col + 1]:.6g} < "
                         f"{name}[{col}] = {flat[row, col]:.6g}")


class MJPForecast(NamedTuple):
    r"""Forecast of a Markov jump process at future times.

    Attributes:
        state_probs: $p(x(s_h) \mid y)$ at the future times $s_h$, ``(*batch, H, K)``.
        predictive: the mixture $\sum_k p(x(s_h) = k \mid y)\, e(\cdot \mid k)$, batch shape ``(*batch, H)``.

    Made by [`MarkovJumpProcess.forecast`][markovppl.families.mjp.MarkovJumpProcess.forecast].

    Examples:
        >>> MJPForecast._fields
        ('state_probs', 'predictive')
    """

    state_probs: jax.Array
    predictive: dist.Distribution


class MarkovJumpProcess(HMM):
    r"""A continuous-time Markov chain $x(t)$ on $K$ states observed with noise at sorted times $t_0 \le \dots \le t_{T-1}$.

    $$x(t_0) \sim \pi_0,\qquad x(t_{k+1}) \mid x(t_k) \sim e^{(t_{k+1} - t_k) Q}[x(t_k), \cdot],\qquad
      y_k \mid x(t_k) \sim e(\cdot \mid x(t_k)).$$

    It is the [`HMM`][markovppl.families.hmm.HMM] with time-varying transition matrices
    $P_k = e^{\Delta_k Q}$ (computed entrywise-accurately for stiff generators, see
    [`expm_generator`][markovppl.kernels.jump.expm_generator]), so ``log_prob`` (the exact evidence),
    ``filter``, ``smooth``, ``posterior_sample`` (the states at the observation times), ``posterior_mode``,
    ``log_predictive`` and missing observations work as there. Added here: ``posterior_path`` (exact
    continuous-time posterior paths: skeleton by forward guiding, then
    [endpoint-conditioned bridges][markovppl.jump.bridge.sample_bridge]), ``sample_path`` and ``forecast`` at
    future times. Differentiable in the generator (use
    [`generator_from_rates`][markovppl.kernels.jump.generator_from_rates] for unconstrained rates), the
    initial law and the times when the distribution is built inside the differentiated function (as in a
    NumPyro model).

    Args:
        initial_probs: $\pi_0$ ``(..., K)``: the law of $x(t_0)$, or of $x(t_\text{start})$ when
            ``start_time`` is given (then propagated to $t_0$ by $e^{(t_0 - t_\text{start})Q}$).
        generator: $Q$ ``(..., K, K)``: non-negative off-diagonal rates, rows summing to zero.
        emission: NumPyro distribution batched over the states (rightmost batch axis of size $K$).
        times: observation times ``(..., T)``, non-decreasing.
        start_time: optional time $\le t_0$ at which ``initial_probs`` holds.
        missing: optional boolean ``(..., T)`` (NaN observations are missing too).
        parallel: use the parallel-in-time backward filter.

    Examples:
        >>> import jax, jax.numpy as jnp, numpyro.distributions as dist
        >>> Q = jnp.array([[-0.5, 0.5], [1.0, -1.0]])
        >>> mjp = MarkovJumpProcess(jnp.array([0.5, 0.5]), Q, dist.Normal(jnp.array([0.0, 3.0]), 1.0),
        ...                         times=jnp.array([0.0, 0.3, 1.7, 2.0, 4.5]))
        >>> y = mjp.sample(jax.random.PRNGKey(0))
        >>> y.shape, mjp.log_prob(y).shape
        ((5,), ())
    """

    pytree_data_fields = ("generator", "times", "start_time", "base_probs")
    pytree_aux_fields = ()

    def __init__(self, initial_probs, generator, emission: dist.Distribution, times, start_time=None, *,
                 missing=None, parallel: bool = False, validate_args=None):
        generator = jnp.asarray(generator)
        if not jnp.issubdtype(generator.dtype, jnp.floating):
            generator = generator.astype(jnp.result_type(float))
        check_generator("generator", generator)
        times = jnp.asarray(times, generator.dtype)
        check_times(times)
        base = jnp.asarray(initial_probs, generator.dtype)
        v.check_ndim("initial_probs", base, 1, "(..., K)")
        if base.shape[-1] != generator.shape[-1]:
            raise ValueError(f"initial_probs has {base.shape[-1]} states but generator has {generator.shape[-1]}")
        v.check_stochastic("initial_probs", base)
        if start_time is not None:
            start_time = jnp.asarray(start_time, generator.dtype)
            if v.is_concrete(start_time) and v.is_concrete(times) and np.any(np.asarray(start_time) > np.asarray(times[..., 0])):
                raise ValueError(f"start_time ({np.asarray(start_time)}) must not be after the first observation time "
                                 f"({np.asarray(times[..., 0])})")
            p0 = expm_generator(generator, times[..., 0] - start_time)
            law = jnp.einsum("...i,...ij->...j", base, p0)
        else:
            law = base
        batch = jax.lax.broadcast_shapes(times.shape[:-1], generator.shape[:-2])
        gaps = jnp.moveaxis(jnp.diff(times, axis=-1), -1, 0)
        gaps = jnp.broadcast_to(gaps.reshape(gaps.shape[:1] + (1,) * (len(batch) - (times.ndim - 1)) + gaps.shape[1:]),
                                gaps.shape[:1] + batch)  # (T-1, *batch)
        steps = expm_generator(generator, gaps)  # (T-1, *batch, K, K)
        self.generator, self.times, self.start_time, self.base_probs = generator, times, start_time, base
        super().__init__(law, time_varying(steps), emission, missing=missing, parallel=parallel, validate_args=validate_args)
        self._batch_shape = jax.lax.broadcast_shapes(self.batch_shape, times.shape[:-1])

    @classmethod
    def infer_shapes(cls, initial_probs, generator, emission_batch_shape, emission_event_shape=(), times=(1,),
                     start_time=None):
        r"""Shapes ``(batch_shape, event_shape)`` from the shapes of the parameters: the batch shape broadcasts
        the leading axes of $\pi_0$ ``(..., K)``, $Q$ ``(..., K, K)``, the emission and ``times`` ``(..., T)``.

        Examples:
            >>> MarkovJumpProcess.infer_shapes((4, 3), (3, 3), (3,), times=(25,))
            ((4,), (25,))
        """
        batch = jax.lax.broadcast_shapes(tuple(initial_probs)[:-1], tuple(generator)[:-2], tuple(emission_batch_shape)[:-1],
                                         tuple(times)[:-1])
        return batch, (tuple(times)[-1],) + tuple(emission_event_shape)

    @property
    def kernel(self) -> JumpProcess:
        r"""The [`JumpProcess`][markovppl.kernels.jump.JumpProcess] between consecutive observations
        (time-varying durations $\Delta_k$).

        Examples:
            >>> import jax.numpy as jnp, numpyro.distributions as dist
            >>> mjp = MarkovJumpProcess(jnp.array([1.0, 0.0]), jnp.array([[-1.0, 1.0], [1.0, -1.0]]),
            ...                         dist.Normal(jnp.array([0.0, 1.0]), 1.0), jnp.array([0.0, 0.5, 2.0]))
            >>> mjp.kernel.duration.value.tolist()
            [0.5, 1.5]
        """
        return JumpProcess(self.generator, time_varying(jnp.moveaxis(jnp.diff(self.times, axis=-1), -1, 0)))

    # ----------------------------------------------------------------- continuous-time paths
    @compiled("max_jumps", "sample_shape")
    def posterior_path(self, rng_key, obs, max_jumps: int, sample_shape=()) -> JumpPath:
        r"""Exact draws of the continuous-time path on $[t_0, t_{T-1}]$ given the observations.

        The states at the observation times are drawn by forward guiding
        ([`posterior_sample`][markovppl.families.hmm.HMM.posterior_sample]); given them, the path between
        consecutive observations is an endpoint-conditioned bridge (independent across intervals by the
        Markov property), drawn exactly by uniformisation. ``max_jumps`` is the number of slots per
        interval (see [`suggest_max_jumps`][markovppl.jump.bridge.suggest_max_jumps]); ``overflow`` flags
        draws that needed more.

        Returns:
            [`JumpPath`][markovppl.jump.bridge.JumpPath] of batch shape ``(*sample_shape, *batch)`` with
            ``(T - 1) * max_jumps`` slots.

        Examples:
            >>> import jax, jax.numpy as jnp, numpyro.distributions as dist
            >>> mjp = MarkovJumpProcess(jnp.array([0.5, 0.5]), jnp.array([[-0.5, 0.5], [1.0, -1.0]]),
            ...                         dist.Normal(jnp.array([0.0, 3.0]), 1.0), jnp.array([0.0, 0.3, 1.7, 2.0]))
            >>> path = mjp.posterior_path(jax.random.PRNGKey(0), jnp.array([0.1, 2.9, 3.2, -0.3]), max_jumps=12, sample_shape=(5,))
            >>> path.times.shape, path.num_jumps.shape
            ((5, 36), (5,))
        """
        k_skel, k_bridge = jax.random.split(rng_key)
        skeleton = self.posterior_sample(k_skel, obs, sample_shape)
        return self._bridges(k_bridge, skeleton, max_jumps)

    @compiled("max_jumps", "sample_shape")
    def sample_path(self, rng_key, max_jumps: int, sample_shape=()):
        r"""Simulate ``(path, observations)``: a continuous-time path on $[t_0, t_{T-1}]$ (states at the
        observation times by forward simulation, then exact bridges) and the observations.

        Examples:
            >>> import jax, jax.numpy as jnp, numpyro.distributions as dist
            >>> mjp = MarkovJumpProcess(jnp.array([0.5, 0.5]), jnp.array([[-0.5, 0.5], [1.0, -1.0]]),
            ...                         dist.Normal(jnp.array([0.0, 3.0]), 1.0), jnp.array([0.0, 0.3, 1.7, 2.0]))
            >>> path, y = mjp.sample_path(jax.random.PRNGKey(0), max_jumps=12)
            >>> path.times.shape, y.shape
            ((36,), (4,))
        """
        k_skel, k_bridge = jax.random.split(rng_key)
        states, obs = self.sample_with_states(k_skel, sample_shape)
        return self._bridges(k_bridge, states, max_jumps), obs

    def _bridges(self, key, skeleton, max_jumps: int) -> JumpPath:
        """Bridges between consecutive skeleton states ``(..., T)``, concatenated into one padded path."""
        q = self.generator
        t = jnp.broadcast_to(self.times, skeleton.shape).astype(q.dtype)
        if t.shape[-1] == 1:
            empty = jnp.zeros(skeleton.shape[:-1] + (0,))
            return JumpPath(skeleton[..., 0], empty.astype(q.dtype), empty.astype(jnp.int32), empty.sum(-1).astype(jnp.int32),
                            jnp.zeros(skeleton.shape[:-1], bool), t[..., 0], t[..., 0])
        if q.ndim == 2:
            seg = _sample_bridge(key, q, t[..., 1:] - t[..., :-1], skeleton[..., :-1], skeleton[..., 1:], int(max_jumps), t[..., :-1])
        else:  # one generator per batch entry: vmap the bridge sampler over the flattened batch
            batch, k = skeleton.shape[:-1], q.shape[-1]
            flat_q = jnp.broadcast_to(q, batch + (k, k)).reshape((-1, k, k))
            flat_t, flat_x = t.reshape((-1, t.shape[-1])), skeleton.reshape((-1, skeleton.shape[-1]))
            keys = jax.random.split(key, flat_q.shape[0])
            seg = jax.vmap(lambda kk, qq, tt, xx: _sample_bridge(kk, qq, tt[1:] - tt[:-1], xx[:-1], xx[1:], int(max_jumps), tt[:-1]))(
                keys, flat_q, flat_t, flat_x)
            seg = jax.tree.map(lambda a: a.reshape(batch + a.shape[1:]), seg)
        # seg fields have batch (..., T-1): concatenate the intervals, real jumps first (they stay sorted)
        slots = seg.times.shape[-1]
        real = jnp.arange(slots) < seg.num_jumps[..., None]
        flat = lambda x: x.reshape(x.shape[:-2] + (-1,))
        real, times, states = flat(real), flat(seg.times), flat(seg.states)
        order = jnp.argsort(~real, axis=-1, stable=True)
        num = jnp.sum(seg.num_jumps, -1)
        keep = jnp.arange(real.shape[-1]) < num[..., None]
        end, final = t[..., -1], skeleton[..., -1].astype(jnp.int32)
        times = jnp.where(keep, jnp.take_along_axis(times, order, -1), end[..., None])
        states = jnp.where(keep, jnp.take_along_axis(states, order, -1), final[..., None])
        return JumpPath(skeleton[..., 0].astype(jnp.int32), times, states, num, jnp.any(seg.overflow, -1), t[..., 0], end)

    # ----------------------------------------------------------------- forecasting
    def forecast(self, obs, times_ahead) -> MJPForecast:
        r"""State probabilities and predictive laws at future times $s_h > t_{T-1}$:
        $p(x(s_h) \mid y) = p(x(t_{T-1}) \mid y)\, e^{(s_h - t_{T-1}) Q}$.

        Examples:
            >>> import jax.numpy as jnp, numpyro.distributions as dist
            >>> mjp = MarkovJumpProcess(jnp.array([0.5, 0.5]), jnp.array([[-0.5, 0.5], [1.0, -1.0]]),
            ...                         dist.Normal(jnp.array([0.0, 3.0]), 1.0), jnp.array([0.0, 0.3, 1.7]))
            >>> fc = mjp.forecast(jnp.array([0.1, 2.9, 3.2]), jnp.array([2.0, 5.0, 50.0]))
            >>> fc.state_probs.round(3).tolist()[-1]                 # far ahead: the stationary law
            [0.667, 0.333]
        """
        ahead = jnp.asarray(times_ahead, self.generator.dtype)
        v.check_ndim("times_ahead", ahead, 1, "(H,)")
        if v.is_concrete(ahead) and v.is_concrete(self.times):
            check_times(ahead, "times_ahead")
            if np.any(np.asarray(ahead)[..., :1] < np.asarray(self.times)[..., -1:]):
                raise ValueError("times_ahead must not be before the last observation time")
        return self._forecast(obs, ahead)

    @compiled()
    def _forecast(self, obs, ahead) -> MJPForecast:
        last = self.filter(obs).filtered_probs[..., -1, :]
        gaps = ahead - self.times[..., -1:]  # (*batch, H)
        p = expm_generator(self.generator[..., None, :, :], gaps)  # (*batch, H, K, K)
        probs = jnp.einsum("...i,...hij->...hj", last, p)
        return MJPForecast(probs, StateMixture(probs, self.emission))

