r"""Guided diffusions: the guided Euler–Maruyama scheme and its Girsanov log-weight.

With backward messages $\tilde h(t, x) = \exp(c + F^\top x - \tfrac12 x^\top Hx)$ of the auxiliary
(see [`markovppl.backward.diffusion`][markovppl.backward.diffusion]) and $r(t, x) = \nabla\log\tilde h = F(t) - H(t)x$,
the guided process is

$$dX^\circ = \big[b(t, X^\circ) + a(t, X^\circ)\, r(t, X^\circ)\big]\,dt + \sigma(t, X^\circ)\,dW,$$

and (Van der Meulen & Schauer; bffg.md §1.6) $p(y \mid x_0) = \tilde h(0, x_0)\,E^\circ[\Psi]$ with

$$\log\Psi = \int_0^T \Big[(b - \tilde b)^\top r - \tfrac12\operatorname{tr}\big((a - \tilde a)H\big)
  + \tfrac12 r^\top(a - \tilde a)r\Big](s, X^\circ_s)\,ds .$$

(The trace term has a *minus* sign; one public implementation flips it, which biases the evidence.)

**Discretisation.** On the kernel's grid $t_0 < \dots < t_N$ with cells $\delta_k = t_{k+1} - t_k$ and
standard-normal noise $z_k$ ``(w,)``:
$X_{k+1} = X_k + [b + a r]\,\delta_k + \sigma\sqrt{\delta_k}\, z_k$, all coefficients at $(t_k, X_k)$
with the message $(F_k, H_k)$ at $t_k$; the integral is the left-point sum over $k = 0..N-2$ (the last
cell is skipped, where $H$ is largest; its contribution is $O(\delta_{N-1})$, tiny on the time-changed
grid). The path is a deterministic, differentiable function of (parameters, $z$).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .. import _linalg as la
from ..backward.diffusion import DiffusionMessages, backward_diffusion
from ..kernels.diffusion import Diffusion
from ..messages import gaussian as gm
from .rules import guide

__all__ = ["guided_diffusion", "log_psi_rate"]

UNROLL = 1  # Euler steps per loop iteration (larger values cut loop overhead but lengthen compilation)


def log_psi_rate(kernel: Diffusion, t, x, message: gm.GaussianMessage):
    r"""The integrand of $\log\Psi$ at time ``t``, state ``x`` ``(d,)``, message $(F, H)$ at ``t``:
    $(b - \tilde b)^\top r - \tfrac12\operatorname{tr}((a - \tilde a)H) + \tfrac12 r^\top (a - \tilde a) r$.

    Zero when the auxiliary is the true process.

    Examples:
        >>> import jax.numpy as jnp
        >>> from markovppl.kernels.diffusion import LinearSDE
        >>> aux = LinearSDE(-jnp.eye(1), jnp.zeros(1), jnp.eye(1))
        >>> k = Diffusion(lambda t, x: -x, jnp.eye(1), jnp.array(1.0), aux)
        >>> m = gm.gaussian_message(0.0, jnp.array([1.0]), jnp.array([[2.0]]))
        >>> float(log_psi_rate(k, 0.0, jnp.array([0.3]), m))
        0.0
    """
    s = kernel.sigma(t, x)
    return _rate(kernel, t, x, s, la.matmul(s, s.T), message.F - la.matvec(message.H, x), message.H)


def _rate(kernel, t, x, s, a, r, H):
    B, beta, sig_t = kernel.auxiliary.coefficients(t)
    a_diff = a - la.matmul(sig_t, sig_t.T)
    db = kernel.b(t, x) - la.matvec(B, x) - beta
    return jnp.sum(db * r) - 0.5 * jnp.sum(a_diff * H) + 0.5 * jnp.sum(r * la.matvec(a_diff, r))


def guided_diffusion(kernel: Diffusion, messages: DiffusionMessages, x0, noise, store_path: bool = True):
    r"""Guided Euler–Maruyama over one interval and the left-point Girsanov log-weight.

    Args:
        kernel: the [`Diffusion`][markovppl.kernels.diffusion.Diffusion] (scalar ``duration``).
        messages: its grid messages from [`backward_diffusion`][markovppl.backward.diffusion.backward_diffusion].
        x0: start state ``(d,)``.
        noise: standard-normal increments ``(N, w)``.
        store_path: return the whole path ``(N + 1, d)`` (else only the end state ``(d,)``).

    Returns:
        ``(path or end state, log_weight)``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from markovppl.kernels.diffusion import LinearSDE
        >>> aux = LinearSDE(jnp.zeros((1, 1)), jnp.zeros(1), jnp.eye(1))
        >>> k = Diffusion(lambda t, x: jnp.zeros(1), jnp.eye(1), jnp.array(1.0), aux, num_steps=50)
        >>> hT = gm.gaussian_message(0.0, jnp.array([1e6]), jnp.array([[1e6]]))      # X_1 = 1 (nearly exact)
        >>> path, lw = guided_diffusion(k, backward_diffusion(k, hT), jnp.zeros(1), jnp.zeros((50, 1)))
        >>> path.shape, round(float(path[-1, 0]), 4), float(lw)                     # a Brownian bridge to 1
        ((51, 1), 1.0, 0.0)
    """
    times, msgs = messages
    n = times.shape[0] - 1
    dts = times[1:] - times[:-1]
    x0 = jnp.asarray(x0)

    def step(carry, inp):
        x, lw = carry
        k, t, dt, F, H, z = inp
        s = kernel.sigma(t, x)
        a = la.matmul(s, s.T)
        r = F - la.matvec(H, x)
        x_new = x + (kernel.b(t, x) + la.matvec(a, r)) * dt + la.matvec(s, z) * jnp.sqrt(dt)
        rate = _rate(kernel, t, x, s, a, r, H)
        lw = lw + jnp.where(k < n - 1, rate * dt, 0.0)
        return (x_new, lw), (x_new if store_path else None)

    inputs = (jnp.arange(n), times[:-1], dts, msgs.F[:-1], msgs.H[:-1], jnp.asarray(noise, x0.dtype))
    (x_end, lw), path = jax.lax.scan(step, (x0, jnp.zeros((), x0.dtype)), inputs, unroll=UNROLL)
    if store_path:
        return jnp.concatenate([x0[None], path], 0), lw
    return x_end, lw


@guide.register
def _(kernel: Diffusion, message: gm.GaussianMessage, x, noise):
    r"""Guided draw of the end state of a diffusion edge (scalar ``duration``, started at time 0) given the
    message $h$ at its end; ``noise`` ``(N, w)``. Recomputes the grid messages; returns ``(y, log_weight)``."""
    return guided_diffusion(kernel, backward_diffusion(kernel, message), x, noise, store_path=False)
