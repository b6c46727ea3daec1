r"""Diffusion edge kernels: $dX = b(t, X)\,dt + \sigma(t, X)\,dW$ over a time interval, with a linear
auxiliary SDE for backward filtering forward guiding.

The true process has drift $b$ and diffusion coefficient $\sigma$ ($d \times w$, $a = \sigma\sigma^\top$),
and is in general intractable. The **auxiliary** process

$$d\tilde X = \big(\tilde B(t)\tilde X + \tilde\beta(t)\big)\,dt + \tilde\sigma(t)\,dW,
  \qquad \tilde a = \tilde\sigma\tilde\sigma^\top,$$

is linear, so its backward messages $\tilde h(t, x) = \exp(c(t) + F(t)^\top x - \tfrac12 x^\top H(t) x)$ are
Gaussian (see [`markovppl.backward.diffusion`][markovppl.backward.diffusion]); the guided process and its
Girsanov weight correct for the mismatch (see [`markovppl.guided.diffusion`][markovppl.guided.diffusion]).

**Callables.** ``drift(t, x)`` returns $b(t, x)$ ``(d,)`` and ``diffusion(t, x)`` returns
$\sigma(t, x)$ ``(d, w)``, for a scalar absolute time ``t`` and one state ``x`` ``(d,)`` (they are
``vmap``-ed over paths, so write them for a single state). When the kernel has ``params`` (any pytree of
arrays, e.g. a dict of parameters), they are called as ``drift(t, x, params)`` and
``diffusion(t, x, params)`` instead: ``params`` are leaves of the kernel pytree, so a jitted function
taking the kernel as an argument does not retrace when their values change. Closures over traced
values also work when the kernel is built inside the transformed function (as in a NumPyro model).
``diffusion`` may also be a constant ``(d, w)`` array (a leaf too).

**Time grid.** Each interval $[t_s, t_s + \ell]$ (``duration`` $\ell$) is cut into ``num_steps`` pieces
on the grid $t_k = t_s + \ell\, u_k(2 - u_k)$, $u_k = k / N$ (``time_change=True``, the default), which
puts points close to the end of the interval where an observation makes $H(t)$ large (Van der Meulen &
Schauer; MitosisStochasticDiffEq ``timechange``); ``time_change=False`` uses $t_k = t_s + \ell u_k$.
The backward filter and the forward guided Euler scheme use the same grid, so no interpolation is ever
needed.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from .. import _validation as v

__all__ = ["LinearSDE", "Diffusion", "time_grid"]


def _is_fn(x) -> bool:
    return callable(x) and not hasattr(x, "shape")


@jax.tree_util.register_pytree_node_class
class LinearSDE:
    r"""The linear auxiliary SDE $d\tilde X = (\tilde B\tilde X + \tilde\beta)\,dt + \tilde\sigma\,dW$.

    Each coefficient is either a constant array or a callable of the absolute time ``t`` (scalar)
    returning that array. With constant coefficients the backward filter is exact (matrix exponentials,
    Van Loan); with any time-dependent coefficient it integrates the Riccati ODEs by RK4 on the grid.
    In [`DiscretelyObservedSDE`][markovppl.families.sde.DiscretelyObservedSDE] constant arrays may also
    carry a leading axis of length $M$, one auxiliary per interval between observations (e.g. the drift
    linearised at each observation).

    Attributes:
        B: $\tilde B$ ``(d, d)`` (any real matrix, e.g. a linearisation of the true drift).
        beta: $\tilde\beta$ ``(d,)``.
        sigma: $\tilde\sigma$ ``(d, w)``; $\tilde a = \tilde\sigma\tilde\sigma^\top$.

    Examples:
        >>> import jax.numpy as jnp
        >>> aux = LinearSDE(-0.2 * jnp.eye(1), jnp.array([0.1]), jnp.array([[1.2]]))
        >>> aux.is_constant, aux.dim, aux.a(0.0).tolist()
        (True, 1, [[1.44]])
        >>> LinearSDE(lambda t: -t * jnp.eye(1), jnp.zeros(1), jnp.eye(1)).is_constant
        False
    """

    def __init__(self, B, beta, sigma):
        self.B, self.beta, self.sigma = B, beta, sigma

    def tree_flatten(self):
        fields = (self.B, self.beta, self.sigma)
        leaves = tuple(None if _is_fn(f) else f for f in fields)
        static = tuple(f if _is_fn(f) else None for f in fields)
        return leaves, static

    @classmethod
    def tree_unflatten(cls, static, leaves):
        return cls(*(s if s is not None else x for s, x in zip(static, leaves)))

    def __repr__(self) -> str:
        show = lambda f: "<fn>" if _is_fn(f) else str(tuple(np.shape(f)))
        return f"LinearSDE(B={show(self.B)}, beta={show(self.beta)}, sigma={show(self.sigma)})"

    @property
    def is_constant(self) -> bool:
        """True when no coefficient depends on time."""
        return not any(_is_fn(f) for f in (self.B, self.beta, self.sigma))

    @property
    def dim(self) -> int:
        """State dimension $d$."""
        return int(np.shape(self.B(0.0) if _is_fn(self.B) else self.B)[-1])

    def coefficients(self, t):
        r"""$(\tilde B(t), \tilde\beta(t), \tilde\sigma(t))$ as arrays."""
        at = lambda f: jnp.asarray(f(t)) if _is_fn(f) else jnp.asarray(f)
        return at(self.B), at(self.beta), at(self.sigma)

    def a(self, t):
        r"""$\tilde a(t) = \tilde\sigma(t)\tilde\sigma(t)^\top$."""
        s = self.coefficients(t)[2]
        return s @ s.T

    def drift(self, t, x):
        r"""$\tilde b(t, x) = \tilde B(t) x + \tilde\beta(t)$."""
        B, beta, _ = self.coefficients(t)
        return B @ x + beta

    @property
    def num_intervals(self) -> Optional[int]:
        """Length of the leading interval axis of a per-interval auxiliary (``B`` of shape ``(M, d, d)``), else ``None``."""
        if _is_fn(self.B) or np.ndim(self.B) != 3:
            return None
        return int(np.shape(self.B)[0])

    def interval(self, j) -> "LinearSDE":
        """The auxiliary of interval ``j`` (itself when it is shared by all intervals)."""
        if self.num_intervals is None:
            return self
        return LinearSDE(self.B[j], self.beta[j], self.sigma[j])

    def validate(self, dim: Optional[int] = None) -> "LinearSDE":
        """Check shapes ``(d, d)``, ``(d,)``, ``(d, w)`` (at ``t = 0`` for callables; constant arrays may carry one
        leading interval axis ``M``, all three alike) and finiteness."""
        shapes = []
        for name, f in (("B", self.B), ("beta", self.beta), ("sigma", self.sigma)):
            shape = tuple(jax.eval_shape(f, 0.0).shape) if _is_fn(f) else tuple(np.shape(f))
            shapes.append(shape)
            if not _is_fn(f):
                v.check_finite(f"auxiliary {name}", f)
        lead = self.num_intervals
        if lead is not None:
            if any(_is_fn(f) for f in (self.beta, self.sigma)) or any(len(sh) == 0 or sh[0] != lead for sh in shapes):
                raise ValueError(f"a per-interval auxiliary needs arrays B (M, d, d), beta (M, d), sigma (M, d, w) with "
                                 f"the same M; got shapes {shapes}")
            shapes = [sh[1:] for sh in shapes]
        (sb, sbeta, ssig) = shapes
        d = sb[-1] if sb else None
        if len(sb) != 2 or sb[0] != sb[1]:
            raise ValueError(f"auxiliary B must be a square (d, d) matrix (or (M, d, d) per interval), got shape {sb}")
        if sbeta != (d,):
            raise ValueError(f"auxiliary beta must have shape ({d},) to match B {sb}, got {sbeta}")
        if len(ssig) != 2 or ssig[0] != d:
            raise ValueError(f"auxiliary sigma must have shape ({d}, w) to match B {sb}, got {ssig}")
        if dim is not None and d != dim:
            raise ValueError(f"auxiliary has dimension {d} but the state has dimension {dim}")
        return self


@jax.tree_util.register_pytree_node_class
class Diffusion:
    r"""The SDE $dX = b(t, X)\,dt + \sigma(t, X)\,dW$ run for a time ``duration``, with a linear auxiliary.

    See the module docstring for the calling conventions of ``drift`` and ``diffusion`` and the grid.

    Args:
        drift: $b$: ``drift(t, x) -> (d,)`` (or ``drift(t, x, params)`` when ``params`` is given).
        diffusion: $\sigma$: ``diffusion(t, x) -> (d, w)`` (or with ``params``), or a constant ``(d, w)`` array.
        duration: $\ell \ge 0$, scalar or ``(n,)`` (one entry per interval, e.g. the gaps between
            observation times); an array leaf, so it can carry gradients.
        auxiliary: [`LinearSDE`][markovppl.kernels.diffusion.LinearSDE] used by the backward filter.
        num_steps: $N$, Euler steps (and message grid points $N + 1$) per interval.
        time_change: use the grid $t_k = t_s + \ell u_k(2 - u_k)$ (dense near the interval's end).
        params: optional pytree of parameters passed to ``drift`` and ``diffusion``.
        solver: ``"auto"`` (exact matrix exponentials for a constant auxiliary, RK4 otherwise),
            ``"exact"`` or ``"rk4"``.

    Examples:
        >>> import jax.numpy as jnp
        >>> k = Diffusion(lambda t, x, p: -p["theta"] * x, jnp.array([[0.9]]), jnp.array(1.0),
        ...               LinearSDE(-0.2 * jnp.eye(1), jnp.array([0.1]), jnp.array([[1.2]])),
        ...               num_steps=4, params={"theta": jnp.array(0.8)})
        >>> k.dim, k.noise_dim, k.b(0.0, jnp.array([1.0])).tolist()
        (1, 1, [-0.8])
        >>> time_grid(k.duration, 4).round(4).tolist()
        [0.0, 0.4375, 0.75, 0.9375, 1.0]
    """

    def __init__(self, drift: Callable, diffusion, duration, auxiliary: LinearSDE, *, num_steps: int = 100,
                 time_change: bool = True, params: Any = None, solver: str = "auto"):
        self.drift, self.diffusion, self.duration, self.auxiliary = drift, diffusion, duration, auxiliary
        self.num_steps, self.time_change, self.params, self.solver = num_steps, time_change, params, solver

    # pytree: duration, auxiliary, params and an array diffusion are leaves; callables and options are static
    def tree_flatten(self):
        sig_fn = self.diffusion if _is_fn(self.diffusion) else None
        sig_leaf = None if _is_fn(self.diffusion) else self.diffusion
        return ((self.duration, self.auxiliary, self.params, sig_leaf),
                (self.drift, sig_fn, self.num_steps, self.time_change, self.solver))

    @classmethod
    def tree_unflatten(cls, static, leaves):
        drift, sig_fn, num_steps, time_change, solver = static
        duration, aux, params, sig_leaf = leaves
        return cls(drift, sig_fn if sig_fn is not None else sig_leaf, duration, aux, num_steps=num_steps,
                   time_change=time_change, params=params, solver=solver)

    def replace(self, **changes) -> "Diffusion":
        """A copy with some fields replaced (e.g. ``duration``)."""
        fields = dict(drift=self.drift, diffusion=self.diffusion, duration=self.duration, auxiliary=self.auxiliary,
                      num_steps=self.num_steps, time_change=self.time_change, params=self.params, solver=self.solver)
        fields.update(changes)
        drift, diffusion, duration, auxiliary = (fields.pop(k) for k in ("drift", "diffusion", "duration", "auxiliary"))
        return Diffusion(drift, diffusion, duration, auxiliary, **fields)

    def __repr__(self) -> str:
        return (f"Diffusion(duration={tuple(np.shape(self.duration))}, auxiliary={self.auxiliary!r}, "
                f"num_steps={self.num_steps}, time_change={self.time_change}, solver={self.solver!r})")

    # ---------------------------------------------------------------- evaluation
    def b(self, t, x):
        """The drift $b(t, x)$ ``(d,)``."""
        out = self.drift(t, x) if self.params is None else self.drift(t, x, self.params)
        return jnp.asarray(out)

    def sigma(self, t, x):
        r"""The diffusion coefficient $\sigma(t, x)$ ``(d, w)``."""
        if not _is_fn(self.diffusion):
            return jnp.asarray(self.diffusion)
        out = self.diffusion(t, x) if self.params is None else self.diffusion(t, x, self.params)
        return jnp.asarray(out)

    @property
    def dim(self) -> int:
        """State dimension $d$ (from the auxiliary)."""
        return self.auxiliary.dim

    @property
    def noise_dim(self) -> int:
        r"""Dimension $w$ of the driving Brownian motion (columns of $\sigma$)."""
        x = jax.ShapeDtypeStruct((self.dim,), jnp.result_type(float))
        return int(jax.eval_shape(lambda x: self.sigma(0.0, x), x).shape[-1])

    @property
    def exact_messages(self) -> bool:
        """Whether the backward filter uses matrix exponentials (constant auxiliary) rather than RK4."""
        if self.solver == "exact":
            return True
        if self.solver == "rk4":
            return False
        return self.auxiliary.is_constant

    def validate(self) -> "Diffusion":
        """Check the options, the auxiliary, non-negative durations and the shapes returned by ``drift``
        and ``diffusion`` (evaluated abstractly at ``t = 0``)."""
        if not isinstance(self.num_steps, (int, np.integer)) or isinstance(self.num_steps, bool) or self.num_steps < 1:
            raise ValueError(f"num_steps must be a positive integer, got {self.num_steps!r}")
        if self.solver not in ("auto", "exact", "rk4"):
            raise ValueError(f"solver must be 'auto', 'exact' or 'rk4', got {self.solver!r}")
        if self.solver == "exact" and not self.auxiliary.is_constant:
            raise ValueError("solver='exact' needs an auxiliary with constant coefficients (use 'rk4')")
        if not callable(self.drift):
            raise TypeError(f"drift must be a callable drift(t, x{', params' if self.params is not None else ''})")
        self.auxiliary.validate()
        d = self.dim
        v.check_ndim("duration", self.duration, 0, "scalar or (n,)")
        if np.ndim(self.duration) > 1:
            raise ValueError(f"duration must be a scalar or (n,), got shape {np.shape(self.duration)}")
        if v.is_concrete(self.duration):
            ell = np.asarray(self.duration, float)
            v.check_finite("duration", ell)
            if np.any(ell < 0):
                raise ValueError(f"duration must be non-negative, got minimum {ell.min():.4g}")
        x = jax.ShapeDtypeStruct((d,), jnp.result_type(float))
        try:
            sb = jax.eval_shape(lambda x: self.b(0.0, x), x).shape
            ss = jax.eval_shape(lambda x: self.sigma(0.0, x), x).shape
        except Exception as err:  # the user's callables: say which call failed
            raise ValueError(f"calling drift/diffusion at a state of shape ({d},) failed: {type(err).__name__}: {err}") from err
        if tuple(sb) != (d,):
            raise ValueError(f"drift(t, x) must return shape ({d},) for x of shape ({d},), got {tuple(sb)}")
        if len(ss) != 2 or ss[0] != d:
            raise ValueError(f"diffusion(t, x) must return a ({d}, w) matrix, got shape {tuple(ss)}")
        return self


def time_grid(duration, num_steps: int, time_change: bool = True):
    r"""Grid offsets $\ell\, u_k (2 - u_k)$ (or $\ell u_k$), $u_k = k / N$, $k = 0..N$: ``(*duration.shape, N + 1)``.

    The last point is exactly $\ell$.

    Examples:
        >>> import jax.numpy as jnp
        >>> time_grid(jnp.array(2.0), 2, time_change=False).tolist()
        [0.0, 1.0, 2.0]
    """
    ell = jnp.asarray(duration)
    dtype = ell.dtype if jnp.issubdtype(ell.dtype, jnp.floating) else jnp.result_type(float)
    u = jnp.arange(num_steps + 1, dtype=dtype) / num_steps
    shape = u * (2.0 - u) if time_change else u
    return ell.astype(dtype)[..., None] * shape
