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
    r"""Attributes: ``probs`` $p(x_t \mid y)$ ``(T, ..., K)``; ``pairwise`` $p(x_t, x_{t+1} \mid y)$ ``(T-1, ..., K, K)``."""

    probs: jax.Array
    pairwise: jax.Array


class GaussianMarginals(NamedTuple):
    r"""Attributes: ``means`` ``(T, ..., d)``; ``covs`` ``(T, ..., d, d)``; ``cross_covs``
    $\mathrm{Cov}(x_t, x_{t+1} \mid y)$ ``(T-1, ..., d, d)``."""

    means: jax.Array
    covs: jax.Array
    cross_covs: jax.Array


def categorical_marginals(initial, transition, messages) -> CategoricalMarginals:
    """Smoothing marginals of a finite-state chain from its backward messages."""
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
    r"""Smoothing moments of a linear-Gaussian chain: $x_t = G_t x_{t-1} + g_t + N(0, K_t)$ under the posterior."""
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
