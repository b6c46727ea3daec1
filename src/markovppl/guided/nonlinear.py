r"""Guiding rule of the nonlinear Gaussian kernel $x_t \mid x \sim N(\mu(x), Q(x))$.

With the target's backward message $\tilde h(y) = \exp(c + F^\top y - \tfrac12 y^\top H y)$ (pulled back
through the auxiliary), the guided kernel is the true kernel tilted by $\tilde h$:

$$Q^\circ = (Q(x)^{-1} + H)^{-1} = (I + Q(x)H)^{-1}Q(x),\qquad
  \mu^\circ = (I + Q(x)H)^{-1}\big(\mu(x) + Q(x)F\big),$$

and the log-weight is $\log w = \ell(\mu(x), Q(x)) - \ell(\tilde A x + \tilde b, \tilde Q)$ with

$$\ell(m, S) = -\tfrac12\log\det(I + HS) + \tfrac12 F^\top S(I+HS)^{-1}F + m^\top (I+HS)^{-1}F
  - \tfrac12 m^\top (I+HS)^{-1} H m ,$$

i.e. $\ell(m, S) = \log\int\tilde h\,dN(m, S) - c$, computed by
[`condition`][markovppl.messages.gaussian.condition] through a square root of $S$ (``H`` is never
inverted; the constant $c$ cancels). Registered on import of ``markovppl.guided``.
"""

from __future__ import annotations

from .. import _linalg as la
from ..kernels.nonlinear import NonlinearGaussian
from ..messages import gaussian as gm
from .rules import guide

__all__: list[str] = []


@guide.register
def _(kernel: NonlinearGaussian, message: gm.GaussianMessage, x, noise):
    aux = kernel.auxiliary
    if aux.cov_sqrt is None:
        aux = aux.prepared()
    cond = gm.condition(message, kernel.mean(x), kernel.cov_sqrt(x))
    y = cond.mean + la.matvec(cond.noise_factor, noise)
    tilde = gm.condition(message, la.matvec(aux.A, x) + aux.b, aux.cov_sqrt)
    return y, cond.log_norm - tilde.log_norm
