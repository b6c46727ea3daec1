r"""The three BFFG transformation rules, one implementation per (kernel type, message type).

* **leaf initialisation** $h_\text{leaf}(x) = g(x, y)$, the likelihood of the observation;
* **pullback** $h_{s \leftarrow t}(x) = \int h_t(y)\, \kappa(x, dy)$;
* **fusion** $h_s = \prod_j h_{s \leftarrow c_j}$ (pointwise product);

plus the root rule $\log p(y) = \log \int h_\text{root}\, d\pi$. Rules are chosen by
``functools.singledispatch`` on the kernel (or law) type.
"""

from __future__ import annotations

import math
from functools import singledispatch

import jax.numpy as jnp

from .. import _linalg as la
from ..kernels.finite import Categorical, Emission
from ..kernels.gaussian import LinearGaussian
from ..kernels.initial import CategoricalLaw, GaussianLaw
from ..messages import categorical as cm
from ..messages import gaussian as gm

__all__ = ["leaf", "pullback", "fuse", "marginalize"]


@singledispatch
def leaf(kernel, y, missing, event_ndim: int = 0):
    r"""Leaf message $g(\cdot, y)$ for observations ``y`` ``(T, *batch, *event)``; missing steps give $h \equiv 1$.

    Examples:
        >>> import jax.numpy as jnp, numpyro.distributions as dist
        >>> from markovppl.kernels import Emission
        >>> g = leaf(Emission(dist.Poisson(jnp.array([1.0, 5.0]))), jnp.array([0, 6]), jnp.array([False, True]))
        >>> g.log_h.shape, g.log_h[1].tolist()        # the missing step carries no information
        ((2, 2), [0.0, 0.0])
    """
    raise TypeError(f"no leaf rule for kernel type {type(kernel).__name__}")


@leaf.register
def _(kernel: Emission, y, missing, event_ndim: int = 0):
    log_lik = kernel.log_likelihood(y, event_ndim)
    return cm.normalize(jnp.where(missing[..., None], 0.0, log_lik))


@leaf.register
def _(kernel: LinearGaussian, y, missing, event_ndim: int = 1):
    r"""$H = L^\top R^{-1} L$, $F = L^\top R^{-1}(y - b)$, $c = -\tfrac12 r^\top R^{-1} r - \tfrac12\log\det 2\pi R$.

    ``missing`` ``(T, *batch, m)`` flags missing coordinates: they are dropped exactly by replacing
    $R$ with $\mathrm{blockdiag}(R_{oo}, I)$ and zeroing the missing rows of $L$ and of the residual.
    """
    obs = ~missing
    both = obs[..., :, None] & obs[..., None, :]
    eye = jnp.eye(y.shape[-1], dtype=y.dtype)
    r = jnp.where(both, kernel.Q, jnp.where(missing[..., :, None], eye, 0.0))
    a = jnp.where(obs[..., :, None], kernel.A, 0.0)
    resid = jnp.where(obs, jnp.where(obs, y, 0.0) - kernel.b, 0.0)
    chol = la.cholesky(r)
    wa = la.solve_lower(chol, a)  # R^{-1/2} A
    wr = la.solve_lower(chol, resid[..., None])[..., 0]
    c = -0.5 * jnp.sum(wr**2, -1) - 0.5 * la.chol_logdet(chol) - 0.5 * math.log(2 * math.pi) * jnp.sum(obs, -1)
    wat = jnp.swapaxes(wa, -1, -2)
    return gm.GaussianMessage(c, la.matvec(wat, wr), la.symmetrize(la.matmul(wat, wa)))


@singledispatch
def pullback(kernel, message):
    r"""$(\kappa h)(x) = \int h(y)\,\kappa(x, dy)$; for a finite chain $(P h)(x) = \sum_y P[x, y] h(y)$.

    Examples:
        >>> import jax.numpy as jnp
        >>> from markovppl.kernels import Categorical
        >>> from markovppl.messages import categorical_message, categorical
        >>> h = categorical_message(jnp.log(jnp.array([1.0, 0.0])))
        >>> pulled = pullback(Categorical(jnp.array([[0.9, 0.1], [0.2, 0.8]])), h)
        >>> jnp.exp(categorical.evaluate(pulled, jnp.arange(2))).round(4).tolist()
        [0.9, 0.2]
    """
    raise TypeError(f"no pullback rule for kernel type {type(kernel).__name__}")


@pullback.register
def _(kernel: Categorical, message: cm.CategoricalMessage):
    # log h is normalised to max 0, so P exp(log h) is a plain matrix-vector product in [min P, 1]:
    # K exps and K logs per step instead of K^2 exps.
    pulled = jnp.sum(kernel.transition_matrix * jnp.exp(message.log_h)[..., None, :], axis=-1)
    m = cm.normalize(jnp.log(pulled))
    return cm.CategoricalMessage(m.log_h, m.log_norm + message.log_norm)


@pullback.register
def _(kernel: LinearGaussian, message: gm.GaussianMessage):
    if kernel.cov_sqrt is None:
        kernel = kernel.prepared()
    return gm.affine_substitute(gm.convolve(message, kernel.cov_sqrt), kernel.A, kernel.b)


@singledispatch
def fuse(a, b):
    r"""Pointwise product $h_a h_b$ of two messages of the same family (fusion at a branch point).

    Examples:
        >>> import jax.numpy as jnp
        >>> from markovppl.messages import gaussian_message
        >>> m = gaussian_message(0.0, jnp.ones(1), jnp.eye(1))
        >>> fuse(m, m).F.tolist()
        [2.0]
    """
    raise TypeError(f"no fusion rule for message type {type(a).__name__}")


fuse.register(cm.CategoricalMessage, cm.fuse)
fuse.register(gm.GaussianMessage, gm.fuse)


@singledispatch
def marginalize(law, message):
    r"""$\log \int h\, d\pi$ at the root: the log evidence when $h$ is the root message.

    Examples:
        >>> import jax.numpy as jnp
        >>> from markovppl.kernels.initial import CategoricalLaw
        >>> from markovppl.messages import categorical_message
        >>> law = CategoricalLaw(jnp.log(jnp.array([0.25, 0.75])))
        >>> round(float(jnp.exp(marginalize(law, categorical_message(jnp.log(jnp.array([0.4, 0.8])))))), 4)
        0.7
    """
    raise TypeError(f"no root rule for law type {type(law).__name__}")


@marginalize.register
def _(law: CategoricalLaw, message: cm.CategoricalMessage):
    return cm.marginalize(message, law.log_probs)


@marginalize.register
def _(law: GaussianLaw, message: gm.GaussianMessage):
    return gm.marginalize(message, law.mean, law.cov_sqrt)


@singledispatch
def log_scale(message):
    r"""The log-constant carried by a message ($\mathrm{log\_norm}$ or $c$)."""
    raise TypeError(f"unknown message type {type(message).__name__}")


log_scale.register(cm.CategoricalMessage, lambda m: m.log_norm)
log_scale.register(gm.GaussianMessage, lambda m: m.c)


def add_log_scale(message, delta):
    r"""The message multiplied by $e^{\delta}$."""
    if isinstance(message, cm.CategoricalMessage):
        return message._replace(log_norm=message.log_norm + delta)
    return message._replace(c=message.c + delta)
