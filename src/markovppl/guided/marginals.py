r"""Smoothing marginals as the forward push of the guided (posterior) chain.

Because the guided chain with exact messages *is* the posterior chain, its one-step marginals are the
smoothing marginals: $m_0 \propto \pi_0 h_0$, $m_t = m_{t-1} \kappa^\circ_{t-1}$. No forward filter is
needed.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .. import _linalg as la
from ..kernels.time import is_time_varying, split_time
from ..messages import gaussian as gm

__all__ = ["CategoricalMarginals", "GaussianMarginals", "categorical_marginals", "gaussian_marginals"]


class CategoricalMarginals(NamedTuple):
    r"""Smoothing marginals of a finite-state chain, time on the leading axis.

    Attributes:
        probs: $p(x_t \mid y)$, ``(T, ..., K)``.
        pairwise: $p(x_t, x_{t+1} \mid y)$, ``(T-1, ..., K, K)``.

    Made by [`categorical_marginals`][markovppl.guided.marginals.categorical_marginals] (its example shows one in use).

    Examples:
        >>> CategoricalMarginals._fields
        ('probs', 'pairwise')
    """

    probs: jax.Array
    pairwise: jax.Array


class GaussianMarginals(NamedTuple):
    r"""Smoothing moments of a linear-Gaussian chain, time on the leading axis.

    Attributes:
        means: $E[x_t \mid y]$, ``(T, ..., d)``.
        covs: $\mathrm{Cov}(x_t \mid y)$, ``(T, ..., d, d)``.
        cross_covs: $\mathrm{Cov}(x_t, x_{t+1} \mid y)$, ``(T-1, ..., d, d)``.

    Made by [`gaussian_marginals`][markovppl.guided.marginals.gaussian_marginals] (its example shows one in use).

    Examples:
        >>> GaussianMarginals._fields
        ('means', 'covs', 'cross_covs')
    """

    means: jax.Array
    covs: jax.Array
    cross_covs: jax.Array


def categorical_marginals(initial, transition, messages) -> CategoricalMarginals:
    r"""Smoothing marginals of a finite-state chain from its backward messages.

    $m_0 \propto \pi_0 h_0$ and $p(x_t, x_{t+1} \mid y) = m_t(x_t)\, P^\circ_t[x_t, x_{t+1}]$ with the guided
    transition $P^\circ_t[x, x'] \propto P_t[x, x'] h_{t+1}(x')$; $m_{t+1}$ is its column sum.

    Examples:
        >>> import jax.numpy as jnp
        >>> from markovppl.backward import backward_filter
        >>> from markovppl.kernels import Categorical
        >>> from markovppl.kernels.initial import CategoricalLaw
        >>> from markovppl.messages import categorical_message
        >>> law, kernel = CategoricalLaw(jnp.log(jnp.array([0.5, 0.5]))), Categorical(jnp.array([[0.9, 0.1], [0.1, 0.9]]))
        >>> leaves = categorical_message(jnp.log(jnp.array([[0.9, 0.1], [0.5, 0.5], [0.1, 0.9]])))
        >>> m = categorical_marginals(law, kernel, backward_filter(law, kernel, leaves).messages)
        >>> m.probs.round(3).tolist()
        [[0.744, 0.256], [0.5, 0.5], [0.256, 0.744]]
    """
    probs, ratios = guided_push(jnp.exp(initial.log_probs), transition, messages)
    p = transition.transition_matrix
    if is_time_varying(p):  # (T-1, K, K): batch axes sit between time and the states
        p = p.value.reshape(p.value.shape[:1] + (1,) * (ratios.ndim - p.value.ndim + 1) + p.value.shape[1:])
    h_next = jnp.exp(messages.log_h[1:])
    pairwise = ratios[..., :, None] * p * h_next[..., None, :]
    return CategoricalMarginals(probs, pairwise)


def guided_push(initial_probs, transition, messages):
    r"""Forward push of the guided finite-state chain in probability space.

    Returns the marginals $m_t$ ``(T, ..., K)`` and the ratios $r_t(i) = m_t(i) / (P_t h_{t+1})(i)$
    ``(T-1, ..., K)``, from which the pairwise marginals $r_t(i) P_t(i, j) h_{t+1}(j)$ and the
    derivative of the evidence in $P_t$, $r_t(i) h_{t+1}(j)$, follow without another loop. One
    matrix-vector product per step; ``messages.log_h`` is normalised to max 0, so $h \le 1$.
    """
    xs, kernel_at = split_time(transition)
    h = jnp.exp(messages.log_h)
    m0 = initial_probs * h[0]
    m0 = m0 / jnp.sum(m0, -1, keepdims=True)

    def _step(m_prev, inputs):
        h_t, xs_t = inputs
        p = kernel_at(xs_t).transition_matrix
        ratio = m_prev / jnp.sum(p * h_t[..., None, :], -1)
        m_t = jnp.sum(ratio[..., :, None] * p, -2) * h_t
        return m_t, (m_t, ratio)

    _, (rest, ratios) = jax.lax.scan(_step, m0, (h[1:], xs))
    return jnp.concatenate([m0[None], rest], 0), ratios


def gaussian_marginals(initial, transition, messages) -> GaussianMarginals:
    r"""Smoothing moments of a linear-Gaussian chain: $x_t = G_t x_{t-1} + g_t + N(0, K_t)$ under the posterior.

    Examples:
        >>> import jax.numpy as jnp
        >>> from markovppl.backward import backward_filter, leaf
        >>> from markovppl.kernels import LinearGaussian
        >>> from markovppl.kernels.initial import GaussianLaw
        >>> law = GaussianLaw(jnp.zeros(1), jnp.eye(1))
        >>> walk = LinearGaussian(jnp.eye(1), jnp.zeros(1), 0.5 * jnp.eye(1))      # x_{t+1} = x_t + N(0, 0.5)
        >>> obs = LinearGaussian(jnp.eye(1), jnp.zeros(1), jnp.eye(1))             # y_t = x_t + N(0, 1)
        >>> y = jnp.array([[0.2], [0.9], [1.1]])
        >>> back = backward_filter(law, walk, leaf(obs, y, jnp.zeros((3, 1), bool)))
        >>> m = gaussian_marginals(law, walk, back.messages)
        >>> m.means[:, 0].round(3).tolist()          # the Kalman smoother's means, without a forward filter
        [0.375, 0.65, 0.8]
    """
    xs, kernel_at = split_time(transition)
    first = jax.tree.map(lambda m: m[0], messages)
    c0 = gm.condition(first, initial.mean, initial.cov_sqrt)

    def _step(carry, inputs):
        mean_prev, cov_prev = carry
        h_t, xs_t = inputs
        k = kernel_at(xs_t)
        if k.cov_sqrt is None:
            k = k.prepared()
        # guided kernel: y = (I - K H)(A x + b) + K F + N(0, K)
        zero = jnp.zeros_like(k.b)
        cond0 = gm.condition(h_t, jnp.broadcast_to(zero, mean_prev.shape), k.cov_sqrt)
        tilt = jnp.eye(k.b.shape[-1], dtype=k.b.dtype) - la.matmul(cond0.cov, h_t.H)
        g = la.matmul(tilt, k.A)
        mean = la.matvec(g, mean_prev) + la.matvec(tilt, k.b) + cond0.mean
        cross = la.matmul(cov_prev, jnp.swapaxes(g, -1, -2))
        cov = la.symmetrize(la.matmul(g, cross) + cond0.cov)
        return (mean, cov), (mean, cov, cross)

    _, (means, covs, cross) = jax.lax.scan(_step, (c0.mean, c0.cov), (jax.tree.map(lambda m: m[1:], messages), xs))
    return GaussianMarginals(
        jnp.concatenate([c0.mean[None], means], 0), jnp.concatenate([c0.cov[None], covs], 0), cross
    )
