r"""Discretely observed diffusions: guided proposals, importance-sampling evidence and the noise-as-input
log-likelihood for pCN / NumPyro.

The model: a $d$-dimensional diffusion $dX = b(t, X)\,dt + \sigma(t, X)\,dW$ started at time $t_s$ from a
fixed $x_0$ or from $N(m_0, P_0)$, observed at sorted times $t_s \le t_0 \le \dots \le t_{M-1}$ through

$$y_j = L X(t_j) + \varepsilon_j,\qquad \varepsilon_j \sim N(0, R),$$

with $L$ ``(m, d)`` (partial observation when $m < d$ or $L$ is rank deficient) and NaN entries of $y$ missing.

**Backward filter.** Between observations the messages of a linear auxiliary
[`LinearSDE`][markovppl.kernels.diffusion.LinearSDE] are computed on each interval's grid
([`backward_diffusion`][markovppl.backward.diffusion.backward_diffusion]); at an observation time the
observation's leaf message $(-\tfrac12 y^\top R^{-1}y - \tfrac12\log\det 2\pi R,\ L^\top R^{-1}y,\ L^\top R^{-1}L)$
is fused into $(c, F, H)$ (added), which is the jump of the message at that time.

**Forward guiding.** The guided Euler scheme of [`guided_diffusion`][markovppl.guided.diffusion.guided_diffusion]
runs interval by interval; the start is $x_0$, or a draw from $N(m_0, P_0)$ tilted by the root message (exact,
weight 0). Then

$$p(y) = \Big(\int \tilde h(t_s, x)\,\pi(dx)\Big)\, E^\circ\Big[\prod_j \Psi_j\Big]$$

for the Euler-discretised model on the grid (bffg.md §1.3, §1.6).

**Noise layout.** A guided path is a deterministic function of the parameters and one standard-normal
vector ``z`` of length [`noise_size`][markovppl.families.sde.DiscretelyObservedSDE.noise_size]
$= d_0 + M N w$: the first $d_0$ entries ($d_0 = d$ with an initial law, $0$ with a fixed $x_0$) drive
the initial draw, the rest reshaped to ``(M, N, w)`` are the Brownian increments of interval $j$, step $k$
(interval 0 runs from $t_s$ to $t_0$; a zero-length interval uses its noise for nothing). Use
[`guided_log_likelihood`][markovppl.families.sde.DiscretelyObservedSDE.guided_log_likelihood] inside a
NumPyro model (Mode B):

```python
z = numpyro.sample("z", dist.Normal(0, 1).expand([sde.noise_size]).to_event(1))
numpyro.factor("loglik", sde.guided_log_likelihood(y, z))
```
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import _validation as v
from ..backward.diffusion import DiffusionMessages, backward_diffusion
from ..backward.rules import leaf
from ..guided.diffusion import guided_diffusion
from ..kernels.diffusion import Diffusion, LinearSDE, time_grid
from ..kernels.gaussian import LinearGaussian
from ..messages import gaussian as gm
from ._sequence import compiled

__all__ = ["DiscretelyObservedSDE", "SDEMessages", "SDEPaths", "GuidedSDEPaths", "EvidenceEstimate", "check_observation_times"]


class SDEMessages(NamedTuple):
    r"""Backward messages of a discretely observed diffusion.

    Attributes:
        times: grid times ``(M, N + 1)``; row $j$ is the interval ending at observation $j$.
        messages: [`GaussianMessage`][markovppl.messages.gaussian.GaussianMessage] ``(M, N + 1, ...)``;
            ``messages[j, N]`` includes observation $j$ (fused), ``messages[j, 0]`` does not include
            observation $j - 1$.
        root: the message at the start time (all observations), batch ``()``.
        log_h_root: $\log\tilde h(t_s, x_0)$ or $\log\int\tilde h(t_s, x)\,N(dx; m_0, P_0)$: the exact log
            evidence of the auxiliary model.

    Examples:
        >>> SDEMessages._fields
        ('times', 'messages', 'root', 'log_h_root')
    """

    times: jax.Array
    messages: gm.GaussianMessage
    root: gm.GaussianMessage
    log_h_root: jax.Array


class SDEPaths(NamedTuple):
    r"""Paths on the grid: ``times`` ``(M, N + 1)``, ``states`` ``(*sample_shape, M, N + 1, d)``
    (``states[..., j, N]`` is the state at observation time $t_j$, equal to ``states[..., j + 1, 0]``).

    Examples:
        >>> SDEPaths._fields
        ('times', 'states')
    """

    times: jax.Array
    states: jax.Array


class GuidedSDEPaths(NamedTuple):
    r"""Guided paths and their weights.

    Attributes:
        times: grid times ``(M, N + 1)``.
        states: ``(*sample_shape, M, N + 1, d)``.
        log_weights: $\sum_j \log\Psi_j$ per path, ``sample_shape``.
        log_h_root: the auxiliary log evidence (see [`SDEMessages`][markovppl.families.sde.SDEMessages]);
            ``log_h_root + log_weights`` is the guided log-likelihood of each path's noise.

    Examples:
        >>> GuidedSDEPaths._fields
        ('times', 'states', 'log_weights', 'log_h_root')
    """

    times: jax.Array
    states: jax.Array
    log_weights: jax.Array
    log_h_root: jax.Array


class EvidenceEstimate(NamedTuple):
    r"""Guided importance-sampling estimate of $\log p(y)$.

    Attributes:
        log_evidence: $\log\tilde h_\text{root} + \log\frac1n\sum_i e^{\log w_i}$.
        standard_error: Monte Carlo standard error of ``log_evidence`` (delta method),
            $\mathrm{sd}(w) / (\bar w\sqrt n)$ — also the relative standard error of the evidence.
        ess: Kish effective sample size $(\sum w)^2 / \sum w^2$.
        num_paths: $n$.

    Examples:
        >>> EvidenceEstimate._fields
        ('log_evidence', 'standard_error', 'ess', 'num_paths')
    """

    log_evidence: jax.Array
    standard_error: jax.Array
    ess: jax.Array
    num_paths: int


def check_observation_times(times, start_time) -> None:
    r"""Raise a ``ValueError`` unless ``times`` ``(M,)`` is non-empty, finite, non-decreasing and
    $\ge$ ``start_time`` (skipped under tracing).

    Examples:
        >>> import numpy as np
        >>> try:
        ...     check_observation_times(np.array([0.5, 0.2]), 0.0)
        ... except ValueError as err:
        ...     print(err)
        times must be sorted (non-decreasing): times[1] = 0.2 < times[0] = 0.5
    """
    if np.ndim(times) != 1:
        raise ValueError(f"times must be a 1-d array (M,), got shape {np.shape(times)}")
    if np.shape(times)[0] == 0:
        raise ValueError("times is empty: a discretely observed diffusion needs at least one observation time")
    if not (v.is_concrete(times) and v.is_concrete(start_time)):
        return
    t = np.asarray(times, float)
    v.check_finite("times", t)
    v.check_finite("start_time", start_time)
    bad = np.flatnonzero(np.diff(t) < 0)
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"times must be sorted (non-decreasing): times[{i + 1}] = {t[i + 1]:.6g} < times[{i}] = {t[i]:.6g}")
    s = float(np.asarray(start_time))
    if t[0] < s:
        raise ValueError(f"times must not be before start_time = {s:.6g} (negative elapsed time): times[0] = {t[0]:.6g}")


@jax.tree_util.register_pytree_node_class
class DiscretelyObservedSDE:
    r"""A diffusion observed with Gaussian noise at irregular times (see the module docstring).

    Args:
        drift: $b$: ``drift(t, x)`` (or ``drift(t, x, params)``) for one state ``x`` ``(d,)``.
        diffusion: $\sigma$: ``diffusion(t, x)`` (or with ``params``) returning ``(d, w)``, or a constant array.
        auxiliary: [`LinearSDE`][markovppl.kernels.diffusion.LinearSDE] $(\tilde B, \tilde\beta, \tilde\sigma)$,
            shared by all intervals, or with arrays of leading axis $M$: one per interval (interval $j$ ends at $t_j$).
        times: observation times ``(M,)``, non-decreasing, $\ge$ ``start_time``.
        obs_matrix: $L$ ``(m, d)``.
        obs_cov: $R$ ``(m, m)``, positive definite.
        x0: fixed start state ``(d,)``; or give ``initial_mean`` ``(d,)`` and ``initial_cov`` ``(d, d)``
            (positive definite) for $X(t_s) \sim N(m_0, P_0)$.
        start_time: $t_s$ (default 0).
        num_steps: Euler steps per interval $N$.
        time_change: time-changed grid (dense near each observation).
        params: optional pytree passed to ``drift``/``diffusion``.
        solver: ``"auto"``, ``"exact"`` or ``"rk4"`` for the auxiliary messages.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from markovppl.kernels.diffusion import LinearSDE
        >>> sde = DiscretelyObservedSDE(lambda t, x: -0.8 * x + 0.3, jnp.array([[0.9]]),
        ...                             LinearSDE(-0.2 * jnp.eye(1), jnp.array([0.1]), jnp.array([[1.2]])),
        ...                             times=jnp.array([0.5, 1.0]), obs_matrix=jnp.eye(1),
        ...                             obs_cov=jnp.array([[0.05]]), x0=jnp.array([1.1]), num_steps=20)
        >>> y = jnp.array([[1.2], [jnp.nan]])                             # the second observation is missing
        >>> g = sde.guided_sample(jax.random.PRNGKey(0), y, sample_shape=(3,))
        >>> g.states.shape, g.log_weights.shape, sde.noise_size
        ((3, 2, 21, 1), (3,), 40)
    """

    def __init__(self, drift: Callable, diffusion, auxiliary: LinearSDE, times, obs_matrix, obs_cov, *, x0=None,
                 initial_mean=None, initial_cov=None, start_time=0.0, num_steps: int = 100, time_change: bool = True,
                 params: Any = None, solver: str = "auto"):
        times = jnp.asarray(times)
        if not jnp.issubdtype(times.dtype, jnp.floating):
            times = times.astype(jnp.result_type(float))
        dtype = times.dtype
        start_time = jnp.asarray(start_time, dtype)
        check_observation_times(times, start_time)
        L = jnp.asarray(obs_matrix, dtype)
        R = jnp.asarray(obs_cov, dtype)
        if (x0 is None) == (initial_mean is None):
            raise ValueError("give exactly one of x0 (fixed start) or initial_mean/initial_cov (Gaussian start)")
        if (initial_mean is None) != (initial_cov is None):
            raise ValueError("initial_mean and initial_cov must be given together")
        d = auxiliary.validate().dim
        if L.ndim != 2 or L.shape[1] != d:
            raise ValueError(f"obs_matrix must have shape (m, {d}), got {L.shape}")
        m = L.shape[0]
        if R.shape != (m, m):
            raise ValueError(f"obs_cov must have shape ({m}, {m}) to match obs_matrix {L.shape}, got {R.shape}")
        v.check_finite("obs_matrix", L)
        v.check_covariance("obs_cov", R, definite=True)
        if x0 is not None:
            x0 = jnp.asarray(x0, dtype)
            if x0.shape != (d,):
                raise ValueError(f"x0 must have shape ({d},), got {x0.shape}")
            v.check_finite("x0", x0)
            chol0 = None
        else:
            initial_mean = jnp.asarray(initial_mean, dtype)
            initial_cov = jnp.asarray(initial_cov, dtype)
            if initial_mean.shape != (d,) or initial_cov.shape != (d, d):
                raise ValueError(f"initial_mean and initial_cov must have shapes ({d},) and ({d}, {d}), got "
                                 f"{initial_mean.shape} and {initial_cov.shape}")
            v.check_finite("initial_mean", initial_mean)
            v.check_covariance("initial_cov", initial_cov, definite=True)
            chol0 = jnp.linalg.cholesky(initial_cov)
        if auxiliary.num_intervals not in (None, times.shape[0]):
            raise ValueError(f"a per-interval auxiliary needs one entry per observation time: leading axis "
                             f"{auxiliary.num_intervals} != {times.shape[0]}")
        gaps = jnp.diff(jnp.concatenate([start_time[None], times]))
        kernel = Diffusion(drift, diffusion, gaps, auxiliary, num_steps=num_steps, time_change=time_change,
                           params=params, solver=solver).validate()
        self._set(kernel, times, start_time, L, R, x0, initial_mean, chol0)

    def _set(self, kernel, times, start_time, L, R, x0, m0, chol0):
        self.kernel, self.times, self.start_time = kernel, times, start_time
        self.obs_matrix, self.obs_cov, self.x0, self.initial_mean, self.initial_chol = L, R, x0, m0, chol0

    def tree_flatten(self):
        return (self.kernel, self.times, self.start_time, self.obs_matrix, self.obs_cov, self.x0, self.initial_mean,
                self.initial_chol), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        obj = object.__new__(cls)
        obj._set(*children)
        return obj

    # ---------------------------------------------------------------- shapes
    @property
    def dim(self) -> int:
        """State dimension $d$."""
        return self.kernel.dim

    @property
    def num_steps(self) -> int:
        """Euler steps per interval $N$."""
        return self.kernel.num_steps

    @property
    def num_intervals(self) -> int:
        """Number of intervals $M$ (= number of observation times)."""
        return int(np.shape(self.times)[0])

    @property
    def noise_shape(self) -> tuple:
        """Shape ``(M, N, w)`` of the Brownian increments."""
        return (self.num_intervals, self.num_steps, self.kernel.noise_dim)

    @property
    def noise_size(self) -> int:
        r"""Length of the flat noise vector $z$: $d_0 + MNw$ ($d_0 = d$ for a Gaussian start, else 0)."""
        return (0 if self.x0 is not None else self.dim) + int(np.prod(self.noise_shape))

    @property
    def grid(self):
        """Grid times ``(M, N + 1)`` of all intervals."""
        starts = jnp.concatenate([self.start_time[None], self.times[:-1]])
        return starts[:, None] + time_grid(self.kernel.duration, self.num_steps, self.kernel.time_change)

    def _check_obs(self, obs):
        obs = jnp.asarray(obs)
        m = self.obs_matrix.shape[0]
        if obs.ndim == 1 and m == 1:
            obs = obs[:, None]
        if obs.shape != (self.num_intervals, m):
            raise ValueError(f"obs must have shape ({self.num_intervals}, {m}) (one row per observation time), "
                             f"got {obs.shape}")
        if not jnp.issubdtype(obs.dtype, jnp.floating):
            obs = obs.astype(self.times.dtype)
        return obs.astype(self.times.dtype)

    def _check_noise(self, noise):
        noise = jnp.asarray(noise, self.times.dtype)
        if noise.ndim < 1 or noise.shape[-1] != self.noise_size:
            raise ValueError(f"noise must have shape (..., {self.noise_size}) (noise_size), got {noise.shape}")
        return noise

    # ---------------------------------------------------------------- backward filter
    def backward_filter(self, obs) -> SDEMessages:
        r"""Auxiliary messages on every interval's grid, observations fused at their times.

        Examples:
            >>> import jax.numpy as jnp
            >>> from markovppl.kernels.diffusion import LinearSDE
            >>> sde = DiscretelyObservedSDE(lambda t, x: -x, jnp.eye(1), LinearSDE(-jnp.eye(1), jnp.zeros(1), jnp.eye(1)),
            ...                             jnp.array([1.0]), jnp.eye(1), jnp.array([[0.1]]), x0=jnp.zeros(1), num_steps=4)
            >>> bf = sde.backward_filter(jnp.array([[0.3]]))
            >>> bf.messages.H.shape, round(float(bf.root.H[0, 0]), 4)     # e^{-2} / ((1 - e^{-2}) / 2 + 0.1)
            ((1, 5, 1, 1), 0.2542)
        """
        return self._backward(self._check_obs(obs))

    @compiled()
    def _backward(self, obs) -> SDEMessages:
        L, R = self.obs_matrix, self.obs_cov
        missing = jnp.isnan(obs)
        leaves = leaf(LinearGaussian(L, jnp.zeros(L.shape[0], L.dtype), R), obs, missing)  # batch (M,)
        zero = jax.tree.map(lambda x: jnp.zeros_like(x[0]), leaves)
        prev = jax.tree.map(lambda z, x: jnp.concatenate([z[None], x[:-1]], 0), zero, leaves)  # leaf j-1 (none at 0)
        starts = jnp.concatenate([self.start_time[None], self.times[:-1]])
        last = jax.tree.map(lambda x: x[-1], leaves)

        def interval(end_msg, inp):
            ell, start, leaf_prev, aux = inp
            out = backward_diffusion(self._interval_kernel(ell, aux), end_msg, start)
            first = jax.tree.map(lambda x: x[0], out.messages)
            return gm.fuse(first, leaf_prev), out

        xs = (self.kernel.duration, starts, prev, self._aux_xs())
        root, outs = jax.lax.scan(interval, last, xs, reverse=True)
        return SDEMessages(outs.times, outs.messages, root, self._log_h_root(root))

    def _aux_xs(self):
        """The per-interval auxiliaries as scan inputs (``None`` when one auxiliary serves all intervals)."""
        return self.kernel.auxiliary if self.kernel.auxiliary.num_intervals is not None else None

    def _interval_kernel(self, ell, aux):
        return self.kernel.replace(duration=ell, auxiliary=self.kernel.auxiliary if aux is None else aux)

    def _log_h_root(self, root):
        if self.x0 is not None:
            return gm.evaluate(root, self.x0)
        return gm.marginalize(root, self.initial_mean, self.initial_chol)

    def aux_log_evidence(self, obs) -> jax.Array:
        r"""$\log\tilde h_\text{root}$: the exact log evidence when the auxiliary is the true process (a linear SDE).

        Examples:
            >>> import jax.numpy as jnp, math
            >>> from markovppl.kernels.diffusion import LinearSDE
            >>> sde = DiscretelyObservedSDE(lambda t, x: jnp.zeros(1), jnp.eye(1), LinearSDE(jnp.zeros((1, 1)), jnp.zeros(1), jnp.eye(1)),
            ...                             jnp.array([2.0]), jnp.eye(1), jnp.array([[1.0]]), x0=jnp.zeros(1), num_steps=3)
            >>> round(float(sde.aux_log_evidence(jnp.array([[0.0]]))), 6) == round(-0.5 * math.log(2 * math.pi * 3.0), 6)
            True
        """
        return self.backward_filter(obs).log_h_root

    # ---------------------------------------------------------------- forward guiding
    def _forward(self, bf: SDEMessages, z, store_path: bool):
        """Guided pass for one flat noise vector ``z`` ``(noise_size,)``: (states or None, log_weight)."""
        d0 = 0 if self.x0 is not None else self.dim
        if self.x0 is not None:
            x = self.x0
        else:
            cond = gm.condition(bf.root, self.initial_mean, self.initial_chol)
            x = cond.mean + cond.noise_factor @ z[:d0]
        inc = z[d0:].reshape(self.noise_shape)

        def interval(x, inp):
            ell, times, msgs, zj, aux = inp
            out, lw = guided_diffusion(self._interval_kernel(ell, aux), DiffusionMessages(times, msgs), x, zj, store_path)
            end = out[-1] if store_path else out
            return end, (out if store_path else None, lw)

        xs = (self.kernel.duration, bf.times, bf.messages, inc, self._aux_xs())
        _, (states, lws) = jax.lax.scan(interval, x, xs)
        return states, jnp.sum(lws)

    def guided_sample(self, rng_key, obs, sample_shape=(), *, noise=None) -> GuidedSDEPaths:
        r"""Guided paths and log-weights, from ``rng_key`` or from explicit ``noise`` ``(*sample_shape, noise_size)``.

        With ``noise`` given, ``rng_key`` is ignored (may be ``None``) and the sample shape is ``noise.shape[:-1]``.
        Self-normalised weights $\propto e^{\log w}$ turn the paths into draws from the posterior of the
        discretised model.

        Examples:
            >>> import jax, jax.numpy as jnp
            >>> from markovppl.kernels.diffusion import LinearSDE
            >>> aux = LinearSDE(-jnp.eye(1), jnp.zeros(1), jnp.eye(1))
            >>> sde = DiscretelyObservedSDE(lambda t, x: -x, jnp.eye(1), aux, jnp.array([1.0]), jnp.eye(1),
            ...                             jnp.array([[1e-6]]), x0=jnp.zeros(1), num_steps=30)
            >>> g = sde.guided_sample(None, jnp.array([[0.7]]), noise=jnp.zeros((2, sde.noise_size)))
            >>> g.states[:, 0, -1, 0].round(3).tolist(), g.log_weights.tolist()   # ends at y; exact auxiliary
            ([0.7, 0.7], [0.0, 0.0])
        """
        if noise is None:
            if rng_key is None:
                raise ValueError("guided_sample needs an rng_key or noise")
            shape = tuple(sample_shape) + (self.noise_size,)
            noise = jax.random.normal(rng_key, shape, self.times.dtype)
        noise = self._check_noise(noise)
        bf = self._backward(self._check_obs(obs))
        states, lw = self._paths(bf, noise)
        return GuidedSDEPaths(bf.times, states, lw, bf.log_h_root)

    @compiled()
    def _paths(self, bf: SDEMessages, noise):
        flat = noise.reshape((-1, noise.shape[-1]))
        states, lw = jax.vmap(lambda z: self._forward(bf, z, True))(flat)
        batch = noise.shape[:-1]
        return states.reshape(batch + states.shape[1:]), lw.reshape(batch)

    @compiled()
    def _weights(self, bf: SDEMessages, noise):
        flat = noise.reshape((-1, noise.shape[-1]))
        lw = jax.vmap(lambda z: self._forward(bf, z, False)[1])(flat)
        return lw.reshape(noise.shape[:-1])

    def guided_log_weight(self, obs, noise) -> jax.Array:
        r"""$\sum_j \log\Psi_j$ for noise ``(..., noise_size)`` (no paths stored); the pCN acceptance ratio
        at fixed parameters needs only this.

        Examples:
            >>> import jax.numpy as jnp
            >>> from markovppl.kernels.diffusion import LinearSDE
            >>> aux = LinearSDE(-jnp.eye(1), jnp.zeros(1), jnp.eye(1))
            >>> sde = DiscretelyObservedSDE(lambda t, x: -x - 0.1 * x**3, jnp.eye(1), aux, jnp.array([1.0]), jnp.eye(1),
            ...                             jnp.array([[0.1]]), x0=jnp.zeros(1), num_steps=10)
            >>> sde.guided_log_weight(jnp.array([[0.5]]), jnp.zeros((4, sde.noise_size))).shape
            (4,)
        """
        noise = self._check_noise(noise)
        return self._weights(self._backward(self._check_obs(obs)), noise)

    def guided_log_likelihood(self, obs, noise) -> jax.Array:
        r"""$\log\tilde h_\text{root} + \sum_j\log\Psi_j(z)$ for noise $z$ ``(..., noise_size)``.

        Its expectation of the exponential over $z \sim N(0, I)$ is $p(y)$; as a function of
        (parameters, $z$) it is the log-density factor of the non-centred NumPyro model (Mode B), and
        ``jit``, ``vmap`` and ``grad`` work through it.

        Examples:
            >>> import jax, jax.numpy as jnp
            >>> from markovppl.kernels.diffusion import LinearSDE
            >>> def loglik(theta, z):
            ...     sde = DiscretelyObservedSDE(lambda t, x: -theta * x, jnp.eye(1), LinearSDE(-jnp.eye(1), jnp.zeros(1), jnp.eye(1)),
            ...                                 jnp.array([1.0]), jnp.eye(1), jnp.array([[0.1]]), x0=jnp.ones(1), num_steps=10)
            ...     return sde.guided_log_likelihood(jnp.array([[0.5]]), z)
            >>> g = jax.grad(loglik)(0.7, jnp.zeros(10))
            >>> bool(jnp.isfinite(g))
            True
        """
        noise = self._check_noise(noise)
        bf = self._backward(self._check_obs(obs))
        return bf.log_h_root + self._weights(bf, noise)

    def log_evidence_is(self, rng_key, obs, num_paths: int, batch_size: int = 4096) -> EvidenceEstimate:
        r"""Guided importance-sampling estimate of $\log p(y)$ with its Monte Carlo standard error
        (``num_paths`` paths in batches of ``batch_size``; no path is stored).

        Examples:
            >>> import jax, jax.numpy as jnp
            >>> from markovppl.kernels.diffusion import LinearSDE
            >>> aux = LinearSDE(-0.5 * jnp.eye(1), jnp.zeros(1), jnp.eye(1))
            >>> sde = DiscretelyObservedSDE(lambda t, x: -x, jnp.eye(1), aux, jnp.array([1.0]), jnp.eye(1),
            ...                             jnp.array([[0.1]]), x0=jnp.zeros(1), num_steps=20)
            >>> est = sde.log_evidence_is(jax.random.PRNGKey(0), jnp.array([[0.5]]), num_paths=200)
            >>> est.num_paths, bool(est.standard_error < 0.05)
            (200, True)
        """
        if not isinstance(num_paths, (int, np.integer)) or num_paths < 2:
            raise ValueError(f"num_paths must be an integer >= 2, got {num_paths!r}")
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        bf = self._backward(self._check_obs(obs))
        lw = self.is_log_weights(rng_key, bf, num_paths, batch_size)
        return _summarise(bf.log_h_root, lw, int(num_paths))

    def is_log_weights(self, rng_key, messages: SDEMessages, num_paths: int, batch_size: int = 4096) -> jax.Array:
        r"""Log-weights ``(num_paths,)`` of guided paths drawn from ``rng_key`` (batches of ``batch_size``
        noise vectors, each drawn from its own key), given the messages of
        [`backward_filter`][markovppl.families.sde.DiscretelyObservedSDE.backward_filter].

        Examples:
            >>> import jax, jax.numpy as jnp
            >>> from markovppl.kernels.diffusion import LinearSDE
            >>> sde = DiscretelyObservedSDE(lambda t, x: -x, jnp.eye(1), LinearSDE(jnp.zeros((1, 1)), jnp.zeros(1), jnp.eye(1)),
            ...                             jnp.array([1.0]), jnp.eye(1), jnp.array([[0.1]]), x0=jnp.zeros(1), num_steps=8)
            >>> sde.is_log_weights(jax.random.PRNGKey(0), sde.backward_filter(jnp.array([[0.5]])), 10, 4).shape
            (10,)
        """
        batch = min(int(batch_size), int(num_paths))
        keys = jax.random.split(rng_key, -(-int(num_paths) // batch))
        return self._is_weights(messages, keys, batch).reshape(-1)[:num_paths]

    @compiled("batch")
    def _is_weights(self, bf: SDEMessages, keys, batch: int):
        def one_batch(key):
            z = jax.random.normal(key, (batch, self.noise_size), self.times.dtype)
            return jax.vmap(lambda zz: self._forward(bf, zz, False)[1])(z)

        return jax.lax.map(one_batch, keys)

    # ---------------------------------------------------------------- forward simulation
    def sample(self, rng_key, sample_shape=()) -> tuple[SDEPaths, jax.Array]:
        r"""Simulate ``(paths, obs)`` from the model: Euler–Maruyama on the grid, observations ``(*sample_shape, M, m)``.

        Examples:
            >>> import jax, jax.numpy as jnp
            >>> from markovppl.kernels.diffusion import LinearSDE
            >>> sde = DiscretelyObservedSDE(lambda t, x: -x, jnp.eye(2), LinearSDE(-jnp.eye(2), jnp.zeros(2), jnp.eye(2)),
            ...                             jnp.array([0.5, 1.5]), jnp.array([[1.0, 0.0]]), jnp.array([[0.1]]),
            ...                             x0=jnp.zeros(2), num_steps=10)
            >>> paths, y = sde.sample(jax.random.PRNGKey(1), (5,))
            >>> paths.states.shape, y.shape
            ((5, 2, 11, 2), (5, 2, 1))
        """
        return self._sample(rng_key, tuple(sample_shape))

    @compiled("sample_shape")
    def _sample(self, rng_key, sample_shape):
        k0, k1, k2 = jax.random.split(rng_key, 3)
        dtype = self.times.dtype
        d, m = self.dim, self.obs_matrix.shape[0]
        n = int(np.prod(sample_shape)) if sample_shape else 1
        inc = jax.random.normal(k1, (n,) + self.noise_shape, dtype)
        eps = jax.random.normal(k2, (n, self.num_intervals, m), dtype)
        if self.x0 is not None:
            x_init = jnp.broadcast_to(self.x0, (n, d))
        else:
            x_init = self.initial_mean + jax.random.normal(k0, (n, d), dtype) @ self.initial_chol.T
        grid = self.grid
        kernel = self.kernel

        def one(x, zs):
            def interval(x, inp):
                times, zj = inp
                dts = times[1:] - times[:-1]

                def step(x, s):
                    t, dt, z = s
                    x_new = x + kernel.b(t, x) * dt + kernel.sigma(t, x) @ z * jnp.sqrt(dt)
                    return x_new, x_new

                end, path = jax.lax.scan(step, x, (times[:-1], dts, zj))
                return end, jnp.concatenate([x[None], path], 0)

            _, states = jax.lax.scan(interval, x, (grid, zs))
            return states

        states = jax.vmap(one)(x_init, inc)
        r_chol = jnp.linalg.cholesky(self.obs_cov)
        y = jnp.einsum("nmd,od->nmo", states[:, :, -1], self.obs_matrix) + jnp.einsum("nmo,po->nmp", eps, r_chol)
        shape = tuple(sample_shape)
        return SDEPaths(grid, states.reshape(shape + states.shape[1:])), y.reshape(shape + y.shape[1:])


def _summarise(log_h, lw, n: int) -> EvidenceEstimate:
    top = jnp.max(lw)
    w = jnp.exp(lw - top)
    mean = jnp.mean(w)
    sd = jnp.std(w, ddof=1)
    ess = jnp.sum(w) ** 2 / jnp.sum(w**2)
    return EvidenceEstimate(log_h + top + jnp.log(mean), sd / (mean * math.sqrt(n)), ess, n)

