r"""The guided continuous-time Markov chain of BFFG, for state spaces too large to exponentiate.

Target: $p(y \mid x_0) = E_{x_0}[g(X_T)]$ for a chain with (possibly huge) generator $Q$ and an observation
likelihood $g > 0$ at time $T$. An auxiliary generator $\tilde Q$ with a tractable backward solution
(small, or a product of small independent components) gives $\tilde h(t) = e^{(T - t)\tilde Q} g$. The
guided chain jumps $x \to y$ at rate $Q(x, y)\,\tilde h(t, y) / \tilde h(t, x)$, and (Corstanje, van der
Meulen & Schauer)

$$p(y \mid x_0) = \tilde h(0, x_0)\, E^\circ[\Psi],\qquad
  \log \Psi = \int_0^T \frac{(\partial_t + L)\tilde h}{\tilde h}(t, X^\circ_t)\, dt
  = \int_0^T \sum_{y \ne x} (Q - \tilde Q)(x, y) \Big(\frac{\tilde h(t, y)}{\tilde h(t, x)} - 1\Big)\, dt .$$

**What is exact here.** $\tilde h$ is computed exactly (matrix exponentials) on a time grid
$0 = t_0 < \dots < t_G = T$, and between grid points $\log \tilde h(t, x)$ is interpolated *linearly in
time*. The identity above holds for *any* positive, absolutely continuous $\tilde h$ with
$\tilde h(T) = g$ (it is a change of measure, not an approximation), with
$\log\Psi = \int (\partial_t \tilde h + L\tilde h)/\tilde h\, dt$ — so with the interpolated $\tilde h$:

* the guided rates $\lambda_r(x)\,\rho_r(t)$, $\rho_r(t) = \tilde h(t, y_r)/\tilde h(t, x)$, are exponential in
  $t$ within a cell, hence monotone: their endpoint values bound them, and the guided chain is simulated
  **exactly by thinning** (no time discretisation);
* $\log\Psi = \int \big[\partial_t \log\tilde h(t, x) + \sum_r \lambda_r(x)(\rho_r(t) - 1)\big] dt$ has closed-form
  integrals of exponentials on each piece, so the **weight is exact**;
* the importance-sampling estimate $\tilde h(0, x_0)\,\overline{\Psi}$ is **unbiased for any grid**. The grid
  only affects the variance (a finer grid brings the interpolated $\tilde h$ closer to the true
  $e^{(T-t)\tilde Q}g$, and the weight to the paper's $\log\Psi$).

Observations at several times $t_1 < \dots < t_n$ ([`dense_guiding_times`][markovppl.jump.guided.dense_guiding_times],
[`product_guiding_times`][markovppl.jump.guided.product_guiding_times]) make $\tilde h$ jump by $g_i$ at $t_i$;
the grid carries each jump as a zero-width cell and the same estimate of $p(y_{1:n} \mid x_0)$ stays
exact in expectation.

The true process is given by ``rates_fn(x) -> (targets, rates)``: the $R$ possible moves out of ``x``
(``targets`` ``(R, *state_shape)``, ``rates`` ``(R,)``, zero rates allowed), so $Q$ is never formed.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import _validation as v
from ..kernels.jump import check_generator, expm_generator
from .bridge import JumpPath

__all__ = ["DenseGuiding", "ProductGuiding", "GuidedJumpPath", "ISEstimate", "dense_guiding", "product_guiding",
           "dense_guiding_times", "product_guiding_times", "guiding_grid", "dense_rates", "guided_ctmc_path", "guided_ctmc_evidence", "is_estimate"]


class DenseGuiding(NamedTuple):
    r"""$\log\tilde h(t_j, x)$ tabulated for $K$ states: ``log_h`` ``(G+1, K)`` on ``grid`` ``(G+1,)``.

    Made by [`dense_guiding`][markovppl.jump.guided.dense_guiding].

    Examples:
        >>> DenseGuiding._fields
        ('grid', 'log_h')
    """

    grid: jax.Array
    log_h: jax.Array

    def value(self, j, x):
        return self.log_h[j, x]


class ProductGuiding(NamedTuple):
    r"""$\log\tilde h(t_j, x) = \sum_i \log\tilde h_i(t_j, x_i)$ for states $x \in \{0..m-1\}^d$:
    ``log_h`` ``(d, G+1, m)`` on ``grid`` ``(G+1,)`` (an auxiliary of independent components).

    Made by [`product_guiding`][markovppl.jump.guided.product_guiding].

    Examples:
        >>> ProductGuiding._fields
        ('grid', 'log_h')
    """

    grid: jax.Array
    log_h: jax.Array

    def value(self, j, x):
        return jnp.sum(self.log_h[jnp.arange(self.log_h.shape[0]), j, x])


def guiding_grid(duration, num_cells: int = 32, start=0.0) -> jax.Array:
    r"""Grid $t_j = t_0 + T(1 - (1 - j/G)^2)$, $j = 0..G$: cells shrink towards the observation at $T$, where
    $\tilde h$ changes fastest.

    Examples:
        >>> guiding_grid(1.0, 4).tolist()
        [0.0, 0.4375, 0.75, 0.9375, 1.0]
    """
    u = jnp.linspace(0.0, 1.0, num_cells + 1)
    return start + duration * (1.0 - (1.0 - u) ** 2)


def _check_log_g(log_g, name="log_g"):
    if v.is_concrete(log_g) and not np.all(np.isfinite(np.asarray(log_g))):
        raise ValueError(f"{name} must be finite (g > 0): the guided CTMC needs a positive observation likelihood at T; "
                         "for exact endpoint conditioning on a small state space use sample_bridge")


def dense_guiding(aux_generator, log_g, grid) -> DenseGuiding:
    r"""Tabulate $\log\tilde h(t_j) = \log e^{(T - t_j)\tilde Q} g$ for an auxiliary generator $\tilde Q$ ``(K, K)``
    and $\log g$ ``(K,)`` on ``grid`` (with $T$ = ``grid[-1]``).

    Examples:
        >>> import jax.numpy as jnp
        >>> qt = jnp.array([[-0.3, 0.3], [0.3, -0.3]])
        >>> gd = dense_guiding(qt, jnp.log(jnp.array([0.1, 0.9])), guiding_grid(1.0, 4))
        >>> gd.log_h.shape, jnp.exp(gd.log_h[-1]).round(3).tolist()       # h(T) = g
        ((5, 2), [0.1, 0.9])
    """
    qt = jnp.asarray(aux_generator)
    check_generator("aux_generator", qt)
    log_g = jnp.asarray(log_g, qt.dtype)
    _check_log_g(log_g)
    grid = jnp.asarray(grid, qt.dtype)
    top = jnp.max(log_g)
    p = expm_generator(qt, grid[-1] - grid)  # (G+1, K, K)
    return DenseGuiding(grid, jnp.log(p @ jnp.exp(log_g - top)) + top)


def product_guiding(aux_generators, log_g, grid) -> ProductGuiding:
    r"""Tabulate a factorised $\tilde h(t, x) = \prod_i (e^{(T-t)\tilde Q_i} g_i)(x_i)$ for $d$ independent
    components with generators ``aux_generators`` ``(d, m, m)`` (or one ``(m, m)`` shared) and
    $\log g_i$ ``(d, m)`` (an observation of each component with independent noise).

    Examples:
        >>> import jax.numpy as jnp
        >>> qt = jnp.array([[-0.5, 0.5], [0.5, -0.5]])
        >>> pg = product_guiding(qt, jnp.log(jnp.full((30, 2), 0.5)), guiding_grid(1.0, 8))   # 2^30 states
        >>> pg.log_h.shape
        (30, 9, 2)
    """
    qt = jnp.asarray(aux_generators)
    check_generator("aux_generators", qt)
    log_g = jnp.asarray(log_g, qt.dtype)
    _check_log_g(log_g)
    grid = jnp.asarray(grid, qt.dtype)
    qt = jnp.broadcast_to(qt, log_g.shape[:1] + qt.shape[-2:])
    top = jnp.max(log_g, -1, keepdims=True)  # (d, 1)
    p = expm_generator(qt[:, None], (grid[-1] - grid)[None, :])  # (d, G+1, m, m)
    return ProductGuiding(grid, jnp.log(jnp.einsum("dgij,dj->dgi", p, jnp.exp(log_g - top))) + top[:, None, :])


def _interval_tables(propagate, times, log_g, cells_per_interval: int, start):
    r"""Backward pass over observation intervals: on $(t_{i-1}, t_i]$ the message is propagated from
    $\log g_i + \log\tilde h(t_i+)$; returns the concatenated grid (each interior observation time twice:
    a zero-width cell carries the jump of $\tilde h$) and the stacked tables ``(n, G+1, ...)``."""
    times = jnp.asarray(times)
    starts = jnp.concatenate([jnp.reshape(jnp.asarray(start, times.dtype), (1,)), times[:-1]])
    grids = jax.vmap(lambda a, ell: guiding_grid(ell, cells_per_interval, a))(starts, times - starts)  # (n, G+1)

    def step(after, inputs):
        grid, lg = inputs
        table = propagate(grid, lg + after)
        return table[0], table

    _, tables = jax.lax.scan(step, jnp.zeros_like(log_g[0]), (grids, log_g), reverse=True)
    return grids.reshape(-1), tables


def _check_times(times, start, log_g, what):
    times = jnp.asarray(times)
    if times.ndim != 1 or times.shape[0] == 0:
        raise ValueError(f"times must be a non-empty 1-d array, got shape {times.shape}")
    if log_g.shape[0] != times.shape[0]:
        raise ValueError(f"log_g must have one row per observation time ({times.shape[0]}), got shape {log_g.shape} ({what})")
    if v.is_concrete(times) and v.is_concrete(start):
        t = np.asarray(times, float)
        if not np.all(np.isfinite(t)):
            raise ValueError("observation times must be finite")
        if np.any(np.diff(t) <= 0):
            raise ValueError("observation times must be strictly increasing (sort them)")
        if t[0] <= float(start):
            raise ValueError(f"observation times must come after start = {float(start)}")


def dense_guiding_times(aux_generator, times, log_g, cells_per_interval: int = 16, start=0.0) -> DenseGuiding:
    r"""$\log\tilde h$ for observations $g_1, \dots, g_n$ at times $t_1 < \dots < t_n$ (auxiliary generator
    $\tilde Q$ ``(K, K)``, $\log g$ ``(n, K)``): between observations
    $\tilde h(t) = e^{(t_i - t)\tilde Q}\,[g_i \odot \tilde h(t_i+)]$, $\tilde h(t_n+) = 1$.

    Each interval gets ``cells_per_interval`` cells of [`guiding_grid`][markovppl.jump.guided.guiding_grid]; an
    interior observation time appears twice in the grid (a zero-width cell across which $\tilde h$ jumps by
    $g_i$). [`guided_ctmc_path`][markovppl.jump.guided.guided_ctmc_path] then estimates
    $p(y_{1:n} \mid x_0) = \tilde h(t_0, x_0)\,E^\circ[\Psi]$ unbiasedly: the change of measure telescopes over the
    intervals, the jumps contributing exactly $\prod_i g_i(X_{t_i})$.

    Examples:
        >>> import jax.numpy as jnp
        >>> qt = jnp.array([[-0.3, 0.3], [0.3, -0.3]])
        >>> gd = dense_guiding_times(qt, jnp.array([0.5, 1.0]), jnp.log(jnp.array([[0.1, 0.9], [0.5, 0.5]])), 4)
        >>> gd.grid.tolist()                                          # 0.5 twice: h~ jumps there
        [0.0, 0.21875, 0.375, 0.46875, 0.5, 0.5, 0.71875, 0.875, 0.96875, 1.0]
        >>> jnp.exp(gd.log_h[4] - gd.log_h[5]).round(3).tolist()      # the jump is g_1
        [0.1, 0.9]
    """
    qt = jnp.asarray(aux_generator)
    check_generator("aux_generator", qt)
    log_g = jnp.asarray(log_g, qt.dtype)
    _check_times(times, start, log_g, "(n, K)")
    _check_log_g(log_g)

    def propagate(grid, terminal):
        top = jnp.max(terminal)
        return jnp.log(expm_generator(qt, grid[-1] - grid) @ jnp.exp(terminal - top)) + top

    grid, tables = _interval_tables(propagate, jnp.asarray(times, qt.dtype), log_g, cells_per_interval, start)
    return DenseGuiding(grid, tables.reshape((-1,) + tables.shape[2:]))


def product_guiding_times(aux_generators, times, log_g, cells_per_interval: int = 16, start=0.0) -> ProductGuiding:
    r"""The factorised $\tilde h$ of [`product_guiding`][markovppl.jump.guided.product_guiding] for observations at
    several times: $\log g$ ``(n, d, m)`` (each component observed with independent noise at every time);
    grid as in [`dense_guiding_times`][markovppl.jump.guided.dense_guiding_times].

    Examples:
        >>> import jax.numpy as jnp
        >>> qt = jnp.array([[-0.5, 0.5], [0.5, -0.5]])
        >>> pg = product_guiding_times(qt, jnp.array([0.5, 1.0]), jnp.log(jnp.full((2, 30, 2), 0.5)), 8)
        >>> pg.log_h.shape, pg.grid.shape
        ((30, 18, 2), (18,))
    """
    qt = jnp.asarray(aux_generators)
    check_generator("aux_generators", qt)
    log_g = jnp.asarray(log_g, qt.dtype)
    _check_times(times, start, log_g, "(n, d, m)")
    _check_log_g(log_g)
    qt = jnp.broadcast_to(qt, log_g.shape[1:2] + qt.shape[-2:])

    def propagate(grid, terminal):  # terminal (d, m) -> (G+1, d, m)
        top = jnp.max(terminal, -1, keepdims=True)
        p = expm_generator(qt[:, None], (grid[-1] - grid)[None, :])  # (d, G+1, m, m)
        out = jnp.log(jnp.einsum("dgij,dj->dgi", p, jnp.exp(terminal - top))) + top[:, None, :]
        return jnp.swapaxes(out, 0, 1)

    grid, tables = _interval_tables(propagate, jnp.asarray(times, qt.dtype), log_g, cells_per_interval, start)
    flat = tables.reshape((-1,) + tables.shape[2:])  # (n (G+1), d, m)
    return ProductGuiding(grid, jnp.swapaxes(flat, 0, 1))


def dense_rates(generator) -> Callable:
    r"""``rates_fn`` of a dense generator: from state ``x`` the moves are to every state, at rates $Q[x, \cdot]$
    with the diagonal zeroed.

    Examples:
        >>> import jax.numpy as jnp
        >>> targets, rates = dense_rates(jnp.array([[-1.0, 1.0], [2.0, -2.0]]))(1)
        >>> targets.tolist(), rates.tolist()
        ([0, 1], [2.0, 0.0])
    """
    q = jnp.asarray(generator)
    off = jnp.where(jnp.eye(q.shape[-1], dtype=bool), 0.0, q)

    def rates_fn(x):
        return jnp.arange(q.shape[-1]), off[x]

    return rates_fn


class GuidedJumpPath(NamedTuple):
    r"""A path of the guided chain with its weight.

    Attributes:
        path: [`JumpPath`][markovppl.jump.bridge.JumpPath] on $[t_0, T]$ (states may be vectors: ``states``
            ``(..., max_jumps, *state_shape)``); ``overflow`` flags paths that needed more than ``max_jumps``
            jumps or ``max_iterations`` thinning steps (their weight is not valid).
        log_weight: $\log\Psi$ ``(...)``.
        log_h0: $\log\tilde h(t_0, x_0)$ ``(...)``.

    Made by [`guided_ctmc_path`][markovppl.jump.guided.guided_ctmc_path].

    Examples:
        >>> GuidedJumpPath._fields
        ('path', 'log_weight', 'log_h0')
    """

    path: JumpPath
    log_weight: jax.Array
    log_h0: jax.Array


def _phi(z):
    """(e^z - 1) / z, stable at 0."""
    small = jnp.abs(z) < 1e-6
    zs = jnp.where(small, 1.0, z)
    return jnp.where(small, 1.0 + 0.5 * z, jnp.expm1(zs) / zs)


def guided_ctmc_path(rng_key, x0, rates_fn: Callable, guiding, max_jumps: int, max_iterations: int = 10_000) -> GuidedJumpPath:
    r"""Simulate one path of the guided chain exactly (thinning) and return it with its exact log-weight.

    Args:
        rng_key: PRNG key.
        x0: initial state (an integer, or an integer vector for product spaces).
        rates_fn: ``x -> (targets (R, *state_shape), rates (R,))``, the moves of the true chain.
        guiding: [`DenseGuiding`][markovppl.jump.guided.DenseGuiding] or
            [`ProductGuiding`][markovppl.jump.guided.ProductGuiding] (or any object with ``grid`` and
            ``value(j, x)`` = $\log\tilde h(t_j, x)$).
        max_jumps: static number of recorded jump slots.
        max_iterations: bound on thinning proposals plus grid crossings (``overflow`` if reached).

    Pure and ``jit``/``vmap``-able (close over ``rates_fn``).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> Q = jnp.array([[-1.0, 0.7, 0.3], [0.4, -0.9, 0.5], [0.2, 0.6, -0.8]])
        >>> gd = dense_guiding(jnp.full((3, 3), 0.3) - 0.9 * jnp.eye(3), jnp.log(jnp.array([0.05, 0.15, 0.8])),
        ...                    guiding_grid(1.5, 16))
        >>> out = guided_ctmc_path(jax.random.PRNGKey(0), 0, dense_rates(Q), gd, max_jumps=30)
        >>> out.path.times.shape, bool(out.path.overflow)
        ((30,), False)
    """
    grid = guiding.grid
    dtype = grid.dtype
    x0 = jnp.asarray(x0).astype(jnp.int32)
    num_cells = grid.shape[0] - 1
    times0 = jnp.full((max_jumps,), grid[-1], dtype)
    states0 = jnp.broadcast_to(x0, (max_jumps,) + x0.shape)

    def cell_terms(j, x, t):
        targets, lam = rates_fn(x)
        lam = jnp.asarray(lam, dtype)
        a, b = grid[j], grid[j + 1]
        width = b - a
        inv = jnp.where(width > 0, 1.0 / jnp.where(width > 0, width, 1.0), 0.0)  # zero-width cell: a jump of h~
        lx0, lx1 = guiding.value(j, x), guiding.value(j + 1, x)
        ly0 = jax.vmap(lambda y: guiding.value(j, y))(targets)
        ly1 = jax.vmap(lambda y: guiding.value(j + 1, y))(targets)
        beta_x = (lx1 - lx0) * inv
        kappa = (ly1 - ly0) * inv - beta_x  # d/dt log rho_r
        log_rho_t = (ly0 - lx0) + kappa * (t - a)  # log rho_r at the current time
        return targets, lam, beta_x, kappa, log_rho_t, b

    def weight(lam, beta_x, kappa, log_rho_t, span):
        rho = jnp.exp(log_rho_t)
        integral = jnp.where(lam > 0, lam * rho * span * _phi(kappa * span), 0.0)
        return beta_x * span - jnp.sum(lam) * span + jnp.sum(integral)

    def body(carry):
        key, t, j, x, logw, n, times, states, it = carry
        key, k_e, k_u, k_r = jax.random.split(key, 4)
        targets, lam, beta_x, kappa, log_rho_t, t_end = cell_terms(j, x, t)
        log_rho_end = log_rho_t + kappa * (t_end - t)
        bound = jnp.sum(jnp.where(lam > 0, lam * jnp.exp(jnp.maximum(log_rho_t, log_rho_end)), 0.0))
        tau = t + jax.random.exponential(k_e, dtype=dtype) / jnp.where(bound > 0, bound, 1.0)
        tau = jnp.where(bound > 0, tau, jnp.inf)
        cross = tau >= t_end
        stop = jnp.where(cross, t_end, tau)
        logw = logw + weight(lam, beta_x, kappa, log_rho_t, stop - t)
        log_rates_tau = jnp.where(lam > 0, jnp.log(jnp.where(lam > 0, lam, 1.0)) + log_rho_t + kappa * (stop - t), -jnp.inf)
        total_tau = jnp.sum(jnp.exp(log_rates_tau))
        accept = (~cross) & (jax.random.uniform(k_u, dtype=dtype) * bound < total_tau)
        r = jax.random.categorical(k_r, log_rates_tau)
        y = targets[r].astype(x.dtype)
        x_new = jnp.where(accept, y, x)
        slot = jnp.minimum(n, max_jumps - 1)
        times = jnp.where(accept & (n < max_jumps), times.at[slot].set(stop), times)
        states = jnp.where(accept & (n < max_jumps), states.at[slot].set(y), states)
        n = n + accept.astype(n.dtype)
        j = j + cross.astype(j.dtype)
        return key, stop, j, x_new, logw, n, times, states, it + 1

    def cond(carry):
        _, _, j, _, _, _, _, _, it = carry
        return (j < num_cells) & (it < max_iterations)

    init = (rng_key, grid[0], jnp.asarray(0), x0, jnp.zeros((), dtype), jnp.asarray(0), times0, states0, jnp.asarray(0))
    _, _, j, x_end, logw, n, times, states, it = jax.lax.while_loop(cond, body, init)
    overflow = (n > max_jumps) | (j < num_cells)
    slots = jnp.arange(max_jumps)
    keep = (slots < n).reshape((max_jumps,) + (1,) * x0.ndim)
    states = jnp.where(keep, states, x_end)
    path = JumpPath(x0, times, states, jnp.minimum(n, max_jumps), overflow, grid[0], grid[-1])
    return GuidedJumpPath(path, logw, guiding.value(0, x0))


class ISEstimate(NamedTuple):
    r"""Importance-sampling estimate of $p(y \mid x_0)$.

    Attributes:
        evidence: $\tilde h(0, x_0)\, \overline{\Psi}$.
        standard_error: Monte Carlo standard error $\tilde h(0, x_0)\, \mathrm{sd}(\Psi)/\sqrt{n}$.
        log_evidence: $\log$ of ``evidence``.
        ess: Kish effective sample size of the weights.
        num_overflow: paths dropped because they overflowed (should be 0).

    Made by [`guided_ctmc_evidence`][markovppl.jump.guided.guided_ctmc_evidence].

    Examples:
        >>> ISEstimate._fields
        ('evidence', 'standard_error', 'log_evidence', 'ess', 'num_overflow')
    """

    evidence: jax.Array
    standard_error: jax.Array
    log_evidence: jax.Array
    ess: jax.Array
    num_overflow: jax.Array


def is_estimate(log_h0, log_weights, valid=None) -> ISEstimate:
    r"""$\tilde h_0 \cdot$ mean and standard error of $e^{\log w}$ (computed with a common shift), from
    ``log_weights`` ``(n,)``; entries with ``valid == False`` count as overflowed and are excluded.

    Examples:
        >>> import jax.numpy as jnp
        >>> est = is_estimate(jnp.log(2.0), jnp.log(jnp.array([0.5, 1.5])))
        >>> float(est.evidence), float(est.ess)
        (2.0, 1.6)
    """
    lw = jnp.asarray(log_weights)
    valid = jnp.ones(lw.shape, bool) if valid is None else valid
    lw = jnp.where(valid, lw, -jnp.inf)
    n = jnp.sum(valid)
    top = jnp.max(lw)
    w = jnp.exp(lw - top)
    mean = jnp.sum(w) / n
    sd = jnp.sqrt(jnp.sum(jnp.where(valid, (w - mean) ** 2, 0.0)) / (n - 1))
    scale = jnp.exp(log_h0 + top)
    ess = jnp.sum(w) ** 2 / jnp.sum(w**2)
    return ISEstimate(scale * mean, scale * sd / jnp.sqrt(n), log_h0 + top + jnp.log(mean), ess, jnp.sum(~valid))


def guided_ctmc_evidence(rng_key, x0, rates_fn: Callable, guiding, num_samples: int, max_jumps: int,
                         max_iterations: int = 10_000) -> tuple[ISEstimate, GuidedJumpPath]:
    r"""Importance-sampling estimate of $p(y \mid x_0) = \tilde h(0, x_0) E^\circ[\Psi]$ from ``num_samples``
    guided paths (vmapped, jitted), with its Monte Carlo standard error. Returns ``(estimate, paths)``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> Q = jnp.array([[-1.0, 0.7, 0.3], [0.4, -0.9, 0.5], [0.2, 0.6, -0.8]])
        >>> g = jnp.array([0.05, 0.15, 0.8])
        >>> gd = dense_guiding(jnp.full((3, 3), 0.3) - 0.9 * jnp.eye(3), jnp.log(g), guiding_grid(1.5, 16))
        >>> est, _ = guided_ctmc_evidence(jax.random.PRNGKey(0), 0, dense_rates(Q), gd, 500, max_jumps=30)
        >>> exact = float((jax.scipy.linalg.expm(1.5 * Q) @ g)[0])                     # 0.288023
        >>> bool(abs(float(est.evidence) - exact) < 4 * float(est.standard_error))
        True
    """
    keys = jax.random.split(rng_key, num_samples)
    run = jax.jit(jax.vmap(lambda k: guided_ctmc_path(k, x0, rates_fn, guiding, max_jumps, max_iterations)))
    paths = run(keys)
    return is_estimate(paths.log_h0[0], paths.log_weight, ~paths.path.overflow), paths
