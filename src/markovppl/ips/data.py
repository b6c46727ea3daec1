r"""Observations of a contact process and the frozen infected-neighbour counts of the auxiliary.

At observation times $t_1 < \dots < t_m$ (steps in $0..T$) some individuals are observed through an
emission matrix $E[x, y] = p(y \mid x)$ ($E = I$: the state itself, a hard observation). Missing entries
are coded ``-1``. The observations enter the backward filter as the leaf factors
$g_{t,i}(x) = E[x, y_{t,i}]$ (and $g \equiv 1$ at unobserved individuals and times).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import _validation as v
from .model import NUM_STATES, ContactGraph, I

__all__ = ["Observations", "observations", "observation_log_lik", "frozen_counts"]


class Observations(NamedTuple):
    r"""Observed states at some steps.

    Attributes:
        times: ``(m,)`` int32, strictly increasing steps in $0..T$.
        states: ``(m, n)`` int32 observation codes in $0..M-1$, ``-1`` for missing.
        emission: ``(3, M)`` row-stochastic $E[x, y] = p(y \mid x)$.
        log_lik: ``(T+1, n, 3)`` dense leaf factors $\log g_{t,i}(x)$ (0 where nothing is observed).

    The number of steps $T$ is ``log_lik.shape[0] - 1`` (static under ``jit``). Build with
    [`observations`][markovppl.ips.data.observations], which validates.

    Examples:
        >>> obs = observations([0, 2], [[0, -1], [1, 1]], num_steps=3)
        >>> obs.log_lik.shape, obs.log_lik[2, 0].tolist()
        ((4, 2, 3), [-inf, 0.0, -inf])
    """

    times: jax.Array
    states: jax.Array
    emission: jax.Array
    log_lik: jax.Array

    @property
    def num_steps(self) -> int:
        return self.log_lik.shape[0] - 1


def observation_log_lik(times, states, emission, num_steps: int) -> jax.Array:
    r"""Dense leaf factors ``(T+1, n, 3)``: $\log E[x, y_{t,i}]$ at observed entries, 0 elsewhere (traceable).

    Examples:
        >>> import jax.numpy as jnp
        >>> E = jnp.array([[0.8, 0.2], [0.1, 0.9], [0.8, 0.2]])       # infected or not, with errors
        >>> observation_log_lik(jnp.array([1]), jnp.array([[1]]), E, 2)[1, 0].round(4).tolist()
        [-1.6094, -0.1054, -1.6094]
    """
    states = jnp.asarray(states)
    log_e = jnp.log(jnp.asarray(emission))
    cols = jnp.swapaxes(log_e, 0, 1)[jnp.clip(states, 0, None)]  # (m, n, 3)
    cols = jnp.where((states < 0)[..., None], 0.0, cols)
    dense = jnp.zeros((num_steps + 1,) + cols.shape[1:], cols.dtype)
    return dense.at[jnp.asarray(times)].set(cols)


def observations(times, states, num_steps: int, emission=None, *, dtype=None) -> Observations:
    r"""Validate and compile observations of a contact process.

    Args:
        times: ``(m,)`` strictly increasing integer steps in $0..T$.
        states: ``(m, n)`` integer codes (``-1`` = missing); with the default emission the codes are the
            states ``S = 0, I = 1, R = 2``.
        num_steps: $T$, the number of transitions (the path is $x_{0:T}$).
        emission: ``(3, M)`` row-stochastic matrix (default: the identity, exact observations).
        dtype: float type of the leaf factors (default: that of ``emission``, or float64 under x64).

    Raises:
        ValueError: empty or unsorted or out-of-range times, a shape mismatch, codes outside
            $\{-1, 0, \dots, M-1\}$, a non-stochastic emission matrix, or a code that no state can emit.

    Examples:
        >>> try:
        ...     observations([3, 1], [[0], [1]], num_steps=5)
        ... except ValueError as err:
        ...     print(err)
        times must be strictly increasing
    """
    if emission is None:
        emission = np.eye(NUM_STATES)
    e = np.asarray(emission, dtype=float)
    if e.ndim != 2 or e.shape[0] != NUM_STATES:
        raise ValueError(f"emission must have shape (3, M), got {e.shape}")
    v.check_stochastic("emission", e)
    if np.any(e.sum(0) <= 0):
        raise ValueError("emission has a column of zeros: that observation code is impossible under every state")
    t = np.asarray(times)
    y = np.asarray(states)
    if int(num_steps) != num_steps or num_steps < 0:
        raise ValueError(f"num_steps must be a non-negative integer, got {num_steps}")
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"times must be a non-empty 1-d array of steps, got shape {t.shape}")
    if not np.issubdtype(t.dtype, np.integer):
        if not np.all(np.mod(t, 1) == 0):
            raise ValueError("times must be integer steps")
        t = t.astype(np.int64)
    if np.any(np.diff(t) <= 0):
        raise ValueError("times must be strictly increasing")
    if t[0] < 0 or t[-1] > num_steps:
        raise ValueError(f"times must lie in [0, num_steps={num_steps}], got range [{t[0]}, {t[-1]}]")
    if y.ndim != 2 or y.shape[0] != t.size:
        raise ValueError(f"states must have shape (len(times), n) = ({t.size}, n), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.mod(y, 1) == 0):
            raise ValueError("states must be integer codes (-1 for missing)")
        y = y.astype(np.int64)
    if np.any((y < -1) | (y >= e.shape[1])):
        bad = y[(y < -1) | (y >= e.shape[1])][:5].tolist()
        raise ValueError(f"states must be codes in -1..{e.shape[1] - 1} (-1 = missing), got {bad}")
    dtype = dtype or (jnp.asarray(emission).dtype if hasattr(emission, "dtype") else jnp.result_type(float))
    e_j = jnp.asarray(e, dtype)
    t_j, y_j = jnp.asarray(t, jnp.int32), jnp.asarray(y, jnp.int32)
    return Observations(t_j, y_j, e_j, observation_log_lik(t_j, y_j, e_j, int(num_steps)))


def frozen_counts(graph: ContactGraph, obs: Observations) -> jax.Array:
    r"""Default infected-neighbour counts $\tilde N_{t,i}$ ``(T, n)`` of the factorised auxiliary.

    At each observation time the count is the *soft* number of infected neighbours,
    $\sum_{j \sim i} E[I, y_{t,j}] / \sum_x E[x, y_{t,j}]$ (the probability of I under a uniform prior
    and the observation alone, so an observed I counts 1, an observed S or R counts 0 for exact
    observations, and a missing neighbour counts 1/3). Between observation times the counts are
    interpolated linearly and held constant before the first and after the last observation.

    This is a deterministic function of the observations (and of the emission matrix), **never of the
    chain state**: the auxiliary kernel is fixed before any path is drawn, so the guided
    importance weights are exact and the pCN target of [`log_weight`][markovppl.ips.guided.log_weight]
    is a fixed function of $(\theta, z)$. Pass your own ``(T, n)`` counts to the guided functions to
    use another deterministic guess.

    Examples:
        >>> import networkx as nx
        >>> from markovppl.ips.model import contact_graph
        >>> obs = observations([0, 4], [[1, 0, 1], [0, 0, 0]], num_steps=4)
        >>> frozen_counts(contact_graph(nx.path_graph(3)), obs)[:, 1].tolist()   # 2 infected neighbours, then 0
        [2.0, 1.5, 1.0, 0.5]
    """
    e = obs.emission
    p_infected = e[I] / jnp.sum(e, axis=0)  # (M,)
    p_obs = jnp.where(obs.states < 0, 1.0 / NUM_STATES, p_infected[jnp.clip(obs.states, 0, None)])  # (m, n)
    nbr = p_obs[:, graph.neighbours] * graph.mask  # (m, n, D)
    at_obs = jnp.sum(nbr, axis=-1)  # (m, n)
    grid = jnp.arange(obs.num_steps, dtype=at_obs.dtype)
    tt = obs.times.astype(at_obs.dtype)
    return jax.vmap(lambda c: jnp.interp(grid, tt, c), in_axes=1, out_axes=1)(at_obs)
