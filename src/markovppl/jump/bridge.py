r"""Endpoint-conditioned paths of a continuous-time Markov chain, sampled exactly by uniformisation.

Given $X_0 = a$ and $X_\ell = b$ for a chain with generator $Q$, let $\mu = \max_x |Q[x, x]|$ and
$R = I + Q/\mu$ (a stochastic matrix). Uniformisation writes $e^{\ell Q} = \sum_n \mathrm{Pois}(n; \mu\ell) R^n$:
the chain is a discrete chain $R$ run at the event times of a Poisson process of rate $\mu$, some of whose
jumps are *virtual* (a state to itself). Conditionally on both ends (Hobolth & Stone 2009, §2.3):

1. the number of events has law $p(n \mid a, b) = \mathrm{Pois}(n; \mu\ell)\, R^n[a, b] / e^{\ell Q}[a, b]$;
2. given $n$, the event times are $n$ sorted uniforms on $[0, \ell]$;
3. given $n$, the states $z_1, \dots, z_{n-1}$ (with $z_0 = a$, $z_n = b$) form the bridge of the discrete
   chain $R$: $p(z_k = j \mid z_{k-1} = i) = R[i, j]\, R^{n-k}[j, b] / R^{n-k+1}[i, b]$.

Dropping the virtual jumps leaves an exact draw of the path. Paths are returned padded to a static
``max_jumps`` (so the sampler is one ``jit``-able, ``vmap``-able function); if the drawn number of events
exceeds it, ``overflow`` is set (the event-count law has tail mass beyond ``max_jumps``; choose it with
[`suggest_max_jumps`][markovppl.jump.bridge.suggest_max_jumps]).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln
from scipy import stats

from ..kernels.jump import check_generator, expm_generator

__all__ = ["JumpPath", "sample_bridge", "suggest_max_jumps", "occupation_times", "transition_counts", "path_state_at"]


class JumpPath(NamedTuple):
    r"""A piecewise-constant path on $[t_0, t_1]$ in padded form (batch axes lead).

    The path starts in ``initial_state`` at $t_0$ and jumps to ``states[..., k]`` at ``times[..., k]`` for
    $k <$ ``num_jumps``; later slots are padding (time $t_1$, the final state), so sums over slots of
    interval lengths stay correct.

    Attributes:
        initial_state: ``(...)`` state at $t_0$.
        times: ``(..., max_jumps)`` jump times, increasing, padded with $t_1$.
        states: ``(..., max_jumps)`` state entered at each jump, padded with the final state.
        num_jumps: ``(...)`` number of real jumps.
        overflow: ``(...)`` True where more than ``max_jumps`` events were needed (the path is then not an
            exact draw: increase ``max_jumps``).
        start: ``(...)`` $t_0$.
        end: ``(...)`` $t_1$.

    Examples:
        >>> JumpPath._fields
        ('initial_state', 'times', 'states', 'num_jumps', 'overflow', 'start', 'end')
    """

    initial_state: jax.Array
    times: jax.Array
    states: jax.Array
    num_jumps: jax.Array
    overflow: jax.Array
    start: jax.Array
    end: jax.Array


def suggest_max_jumps(generator, duration, tail: float = 1e-10) -> int:
    r"""A ``max_jumps`` for which the uniformised event count exceeds it with probability below ``tail``
    (the $1 - $ ``tail`` quantile of $\mathrm{Pois}(\mu\ell)$, an upper bound for every endpoint pair up to
    the factor $1/e^{\ell Q}[a, b]$). Eager (NumPy); ``duration`` may be an array (its maximum is used).

    Examples:
        >>> import numpy as np
        >>> suggest_max_jumps(np.array([[-1.0, 1.0], [2.0, -2.0]]), 3.0)
        28
    """
    q = np.asarray(generator, dtype=float)
    check_generator("generator", q)
    rate = float(np.max(-np.diagonal(q, axis1=-2, axis2=-1))) * float(np.max(np.asarray(duration, float)))
    return max(1, int(stats.poisson.isf(tail, rate)) + 1)


def _one_bridge(key, generator, duration, start_state, end_state, max_jumps: int):
    q = generator
    k = q.shape[-1]
    dtype = q.dtype
    mu = jnp.max(-jnp.diagonal(q))
    mu_safe = jnp.where(mu > 0, mu, 1.0)
    r = jnp.maximum(jnp.eye(k, dtype=dtype) + q / mu_safe, 0.0)  # no -1e-17 from 1 - mu/mu
    rate = mu * duration

    # v_n = R^n e_b for n = 0..M (matrix-vector products only)
    def _power(vec, _):
        nxt = r @ vec
        return nxt, nxt

    v0 = jax.nn.one_hot(end_state, k, dtype=dtype)
    _, vs = jax.lax.scan(_power, v0, None, length=max_jumps)
    v = jnp.concatenate([v0[None], vs], 0)  # (M+1, K)
    n = jnp.arange(max_jumps + 1, dtype=dtype)
    log_pois = jnp.where(rate > 0, n * jnp.log(jnp.where(rate > 0, rate, 1.0)) - rate - gammaln(n + 1),
                         jnp.where(n == 0, 0.0, -jnp.inf))
    log_w = log_pois + jnp.log(v[:, start_state])
    log_total = jnp.log(expm_generator(q, duration)[start_state, end_state])
    k_n, k_t, k_z = jax.random.split(key, 3)
    u = jax.random.uniform(k_n, dtype=dtype)
    cdf = jnp.exp(jax.lax.cumlogsumexp(log_w) - log_total)
    count = jnp.sum(cdf < u)
    overflow = count > max_jumps
    count = jnp.minimum(count, max_jumps)
    return _bridge_given_count(k_t, k_z, r, v, start_state, end_state, count, duration, max_jumps) + (overflow,)


def _bridge_given_count(k_t, k_z, r, v, start_state, end_state, count, duration, max_jumps: int):
    """Event times and states given the number of uniformised events ``count``; virtual jumps removed.
    Returns ``(times, states, num_jumps)`` padded to ``max_jumps``."""
    dtype = r.dtype
    slots = jnp.arange(max_jumps)
    u = jax.random.uniform(k_t, (max_jumps,), dtype=dtype) * duration
    times = jnp.sort(jnp.where(slots < count, u, duration))
    log_r = jnp.log(r)
    gumbel = jax.random.gumbel(k_z, (max_jumps, r.shape[-1]), dtype=dtype)

    def _step(z_prev, inputs):
        kk, g = inputs  # kk = 1..M
        remaining = jnp.clip(count - kk, 0, max_jumps)
        z_new = jnp.argmax(log_r[z_prev] + jnp.log(v[remaining]) + g).astype(z_prev.dtype)
        z_new = jnp.where(kk < count, z_new, jnp.where(kk == count, end_state.astype(z_prev.dtype), z_prev))
        return z_new, z_new

    z0 = jnp.asarray(start_state, jnp.int32)
    _, z = jax.lax.scan(_step, z0, (slots + 1, gumbel))
    prev = jnp.concatenate([z0[None], z[:-1]])
    real = (z != prev) & (slots < count)
    order = jnp.argsort(~real, stable=True)
    num_jumps = jnp.sum(real)
    keep = slots < num_jumps
    final = jnp.asarray(end_state, jnp.int32)
    return jnp.where(keep, times[order], duration), jnp.where(keep, z[order], final), num_jumps


def sample_bridge(rng_key, generator, duration, start_state, end_state, max_jumps: int, start_time=0.0) -> JumpPath:
    r"""Exact draws of the path of a chain with generator $Q$ on $[t_0, t_0 + \ell]$ given $X_{t_0} = a$, $X_{t_0+\ell} = b$.

    Args:
        rng_key: PRNG key.
        generator: $Q$ ``(K, K)``.
        duration: $\ell \ge 0$, broadcast against the states.
        start_state: $a$, integer array (any batch shape).
        end_state: $b$, broadcast against ``start_state``.
        max_jumps: static number of slots (uniformised events, real and virtual).
        start_time: $t_0$ (broadcast); jump times are returned on the absolute time axis.

    Returns:
        [`JumpPath`][markovppl.jump.bridge.JumpPath] with the broadcast batch shape. Endpoint pairs with
        $e^{\ell Q}[a, b] = 0$ are impossible and give meaningless paths.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> Q = jnp.array([[-1.0, 1.0], [2.0, -2.0]])
        >>> path = sample_bridge(jax.random.PRNGKey(0), Q, 2.0, jnp.array([0, 0, 1]), jnp.array([1, 0, 1]), max_jumps=20)
        >>> path.times.shape, bool((path.num_jumps[0] % 2) == 1)    # 0 -> 1 needs an odd number of jumps
        ((3, 20), True)
    """
    q = jnp.asarray(generator)
    if not jnp.issubdtype(q.dtype, jnp.floating):
        q = q.astype(jnp.result_type(float))
    check_generator("generator", q)
    if int(max_jumps) < 1:
        raise ValueError(f"max_jumps must be >= 1, got {max_jumps}")
    return _sample_bridge(rng_key, q, duration, start_state, end_state, int(max_jumps), start_time)


@partial(jax.jit, static_argnums=5)
def _sample_bridge(rng_key, q, duration, start_state, end_state, max_jumps: int, start_time):
    a = jnp.asarray(start_state)
    b = jnp.asarray(end_state)
    ell = jnp.asarray(duration, q.dtype)
    t0 = jnp.asarray(start_time, q.dtype)
    shape = jnp.broadcast_shapes(a.shape, b.shape, ell.shape, t0.shape)
    a, b, ell, t0 = (jnp.broadcast_to(x, shape).reshape(-1) for x in (a, b, ell, t0))
    keys = jax.random.split(rng_key, max(a.shape[0], 1))[: a.shape[0]]
    times, states, num, over = jax.vmap(lambda kk, aa, bb, ll: _one_bridge(kk, q, ll, aa, bb, max_jumps))(keys, a, b, ell)
    unflat = lambda x: x.reshape(shape + x.shape[1:])
    return JumpPath(unflat(a.astype(jnp.int32)), unflat(times + t0[:, None]), unflat(states), unflat(num), unflat(over),
                    unflat(t0), unflat(t0 + ell))


def path_state_at(path: JumpPath, t) -> jax.Array:
    r"""The state of a padded path at times ``t`` (``t`` broadcast against the path's batch shape plus
    trailing query axes: ``t`` ``(..., Q)`` against a path of batch shape ``(...)``).

    Examples:
        >>> import jax.numpy as jnp
        >>> path = JumpPath(jnp.array(0), jnp.array([0.5, 1.2, 2.0]), jnp.array([1, 0, 0]), jnp.array(2),
        ...                 jnp.array(False), jnp.array(0.0), jnp.array(2.0))
        >>> path_state_at(path, jnp.array([0.1, 0.7, 1.5])).tolist()
        [0, 1, 0]
    """
    t = jnp.asarray(t)
    idx = jnp.sum(path.times[..., None, :] <= t[..., :, None], -1)  # number of slots at or before t
    idx = jnp.minimum(idx, path.num_jumps[..., None])
    states = jnp.concatenate([path.initial_state[..., None], path.states], -1)
    return jnp.take_along_axis(jnp.broadcast_to(states, idx.shape[:-1] + states.shape[-1:]), idx, -1)


def occupation_times(path: JumpPath, num_states: int) -> jax.Array:
    r"""Time spent in each state, ``(..., K)``; sums to $t_1 - t_0$.

    Examples:
        >>> import jax.numpy as jnp
        >>> path = JumpPath(jnp.array(0), jnp.array([0.5, 1.2, 2.0]), jnp.array([1, 0, 0]), jnp.array(2),
        ...                 jnp.array(False), jnp.array(0.0), jnp.array(2.0))
        >>> occupation_times(path, 2).round(6).tolist()
        [1.3, 0.7]
    """
    starts = jnp.concatenate([path.start[..., None], path.times], -1)
    ends = jnp.concatenate([path.times, path.end[..., None]], -1)
    states = jnp.concatenate([path.initial_state[..., None], path.states], -1)
    return jnp.sum(jax.nn.one_hot(states, num_states, dtype=starts.dtype) * (ends - starts)[..., None], -2)


def transition_counts(path: JumpPath, num_states: int) -> jax.Array:
    r"""Number of jumps $i \to j$, ``(..., K, K)`` (zero diagonal); with the occupation times these are the
    sufficient statistics of the generator (the complete-data log-likelihood is
    $\sum_{i \ne j} N_{ij} \log Q_{ij} + \sum_i Q_{ii} T_i$).

    Examples:
        >>> import jax.numpy as jnp
        >>> path = JumpPath(jnp.array(0), jnp.array([0.5, 1.2, 2.0]), jnp.array([1, 0, 0]), jnp.array(2),
        ...                 jnp.array(False), jnp.array(0.0), jnp.array(2.0))
        >>> transition_counts(path, 2).tolist()
        [[0, 1], [1, 0]]
    """
    states = jnp.concatenate([path.initial_state[..., None], path.states], -1)
    real = jnp.arange(path.states.shape[-1]) < path.num_jumps[..., None]
    src = jax.nn.one_hot(states[..., :-1], num_states, dtype=jnp.int32) * real[..., None]
    dst = jax.nn.one_hot(states[..., 1:], num_states, dtype=jnp.int32)
    return jnp.einsum("...ni,...nj->...ij", src, dst)
