r"""Backward filter of a linear auxiliary SDE on a time grid: Gaussian messages $\tilde h(t_k, \cdot)$.

For $d\tilde X = (\tilde B\tilde X + \tilde\beta)\,dt + \tilde\sigma\,dW$ the function
$\tilde h(t, x) = E[h_T(\tilde X_T) \mid \tilde X_t = x]$ stays Gaussian,
$\log\tilde h(t, x) = c(t) + F(t)^\top x - \tfrac12 x^\top H(t) x$, and solves the backward Kolmogorov
equation $(\partial_t + \tilde L)\tilde h = 0$, i.e. the Riccati ODEs (exponent convention)

$$\dot H = -\tilde B^\top H - H\tilde B + H\tilde a H,\qquad
  \dot F = -\tilde B^\top F + H\tilde a F + H\tilde\beta,\qquad
  \dot c = -\tilde\beta^\top F + \tfrac12\operatorname{tr}(\tilde a H) - \tfrac12 F^\top\tilde a F,$$

integrated backward from the message $h_T$ at the end of the interval. Two solvers, both returning the
messages on the grid $t_0 < \dots < t_N$ of the kernel (the grid the guided Euler scheme uses):

* **exact** (constant coefficients): over each grid cell the auxiliary transition is the exact
  linear-Gaussian kernel $N(\Phi x + b, Q)$ with $\Phi = e^{\tilde B\delta}$,
  $b = \int_0^\delta e^{\tilde Bu}\tilde\beta\,du$, $Q = \int_0^\delta e^{\tilde Bu}\tilde a e^{\tilde B^\top u}du$,
  computed together by the Van Loan exponential of the state augmented with a constant $1$ (so
  singular $\tilde B$ is fine). The cells of a grid are odd multiples of $\varepsilon = \ell / N^2$
  (lengths $(2N - 2k - 1)\varepsilon$ with the time change, all $\ell / N$ without), so one exponential
  per interval suffices: the other cells follow by composing exact transitions (the semigroup property,
  [`grid_transitions`][markovppl.backward.diffusion.grid_transitions]). The message is pulled back by the rule
  $C = I + HQ$, $H' = \Phi^\top C^{-1}H\Phi$, $F' = \Phi^\top C^{-1}(F - Hb)$,
  $c' = c - \tfrac12\log\det C + \tfrac12 F^\top QC^{-1}F + b^\top C^{-1}F - \tfrac12 b^\top C^{-1}Hb$,
  which never inverts $H$ or $Q$ (partial observations, $H = 0$ and degenerate noise are all fine).
  This is exact for any grid.
* **rk4** (time-dependent $\tilde B(t)$, $\tilde\beta(t)$, $\tilde\sigma(t)$): one classical Runge–Kutta
  step per grid cell on $(c, F, H)$. Its error is $O(\delta^4)$ per cell; as any explicit scheme it
  needs $\delta\,\|H\tilde a\| \lesssim 1$, so very precise observations (tiny observation noise) call for
  more steps or a constant auxiliary.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import _linalg as la
from ..kernels.continuous import ou_transition
from ..kernels.diffusion import Diffusion, LinearSDE, time_grid
from ..messages import gaussian as gm
from .rules import pullback

__all__ = ["DiffusionMessages", "backward_diffusion", "aux_transitions", "grid_transitions", "pullback_linear",
           "riccati_rhs"]


class DiffusionMessages(NamedTuple):
    r"""Messages $\tilde h(t_k, \cdot)$ on the grid of one interval.

    Attributes:
        times: absolute grid times $t_0 < \dots < t_N$, ``(N + 1,)``.
        messages: [`GaussianMessage`][markovppl.messages.gaussian.GaussianMessage] with leading axis
            ``N + 1``; ``messages[N]`` is the end message $h_T$, ``messages[0]`` the pullback to the start.

    Made by [`backward_diffusion`][markovppl.backward.diffusion.backward_diffusion].

    Examples:
        >>> DiffusionMessages._fields
        ('times', 'messages')
    """

    times: jax.Array
    messages: gm.GaussianMessage


def aux_transitions(auxiliary: LinearSDE, steps):
    r"""Exact transitions $(\Phi, b, Q)$ of a constant auxiliary over cells of lengths ``steps`` ``(...)``.

    Returns ``A`` ``(..., d, d)``, ``b`` ``(..., d)``, ``Q`` ``(..., d, d)`` with
    $\tilde X_{t+\delta} \mid \tilde X_t = x \sim N(Ax + b, Q)$.

    Examples:
        >>> import jax.numpy as jnp
        >>> aux = LinearSDE(jnp.zeros((1, 1)), jnp.array([0.5]), jnp.array([[2.0]]))   # Brownian motion with drift
        >>> A, b, Q = aux_transitions(aux, jnp.array(0.1))
        >>> A.round(6).tolist(), b.round(6).tolist(), Q.round(6).tolist()
        ([[1.0]], [0.05], [[0.4]])
    """
    B, beta, sigma = auxiliary.coefficients(0.0)
    d = B.shape[-1]
    dtype = jnp.result_type(B, beta, sigma, steps)
    a = (sigma @ sigma.T).astype(dtype)
    # augmented state (x, 1): d(x, 1) = [[B, beta], [0, 0]] (x, 1) dt + [sigma; 0] dW
    top = jnp.concatenate([B.astype(dtype), beta.astype(dtype)[:, None]], 1)
    big_b = jnp.concatenate([top, jnp.zeros((1, d + 1), dtype)], 0)
    big_a = jnp.zeros((d + 1, d + 1), dtype).at[:d, :d].set(a)
    phi, q = ou_transition(-big_b, big_a, jnp.asarray(steps, dtype))
    return phi[..., :d, :d], phi[..., :d, d], la.symmetrize(q[..., :d, :d])


def _compose(first, then):
    r"""Transition of ``first`` followed by ``then``: $(A_2A_1,\ A_2b_1 + b_2,\ A_2Q_1A_2^\top + Q_2)$."""
    (A1, b1, Q1), (A2, b2, Q2) = first, then
    return A2 @ A1, A2 @ b1 + b2, la.symmetrize(A2 @ Q1 @ A2.T + Q2)


def grid_transitions(auxiliary: LinearSDE, duration, num_steps: int, time_change: bool = True):
    r"""Exact transitions $(\Phi_k, b_k, Q_k)$ of a constant auxiliary over the ``num_steps`` cells of
    [`time_grid`][markovppl.kernels.diffusion.time_grid]``(duration, num_steps, time_change)``, scalar ``duration``.

    With the time change, cell $k$ has length $(2N - 2k - 1)\varepsilon$, $\varepsilon = \ell / N^2$, so
    the transitions are $T_\varepsilon \circ T_{2\varepsilon}^{\circ m}$, $m = N - 1 - k$: one matrix
    exponential and $N$ compositions of Gaussian transitions (exact, commuting for a constant auxiliary).
    Without it every cell is $T_{\ell / N}$. Same values as ``aux_transitions`` on the cell lengths (to
    round-off), at a fraction of the cost.

    Returns ``A`` ``(N, d, d)``, ``b`` ``(N, d)``, ``Q`` ``(N, d, d)``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from markovppl.kernels.diffusion import time_grid
        >>> aux = LinearSDE(jnp.array([[-1.0, 0.5], [0.0, -0.3]]), jnp.array([0.1, 0.2]), jnp.eye(2))
        >>> A, b, Q = grid_transitions(aux, jnp.array(2.0), 5)
        >>> cells = jnp.diff(time_grid(jnp.array(2.0), 5))
        >>> bool(jnp.allclose(Q, aux_transitions(aux, cells)[2], atol=1e-6)), A.shape
        (True, (5, 2, 2))
    """
    ell = jnp.asarray(duration)
    if ell.ndim != 0:
        raise ValueError(f"grid_transitions needs a scalar duration, got shape {ell.shape} (vmap over intervals)")
    if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
    n = int(num_steps)
    if not time_change:
        one = aux_transitions(auxiliary, ell / n)
        return tuple(jnp.broadcast_to(x, (n,) + x.shape) for x in one)
    eps = aux_transitions(auxiliary, ell / (n * n))
    two_eps = _compose(eps, eps)

    def step(t, _):
        return _compose(t, two_eps), t

    _, (A, b, Q) = jax.lax.scan(step, eps, None, length=n)
    return A[::-1], b[::-1], Q[::-1]


def pullback_linear(A, b, Q, message: gm.GaussianMessage) -> gm.GaussianMessage:
    r"""$x \mapsto \int h(y) N(y; Ax + b, Q)\,dy$ through $C = I + HQ$ (no square root of $Q$, no inverse of $H$).

    Smooth in all arguments (no eigendecomposition), so gradients exist for singular or repeated-eigenvalue $Q$.

    Examples:
        >>> import jax.numpy as jnp
        >>> h = gm.gaussian_message(0.0, jnp.array([1.0]), jnp.array([[1.0]]))
        >>> m = pullback_linear(jnp.eye(1), jnp.zeros(1), jnp.eye(1), h)
        >>> m.F.tolist(), m.H.tolist()                                     # (I + HQ)^{-1}: halves F and H
        ([0.5], [[0.5]])
    """
    H, F, c = message.H, message.F, message.c
    d = H.shape[-1]
    C = jnp.eye(d, dtype=H.dtype) + H @ Q
    sol = jnp.linalg.solve(C, jnp.concatenate([H, F[:, None]], 1))
    ciH, ciF = la.symmetrize(sol[:, :d]), sol[:, d]
    _, logdet = jnp.linalg.slogdet(C)
    c_new = c - 0.5 * logdet + 0.5 * F @ (Q @ ciF) + b @ ciF - 0.5 * b @ (ciH @ b)
    return gm.GaussianMessage(c_new, A.T @ (ciF - ciH @ b), la.symmetrize(A.T @ ciH @ A))


def riccati_rhs(auxiliary: LinearSDE, t, message: gm.GaussianMessage) -> gm.GaussianMessage:
    r"""Time derivatives $(\dot c, \dot F, \dot H)$ of the message at time ``t`` (exponent convention).

    Examples:
        >>> import jax.numpy as jnp
        >>> aux = LinearSDE(jnp.zeros((1, 1)), jnp.zeros(1), jnp.eye(1))
        >>> d = riccati_rhs(aux, 0.0, gm.gaussian_message(0.0, jnp.array([2.0]), jnp.array([[1.0]])))
        >>> float(d.c), d.F.tolist(), d.H.tolist()                 # 1/2 tr(H) - 1/2 F'F;  H F;  H H
        (-1.5, [2.0], [[1.0]])
    """
    B, beta, sigma = auxiliary.coefficients(t)
    a = sigma @ sigma.T
    H, F = message.H, message.F
    aF = a @ F
    dH = -B.T @ H - H @ B + H @ a @ H
    dF = -B.T @ F + H @ aF + H @ beta
    dc = -beta @ F + 0.5 * jnp.sum(a * H) - 0.5 * F @ aF
    return gm.GaussianMessage(dc, dF, la.symmetrize(dH))


def _rk4_step(auxiliary, t1, t0, m: gm.GaussianMessage) -> gm.GaussianMessage:
    """One RK4 step of the Riccati ODEs from ``t1`` back to ``t0`` (step ``t0 - t1 < 0``)."""
    h = t0 - t1
    f = lambda t, y: riccati_rhs(auxiliary, t, y)
    add = lambda y, k, s: jax.tree.map(lambda u, v: u + s * v, y, k)
    k1 = f(t1, m)
    k2 = f(t1 + 0.5 * h, add(m, k1, 0.5 * h))
    k3 = f(t1 + 0.5 * h, add(m, k2, 0.5 * h))
    k4 = f(t0, add(m, k3, h))
    out = jax.tree.map(lambda y, a, b, c, d: y + h / 6.0 * (a + 2.0 * b + 2.0 * c + d), m, k1, k2, k3, k4)
    return out._replace(H=la.symmetrize(out.H))


def backward_diffusion(kernel: Diffusion, message: gm.GaussianMessage, start_time=0.0) -> DiffusionMessages:
    r"""Messages of the auxiliary on the grid of one interval $[t_s, t_s + \ell]$ (scalar ``duration``).

    Args:
        kernel: [`Diffusion`][markovppl.kernels.diffusion.Diffusion] with a scalar ``duration``.
        message: $h$ at the end of the interval (e.g. an observation's leaf message fused with what
            lies beyond).
        start_time: absolute time $t_s$ of the interval's start (matters for time-dependent coefficients).

    Returns:
        [`DiffusionMessages`][markovppl.backward.diffusion.DiffusionMessages] on the ``N + 1`` grid points.

    Examples:
        >>> import jax.numpy as jnp
        >>> aux = LinearSDE(jnp.zeros((1, 1)), jnp.zeros(1), jnp.eye(1))               # Brownian auxiliary
        >>> k = Diffusion(lambda t, x: jnp.zeros(1), jnp.eye(1), jnp.array(1.0), aux, num_steps=8)
        >>> hT = gm.gaussian_message(0.0, jnp.array([2.0]), jnp.array([[4.0]]))         # y = 0.5, var 1/4
        >>> out = backward_diffusion(k, hT)
        >>> round(float(out.messages.H[0, 0, 0]), 6)                                   # 1 / (1/4 + 1)
        0.8
    """
    ell = jnp.asarray(kernel.duration)
    if ell.ndim != 0:
        raise ValueError(f"backward_diffusion needs a scalar duration, got shape {ell.shape} (vmap over intervals)")
    dtype = jnp.result_type(message.H, ell)
    offsets = time_grid(ell.astype(dtype), kernel.num_steps, kernel.time_change)
    times = jnp.asarray(start_time, dtype) + offsets
    aux = kernel.auxiliary
    if kernel.exact_messages:
        A, b, Q = grid_transitions(aux, ell.astype(dtype), kernel.num_steps, kernel.time_change)

        def step(m, k):
            new = pullback_linear(k[0], k[1], k[2], m)
            return new, new

        _, ms = jax.lax.scan(step, message, (A, b, Q), reverse=True)
    else:
        def step(m, tt):
            new = _rk4_step(aux, tt[1], tt[0], m)
            return new, new

        _, ms = jax.lax.scan(step, message, (times[:-1], times[1:]), reverse=True)
    msgs = jax.tree.map(lambda a, e: jnp.concatenate([a, e[None]], 0), ms, message)
    return DiffusionMessages(times, msgs)


@pullback.register
def _(kernel: Diffusion, message: gm.GaussianMessage):
    r"""Pullback of $h$ through the auxiliary of a diffusion edge with a scalar ``duration`` started at time 0
    (use [`backward_diffusion`][markovppl.backward.diffusion.backward_diffusion] for the grid of messages or
    another start time)."""
    out = backward_diffusion(kernel, message)
    return jax.tree.map(lambda x: x[0], out.messages)
