r"""Nonlinear Gaussian kernels $y \mid x \sim N(\mu(x), Q(x))$ with a linear-Gaussian auxiliary.

The backward filter cannot pull a Gaussian message back through $\mu(x)$ exactly, so it uses the
auxiliary kernel $\tilde\kappa(x, \cdot) = N(\tilde A x + \tilde b, \tilde Q)$ instead; forward guiding
then samples the *true* kernel tilted by the (approximate) message and returns the per-step
log-weight $\log(\kappa\tilde h)(x) - \log(\tilde\kappa\tilde h)(x)$, so that
$\tilde h_\text{root}\cdot E^\circ[\prod w]$ is the exact evidence and $\prod w$ the Radon–Nikodym
derivative of the posterior with respect to the guided law (see
[`markovppl.guided.nonlinear`][markovppl.guided.nonlinear] for the formulas).

A good auxiliary keeps the weights' variance small: the linearisation of $\mu$ at an anchor
(a state guess per step, e.g. the observations or a smoother mean) is built by
[`linearize`][markovppl.kernels.nonlinear.linearize].
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from .. import _linalg as la
from .. import _validation as v
from .gaussian import LinearGaussian
from .time import TimeVarying

__all__ = ["NonlinearGaussian", "linearize"]


def _vectorized(fn: Callable, signature: str) -> Callable:
    return jnp.vectorize(fn, signature=signature)


@jax.tree_util.register_pytree_node_class
class NonlinearGaussian:
    r"""The kernel $y \mid x \sim N(\mu(x), Q(x))$, guided through a linear-Gaussian auxiliary.

    Args:
        mean_fn: $\mu$, a function of one state ``(d,) -> (d,)`` (batched states are handled by
            ``jnp.vectorize``). Parameters enter by closure (build the kernel inside the model).
        cov_fn: $Q$, ``(d,) -> (d, d)``, positive definite at every state (a Cholesky factor is taken).
        auxiliary: the [`LinearGaussian`][markovppl.kernels.gaussian.LinearGaussian]
            $N(\tilde A x + \tilde b, \tilde Q)$ used by the backward filter (any field may be
            time-varying, or batched over the edges of a tree); [`linearize`][markovppl.kernels.nonlinear.linearize]
            builds one.

    Raises:
        TypeError: a function is not callable or ``auxiliary`` is not a ``LinearGaussian``.
        ValueError: ``mean_fn``/``cov_fn`` do not return shapes ``(d,)``/``(d, d)`` for the
            auxiliary's state dimension $d$; with concrete parameters, $Q(0)$ is not positive definite,
            $\mu(0)$ is not finite, or the auxiliary is invalid.

    Examples:
        >>> import jax.numpy as jnp
        >>> k = NonlinearGaussian(lambda x: jnp.arctan(x), lambda x: 0.5 * jnp.eye(1),
        ...                       LinearGaussian(jnp.eye(1), jnp.zeros(1), 0.5 * jnp.eye(1)))
        >>> k.mean(jnp.array([[0.0], [1.0]])).round(4).tolist(), k.cov(jnp.zeros((3, 1))).shape
        ([[0.0], [0.7854]], (3, 1, 1))
    """

    def __init__(self, mean_fn: Callable, cov_fn: Callable, auxiliary: LinearGaussian):
        if not callable(mean_fn) or not callable(cov_fn):
            raise TypeError("mean_fn and cov_fn must be callables of one state (d,)")
        if not isinstance(auxiliary, LinearGaussian):
            raise TypeError(f"auxiliary must be a LinearGaussian (see linearize), got {type(auxiliary).__name__}")
        if auxiliary.in_dim != auxiliary.out_dim:
            raise ValueError(f"the auxiliary must map states to states of the same dimension, got A of shape "
                             f"({auxiliary.out_dim}, {auxiliary.in_dim})")
        self.mean_fn, self.cov_fn, self.auxiliary = mean_fn, cov_fn, auxiliary
        d = auxiliary.in_dim
        probe = jnp.zeros((d,), jnp.result_type(float))
        m = jax.eval_shape(mean_fn, probe)
        c = jax.eval_shape(cov_fn, probe)
        if m.shape != (d,):
            raise ValueError(f"mean_fn must map a state of shape ({d},) to shape ({d},), got {m.shape}")
        if c.shape != (d, d):
            raise ValueError(f"cov_fn must map a state of shape ({d},) to shape ({d}, {d}), got {c.shape}")
        auxiliary.validate(("auxiliary.A", "auxiliary.b", "auxiliary.Q"))
        q0 = cov_fn(probe)
        if v.is_concrete(q0):                 # parameters closed over are tracers inside a model: skip there
            v.check_finite("mean_fn(0)", mean_fn(probe))
            v.check_covariance("cov_fn(0)", q0, definite=True)

    def tree_flatten(self):
        return (self.auxiliary,), (self.mean_fn, self.cov_fn)

    @classmethod
    def tree_unflatten(cls, aux, children):
        obj = object.__new__(cls)
        obj.mean_fn, obj.cov_fn = aux
        obj.auxiliary = children[0]
        return obj

    def __repr__(self) -> str:
        return f"NonlinearGaussian(d={self.auxiliary.in_dim})"

    @property
    def in_dim(self) -> int:
        return self.auxiliary.in_dim

    @property
    def out_dim(self) -> int:
        return self.auxiliary.out_dim

    def mean(self, x) -> jax.Array:
        r"""$\mu(x)$ for states ``(..., d)``."""
        return _vectorized(self.mean_fn, "(d)->(d)")(x)

    def cov(self, x) -> jax.Array:
        r"""$Q(x)$ for states ``(..., d)``, symmetrised, ``(..., d, d)``."""
        return la.symmetrize(_vectorized(self.cov_fn, "(d)->(d,e)")(x))

    def cov_sqrt(self, x) -> jax.Array:
        r"""The lower Cholesky factor of $Q(x)$, ``(..., d, d)``."""
        return la.cholesky(self.cov(x))

    def with_auxiliary(self, auxiliary: LinearGaussian) -> "NonlinearGaussian":
        """The same true kernel with another auxiliary (e.g. re-linearised at a new anchor)."""
        return NonlinearGaussian(self.mean_fn, self.cov_fn, auxiliary)

    @classmethod
    def linearized(cls, mean_fn: Callable, cov_fn: Callable, anchor) -> "NonlinearGaussian":
        r"""The kernel with its auxiliary linearised at ``anchor`` (see [`linearize`][markovppl.kernels.nonlinear.linearize]).

        Examples:
            >>> import jax.numpy as jnp
            >>> k = NonlinearGaussian.linearized(jnp.sin, lambda x: jnp.eye(1), jnp.zeros(1))
            >>> k.auxiliary.A.tolist()                     # sin'(0) = 1
            [[1.0]]
        """
        return cls(mean_fn, cov_fn, linearize(mean_fn, cov_fn, anchor))


def linearize(mean_fn: Callable, cov_fn: Callable, anchor) -> LinearGaussian:
    r"""The auxiliary $N(Jx + \mu(a) - Ja,\ Q(a))$ with $J = \partial\mu/\partial x\,(a)$ (``jax.jacfwd``).

    Args:
        mean_fn: $\mu$, ``(d,) -> (d,)``.
        cov_fn: $Q$, ``(d,) -> (d, d)``.
        anchor: $a$, ``(d,)``; ``(..., d)`` gives a batched auxiliary (e.g. one per tree edge), and a
            [`time_varying`][markovppl.kernels.time.time_varying] ``(T - 1, d)`` anchor one per step of
            a chain.

    Returns:
        a prepared [`LinearGaussian`][markovppl.kernels.gaussian.LinearGaussian] (time-varying if the
        anchor is).

    Examples:
        >>> import jax.numpy as jnp
        >>> aux = linearize(lambda x: x**2, lambda x: jnp.eye(1), jnp.array([3.0]))
        >>> aux.A.tolist(), aux.b.tolist()                  # tangent of x^2 at 3: 6x - 9
        ([[6.0]], [-9.0])
    """
    tv = isinstance(anchor, TimeVarying)
    a = jnp.asarray(anchor.value if tv else anchor)
    if a.ndim < 1:
        raise ValueError("anchor must have shape (..., d), got a scalar")
    jac = _vectorized(jax.jacfwd(mean_fn), "(d)->(d,e)")(a)
    mu = _vectorized(mean_fn, "(d)->(d)")(a)
    q = la.symmetrize(_vectorized(cov_fn, "(d)->(d,e)")(a))
    b = mu - la.matvec(jac, a)
    if tv:
        return LinearGaussian(TimeVarying(jac), TimeVarying(b), TimeVarying(q)).prepared()
    return LinearGaussian(jac, b, q).prepared()
