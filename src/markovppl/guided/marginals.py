r"""Smoothing marginals as the forward push of the guided (posterior) chain.

Because the guided chain with exact messages *is* the posterior chain, its one-step marginals are the
smoothing marginals: $m_0 \propto \pi_0 h_0$, $m_t = m_{t-1} \kappa^\circ_{t-1}$. No forward filter is
needed.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from .. import _linalg as la
from ..kernels.time import split_time
from ..messages import gaussian as gm

__all__ = ["CategoricalMarginals", "GaussianMarginals", "categorical_marginals", "gaussian_marginals"]


class CategoricalMarginals(NamedTuple):
    r"""Smoothing marginals of a finite-state chain, time on the leading axis.

    Attributes:
        probs: $p(x_t \mid y)$, ``(T, ..., K)``.
        pairwise: $p(x_t, x_{t+1} \mid y)$, ``(T-1, ..., K, K)``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from markovppl.backward import backward_filter
        >>> from markovppl.kernels import Categorical
        >>> from markovppl.kernels.initial import CategoricalLaw
        >>> from markovppl.messages import categorical_message
        >>> law, kernel = CategoricalLaw(jnp.log(jnp.array([0.5, 0.5]))), Categorical(jnp.array([[0.9, 0.1], [0.1, 0.9]]))
        >>> leaves = categorical_message(jnp.log(jnp.array([[0.9, 0.1], [0.5, 0.5], [0.1, 0.9]])))
        >>> m = categorical_marginals(law, kernel, backward_filter(law, kernel, leaves).messages)
        >>> m.probs.shape, m.pairwise.shape
        ((3, 2), (2, 2, 2))
        >>> bool(jnp.allclose(m.pairwise.sum(-1), m.probs[:-1]))        # pairwise marginals are consistent
        True
    """

    probs: jax.Array
    pairwise: jax.Array


class GaussianMarginals(NamedTuple):
    r"""Smoothing moments of a linear-Gaussian chain, time on the leading axis.

    Attributes:
        means: $E[x_t \mid y]$, ``(T, ..., d)``.
        covs: $\mathrm{Cov}(x_t \mid y)$, ``(T, ..., d, d)``.
        cross_covs: $\mathrm{Cov}(x_t, x_{t+1} \mid y)$, ``(T-1, ..., d, d)``.

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
        >>> m.means.shape, m.covs.shape, m.cross_covs.shape
        ((3, 1), (3, 1, 1), (2, 1, 1))
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
    xs, kernel_at = split_time(transition)
    log_m0 = initial.log_probs + messages.log_h[0]
    m0 = jnp.exp(log_m0 - logsumexp(log_m0, -1, keepdims=True))

    def _step(m_prev, inputs):
        log_h, xs_t = inputs
        joint = jnp.log(kernel_at(xs_t).transition_matrix) + log_h[..., None, :]
        guided = jnp.exp(joint - logsumexp(joint, -1, keepdims=True))
        pair = m_prev[..., :, None] * guided
        return pair.sum(-2), (pair.sum(-2), pair)

    _, (probs, pairs) = jax.lax.scan(_step, m0, (messages.log_h[1:], xs))
    return CategoricalMarginals(jnp.concatenate([m0[None], probs], 0), pairs)


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
