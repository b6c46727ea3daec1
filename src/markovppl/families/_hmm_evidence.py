r"""HMM log-evidence with its derivative given by the smoothing distribution (Fisher's identity).

For $\log Z = \log \sum_{x} \pi(x_0) \prod_t e^{\ell_t(x_t)} \prod_t P_t(x_t, x_{t+1})$,

$$\frac{\partial \log Z}{\partial \ell_t(k)} = p(x_t = k \mid y),\qquad
  \frac{\partial \log Z}{\partial P_t(i, j)} = \frac{p(x_t = i \mid y)\, h_{t+1}(j)}{(P_t h_{t+1})(i)},\qquad
  \frac{\partial \log Z}{\partial \pi(i)} = \frac{h_0(i)}{\sum_k \pi(k) h_0(k)},$$

with $h_t$ the backward messages. The rule is a ``custom_jvp`` whose tangent is linear in the input
tangents, so forward mode, reverse mode (JAX transposes it) and ``vmap`` all work. Reverse mode then
costs one backward filter plus one forward pass over stored messages, instead of differentiating
through the scan.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..backward import backward_filter
from ..kernels.finite import Categorical
from ..kernels.initial import CategoricalLaw
from ..guided.marginals import guided_push
from ..kernels.time import is_time_varying
from ..messages import categorical as cm

__all__ = ["hmm_log_evidence"]


def _filter(initial_probs, transition_matrix, log_lik, store_messages):
    return backward_filter(CategoricalLaw(jnp.log(initial_probs)), Categorical(transition_matrix), cm.normalize(log_lik),
                           store_messages=store_messages)


@jax.custom_jvp
def hmm_log_evidence(initial_probs, transition_matrix, log_lik):
    r"""$\log Z$ for ``initial_probs`` ``(..., K)``, ``transition_matrix`` ``(..., K, K)`` (or
    time-varying with ``T - 1`` steps) and per-step log-likelihoods ``log_lik`` ``(T, ..., K)``."""
    return _filter(initial_probs, transition_matrix, log_lik, False).log_evidence


def _sensitivities(initial_probs, transition_matrix, messages):
    """Smoothing marginals ``(T, ..., K)``, the transition sensitivities $r_t(i) h_{t+1}(j)$ (summed
    over time when the transition is homogeneous, else ``(T-1, ..., K, K)``) and the initial-law
    sensitivity, from one forward push of the guided chain."""
    marginals, ratios = guided_push(initial_probs, Categorical(transition_matrix), messages)
    h = jnp.exp(messages.log_h)
    if is_time_varying(transition_matrix):
        sens = ratios[..., :, None] * h[1:, ..., None, :]
    else:
        sens = jnp.einsum("t...i,t...j->...ij", ratios, h[1:])
    d_init = h[0] / jnp.sum(initial_probs * h[0], -1, keepdims=True)
    return marginals, sens, d_init


@hmm_log_evidence.defjvp
def _hmm_log_evidence_jvp(primals, tangents):
    initial_probs, transition_matrix, log_lik = primals
    d_init, d_trans, d_ll = tangents
    back = _filter(initial_probs, transition_matrix, log_lik, True)
    marginals, sens, d_init_coef = _sensitivities(initial_probs, transition_matrix, back.messages)
    marginals, sens, d_init_coef = jax.lax.stop_gradient((marginals, sens, d_init_coef))
    tangent = jnp.sum(marginals * d_ll, axis=(0, -1)) + jnp.sum(d_init_coef * d_init, -1)
    if is_time_varying(transition_matrix):
        d = d_trans.value
        d = d.reshape(d.shape[:1] + (1,) * (sens.ndim - d.ndim) + d.shape[1:])  # batch axes sit after time
        tangent = tangent + jnp.sum(sens * d, axis=(0, -2, -1))
    else:
        tangent = tangent + jnp.sum(sens * d_trans, axis=(-2, -1))
    return back.log_evidence, tangent
