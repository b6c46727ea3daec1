r"""Nonconformity scores of a window $(x_0, y_0), \dots, (x_H, y_H)$ for block conformal prediction.

The score of the final window of a sequence ranks the candidate against the windows that block
permutations bring to the end. It may use the window and the permutation-invariant parameter
estimates only. The built-in scores follow Nettasinghe et al. (2023): condition on the window's
first state $x_0$ (so $x_1$ has law $\hat P[x_0, \cdot]$), run the HMM on $y_{1:H}$ under
$(\hat P, \hat e)$ and add up how improbable the window's states are,

$$S = \sum_{t=1}^{H} \bigl(1 - \hat\pi_t(x_t)\bigr),$$

with $\hat\pi_t$ the filtering marginal $p(x_t \mid x_0, y_{1:t})$ (``filter_score``) or the smoothing
marginal $p(x_t \mid x_0, y_{1:H})$ (``smoother_score``). Both reuse [`HMM`][markovppl.families.hmm.HMM]. Large
scores mean "nonconforming".

A user score is any function with the same signature
``score(window_states (H+1,), window_obs (H+1, *event), transition_matrix (K, K), emission) -> scalar``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..families import HMM

__all__ = ["filter_score", "smoother_score"]


def _window_hmm(window_states, transition_matrix, emission) -> HMM:
    p = jnp.asarray(transition_matrix)
    return HMM(p[window_states[0]], p, emission)


def _score(probs, window_states):
    hit = jnp.take_along_axis(probs, window_states[1:, None], -1)[:, 0]
    return jnp.sum(1.0 - hit)


def filter_score(window_states, window_obs, transition_matrix, emission) -> jax.Array:
    r"""$\sum_{t=1}^{H} (1 - p(x_t \mid x_0, y_{1:t}))$ under $(\hat P, \hat e)$, a scalar.

    Args:
        window_states: ``(H + 1,)`` int, $x_{0:H}$.
        window_obs: ``(H + 1, *event)``, $y_{0:H}$ ($y_0$ is not used: $x_0$ is given).
        transition_matrix: $\hat P$ ``(K, K)``.
        emission: NumPyro distribution batched over the $K$ states.

    Examples:
        >>> import jax.numpy as jnp, numpyro.distributions as dist
        >>> P = jnp.array([[0.9, 0.1], [0.1, 0.9]])
        >>> e = dist.Categorical(probs=jnp.array([[0.8, 0.2], [0.2, 0.8]]))
        >>> # p(x_1 = 0 | x_0 = 0, y_1 = 0) = 0.9*0.8 / (0.9*0.8 + 0.1*0.2) = 0.973
        >>> round(float(filter_score(jnp.array([0, 0]), jnp.array([1, 0]), P, e)), 4)
        0.027
    """
    probs = _window_hmm(window_states, transition_matrix, emission).filter(window_obs[1:]).filtered_probs
    return _score(probs, window_states)


def smoother_score(window_states, window_obs, transition_matrix, emission) -> jax.Array:
    r"""$\sum_{t=1}^{H} (1 - p(x_t \mid x_0, y_{1:H}))$ under $(\hat P, \hat e)$, a scalar.

    Same arguments as [`filter_score`][markovppl.conformal.scores.filter_score]; equal to it when $H = 1$.

    Examples:
        >>> import jax.numpy as jnp, numpyro.distributions as dist
        >>> P = jnp.array([[0.9, 0.1], [0.1, 0.9]])
        >>> e = dist.Categorical(probs=jnp.array([[0.8, 0.2], [0.2, 0.8]]))
        >>> x, y = jnp.array([0, 1]), jnp.array([0, 1])
        >>> bool(jnp.isclose(smoother_score(x, y, P, e), filter_score(x, y, P, e)))   # H = 1
        True
    """
    probs = _window_hmm(window_states, transition_matrix, emission).smooth(window_obs[1:]).smoothed_probs
    return _score(probs, window_states)
