r"""Permutation-invariant parameter estimates for block conformal prediction.

The block test is exact only if the score sees the data through statistics that every block
permutation leaves unchanged. Here the estimates are functions of

* the transition counts $C[i, j] = \#\{t : x_t = i, x_{t+1} = j\}$, and
* per-state sums of a sufficient statistic, $S_k = \sum_{t : x_t = k} s(y_t)$,

of the whole augmented sequence (calibration data and candidate), which block permutations keep
(they keep the start state, all transitions and every state–observation pair). Emission families
are therefore described by the statistic $s$ and a map from $(S_k)_k$ to a NumPyro distribution
batched over states; nothing else is offered, because anything else voids the guarantee.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

__all__ = [
    "EmissionFamily",
    "categorical_emission",
    "normal_emission",
    "poisson_emission",
    "transition_counts",
    "estimate_transition_matrix",
    "state_statistics",
]


@dataclass(frozen=True)
class EmissionFamily:
    r"""An emission law estimated from per-state sums of a sufficient statistic.

    Attributes:
        name: short name (used in messages).
        statistics: $y \mapsto s(y)$, maps observations ``(*shape, *event)`` to ``(*shape, d)``.
        build: $(S, S_\text{all}) \mapsto$ emission, where $S$ ``(K, d)`` holds the per-state sums and
            $S_\text{all} = \sum_k S_k$ ``(d,)``; returns a NumPyro distribution with batch shape
            ``(K,)`` (rightmost batch axis = state), as [`HMM`][markovppl.families.hmm.HMM] expects.
        discrete: whether observations are symbols (needed for ``blocks="pair"``).
        event_ndim: number of event dimensions of one observation.
        num_symbols: for symbol observations, the alphabet size (observations outside
            ``range(num_symbols)`` are rejected); ``None`` otherwise.

    Examples:
        >>> import jax.numpy as jnp, numpyro.distributions as dist
        >>> def build(s, s_all):           # exponential waiting times, rate = (count + 1) / (sum + mean)
        ...     mean = s_all[1] / s_all[0]
        ...     return dist.Exponential((s[:, 0] + 1.0) / (s[:, 1] + mean))
        >>> fam = EmissionFamily("exponential", lambda y: jnp.stack([jnp.ones_like(y), y], -1), build)
        >>> x, y = jnp.array([0, 0, 1]), jnp.array([1.0, 3.0, 0.5])
        >>> fam.estimate(x, y, jnp.ones(3, bool), 2).batch_shape
        (2,)
    """

    name: str
    statistics: Callable
    build: Callable
    discrete: bool = False
    event_ndim: int = 0
    num_symbols: int | None = None

    def estimate(self, states, obs, valid, num_states: int) -> dist.Distribution:
        """Emission law estimated from the valid positions of ``(states, obs)``.

        Examples:
            >>> import jax.numpy as jnp
            >>> d = categorical_emission(2).estimate(jnp.array([0, 1]), jnp.array([1, 1]), jnp.array([True, False]), 2)
            >>> d.probs.round(4).tolist()             # state 1's observation is padding: ignored
            [[0.3333, 0.6667], [0.5, 0.5]]
        """
        s = state_statistics(self.statistics(obs), states, valid, num_states)
        return self.build(s, s.sum(0))

    def check(self, obs, name: str) -> None:
        """Clear errors for observations this family cannot take (eager arrays only).

        Examples:
            >>> import numpy as np
            >>> categorical_emission(2).check(np.array([0, 2]), "Y")
            Traceback (most recent call last):
            ...
            ValueError: Y has unknown symbols [2] (the categorical emission takes 0..1)
        """
        obs = np.asarray(obs)
        if self.discrete:
            if not (np.issubdtype(obs.dtype, np.integer) or np.all(np.mod(obs, 1) == 0)):
                raise ValueError(f"{name} must hold integer symbols for the {self.name} emission")
            if obs.size and (obs.min() < 0 or (self.num_symbols is not None and obs.max() >= self.num_symbols)):
                bad = obs[(obs < 0) | (obs >= (self.num_symbols or np.inf))]
                raise ValueError(
                    f"{name} has unknown symbols {sorted(set(bad.tolist()))[:5]} "
                    f"(the {self.name} emission takes 0..{(self.num_symbols or 0) - 1})"
                )
        elif not np.all(np.isfinite(obs)):
            raise ValueError(f"{name} contains NaN or infinite values (missing observations are not supported here)")


def state_statistics(stats, states, valid, num_states: int) -> jax.Array:
    r"""Per-state sums $S_k = \sum_{t: x_t = k, \text{valid}_t} s_t$, ``(K, d)``.

    Examples:
        >>> import jax.numpy as jnp
        >>> state_statistics(jnp.array([[1.0], [2.0], [4.0]]), jnp.array([0, 1, 0]), jnp.ones(3, bool), 2).tolist()
        [[5.0], [2.0]]
    """
    stats = jnp.asarray(stats)
    w = jnp.asarray(valid, stats.dtype)[:, None]
    return jax.ops.segment_sum(stats * w, jnp.asarray(states), num_segments=num_states)


def transition_counts(states, length, num_states: int) -> jax.Array:
    r"""Transition counts $C[i, j]$ of ``states[:length]``, ``(K, K)`` (int).

    Examples:
        >>> import jax.numpy as jnp
        >>> transition_counts(jnp.array([0, 0, 1, 0, 1, 1]), 5, 2).tolist()   # the last entry is padding
        [[1, 2], [1, 0]]
    """
    states = jnp.asarray(states)
    k = num_states
    ok = jnp.arange(states.shape[-1] - 1) < length - 1
    flat = states[:-1] * k + states[1:]
    return jax.ops.segment_sum(ok.astype(jnp.int32), flat, num_segments=k * k).reshape(k, k)


def estimate_transition_matrix(counts, pseudo_count: float = 1.0) -> jax.Array:
    r"""$\hat P[i, j] = (C[i, j] + a) / (\sum_l C[i, l] + K a)$, ``(K, K)``.

    The pseudo-count $a > 0$ keeps rows of unvisited states defined.

    Examples:
        >>> import jax.numpy as jnp
        >>> estimate_transition_matrix(jnp.array([[1, 2], [0, 0]]), 1.0).tolist()
        [[0.4, 0.6], [0.5, 0.5]]
    """
    c = jnp.asarray(counts, jnp.result_type(float)) + pseudo_count
    return c / c.sum(-1, keepdims=True)


def categorical_emission(num_symbols: int, pseudo_count: float = 1.0) -> EmissionFamily:
    r"""Symbols $y \in \{0, \dots, V-1\}$: $\hat B[k, v] = (n_{kv} + a) / (n_k + V a)$.

    Examples:
        >>> import jax.numpy as jnp
        >>> fam = categorical_emission(3)
        >>> fam.estimate(jnp.array([0, 0, 1]), jnp.array([2, 2, 0]), jnp.ones(3, bool), 2).probs.tolist()
        [[0.2, 0.2, 0.6], [0.5, 0.25, 0.25]]
    """
    if int(num_symbols) < 1:
        raise ValueError(f"num_symbols must be >= 1, got {num_symbols}")
    if not pseudo_count > 0:
        raise ValueError(f"pseudo_count must be > 0, got {pseudo_count}")
    v = int(num_symbols)

    def statistics(y):
        return jax.nn.one_hot(jnp.asarray(y), v, dtype=jnp.result_type(float))

    def build(s, s_all):
        c = s + pseudo_count
        return dist.Categorical(probs=c / c.sum(-1, keepdims=True))

    return EmissionFamily("categorical", statistics, build, discrete=True, num_symbols=v)


def normal_emission(prior_weight: float = 1.0, min_scale: float = 1e-6) -> EmissionFamily:
    r"""Gaussian $y \mid x = k \sim N(\mu_k, \sigma_k^2)$ from per-state counts, sums and sums of squares.

    Each state's moments are shrunk towards the pooled ones with weight $w$ (a pseudo-sample):
    $\mu_k = (\Sigma_k + w \bar y)/(n_k + w)$, $\sigma_k^2 = (\Sigma^{(2)}_k + w\, \overline{y^2})/(n_k + w)
    - \mu_k^2$ — the variance of a mixture of the state's observations and the pooled law, hence
    positive whenever the data are not all equal; ``min_scale`` guards that case.

    Examples:
        >>> import jax.numpy as jnp
        >>> fam = normal_emission(prior_weight=1e-9)
        >>> d = fam.estimate(jnp.array([0, 0, 1, 1]), jnp.array([1.0, 3.0, 10.0, 12.0]), jnp.ones(4, bool), 2)
        >>> d.loc.round(6).tolist(), d.scale.round(6).tolist()
        ([2.0, 11.0], [1.0, 1.0])
    """
    if not prior_weight > 0:
        raise ValueError(f"prior_weight must be > 0, got {prior_weight}")

    def statistics(y):
        y = jnp.asarray(y, jnp.result_type(float))
        return jnp.stack([jnp.ones_like(y), y, y * y], -1)

    def build(s, s_all):
        n_all = jnp.maximum(s_all[0], 1.0)
        mean_all, m2_all = s_all[1] / n_all, s_all[2] / n_all
        n = s[:, 0] + prior_weight
        mean = (s[:, 1] + prior_weight * mean_all) / n
        var = (s[:, 2] + prior_weight * m2_all) / n - mean**2
        return dist.Normal(mean, jnp.sqrt(jnp.maximum(var, min_scale**2)))

    return EmissionFamily("normal", statistics, build)


def poisson_emission(prior_weight: float = 1.0) -> EmissionFamily:
    r"""Counts $y \mid x = k \sim \text{Poisson}(\lambda_k)$, $\lambda_k = (\Sigma_k + w \bar y) / (n_k + w)$.

    Examples:
        >>> import jax.numpy as jnp
        >>> fam = poisson_emission(prior_weight=1.0)
        >>> fam.estimate(jnp.array([0, 0, 1]), jnp.array([2, 4, 9]), jnp.ones(3, bool), 2).rate.round(4).tolist()
        [3.6667, 7.0]
    """
    if not prior_weight > 0:
        raise ValueError(f"prior_weight must be > 0, got {prior_weight}")

    def statistics(y):
        y = jnp.asarray(y, jnp.result_type(float))
        return jnp.stack([jnp.ones_like(y), y], -1)

    def build(s, s_all):
        mean_all = s_all[1] / jnp.maximum(s_all[0], 1.0)
        return dist.Poisson((s[:, 1] + prior_weight * mean_all) / (s[:, 0] + prior_weight))

    return EmissionFamily("poisson", statistics, build, discrete=True)
