r"""Forward guiding rules: sample the guided kernel and return the log-weight increment.

The guided kernel tilts the true kernel by the backward message of its target,
$\kappa^\circ(x, dy) = \kappa(x, dy)\, h(y) / (\kappa h)(x)$, with per-edge log-weight
$\log(\kappa h)(x) - \log(\tilde\kappa h)(x)$, which is exactly zero for the exact kernels here
(the message was pulled back through the true kernel): guided paths are exact posterior draws.

Noise is an explicit input (Gumbel noise of shape ``(..., K)`` for finite states, standard normal
``(..., d)`` for Gaussian states), so a path is a deterministic function of (parameters, noise).
"""

from __future__ import annotations

from functools import singledispatch

import jax.numpy as jnp

from .. import _linalg as la
from ..kernels.finite import Categorical, select_row
from ..kernels.gaussian import LinearGaussian
from ..kernels.initial import CategoricalLaw, GaussianLaw
from ..messages import categorical as cm
from ..messages import gaussian as gm

__all__ = ["guide", "guide_initial"]


@singledispatch
def guide(kernel, message, x, noise):
    r"""Draw $y \sim \kappa^\circ(x, \cdot) \propto \kappa(x, \cdot)\, h$ from ``noise``; returns ``(y, log_weight)``.

    For finite states this is the Gumbel-max trick, $y = \arg\max_k (\log P[x, k] + \log h(k) + z_k)$.

    Examples:
        >>> import jax.numpy as jnp
        >>> from markovppl.kernels import Categorical
        >>> from markovppl.messages import categorical_message
        >>> h = categorical_message(jnp.log(jnp.array([0.01, 1.0])))     # the future favours state 1
        >>> y, lw = guide(Categorical(jnp.array([[0.9, 0.1], [0.1, 0.9]])), h, jnp.array(0), jnp.zeros(2))
        >>> int(y), float(lw)                                             # 0.9 * 0.01 < 0.1 * 1
        (1, 0.0)
    """
    raise TypeError(f"no guiding rule for kernel type {type(kernel).__name__}")


@guide.register
def _(kernel: Categorical, message: cm.CategoricalMessage, x, noise):
    log_p = jnp.log(kernel.transition_matrix)
    row = select_row(log_p, x)
    y = jnp.argmax(row + message.log_h + noise, axis=-1)
    return y, jnp.zeros(y.shape, log_p.dtype)


@guide.register
def _(kernel: LinearGaussian, message: gm.GaussianMessage, x, noise):
    if kernel.cov_sqrt is None:
        kernel = kernel.prepared()
    cond = gm.condition(message, la.matvec(kernel.A, x) + kernel.b, kernel.cov_sqrt)
    y = cond.mean + la.matvec(cond.noise_factor, noise)
    return y, jnp.zeros(y.shape[:-1], y.dtype)


@singledispatch
def guide_initial(law, message, noise):
    r"""Draw the root from $\pi(dx)\, h(x) / \int h\, d\pi$; returns ``(x, log_weight)``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from markovppl.kernels.initial import GaussianLaw
        >>> from markovppl.messages import gaussian_message
        >>> h = gaussian_message(0.0, jnp.array([1.0]), jnp.array([[1.0]]))   # N(y = 1; x, 1) up to a constant
        >>> x, lw = guide_initial(GaussianLaw(jnp.zeros(1), jnp.eye(1)), h, jnp.zeros(1))
        >>> x.tolist(), float(lw)                                          # zero noise gives the posterior mean
        ([0.5], 0.0)
    """
    raise TypeError(f"no guiding rule for law type {type(law).__name__}")


@guide_initial.register
def _(law: CategoricalLaw, message: cm.CategoricalMessage, noise):
    x = jnp.argmax(law.log_probs + message.log_h + noise, axis=-1)
    return x, jnp.zeros(x.shape, law.log_probs.dtype)


@guide_initial.register
def _(law: GaussianLaw, message: gm.GaussianMessage, noise):
    cond = gm.condition(message, law.mean, law.cov_sqrt)
    x = cond.mean + la.matvec(cond.noise_factor, noise)
    return x, jnp.zeros(x.shape[:-1], x.dtype)


@singledispatch
def noise_shape(law) -> tuple[int, ...]:
    """Shape of the per-step noise for states of this law (trailing event part)."""
    raise TypeError(f"unknown law type {type(law).__name__}")


@noise_shape.register
def _(law: CategoricalLaw):
    return (law.log_probs.shape[-1],)


@noise_shape.register
def _(law: GaussianLaw):
    return (law.mean.shape[-1],)
