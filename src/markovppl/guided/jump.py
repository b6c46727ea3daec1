r"""Guiding rule of the continuous-time Markov chain kernel: the state at the end of the edge.

$$P^\circ[x, y] = \frac{e^{\ell Q}[x, y]\, h(y)}{(e^{\ell Q} h)(x)},$$

drawn by the Gumbel-max trick as for [`Categorical`][markovppl.kernels.finite.Categorical]; the log-weight is
zero (the message was pulled back through the same matrix). The continuous path between the two
ends, given both, is drawn exactly by [`sample_bridge`][markovppl.jump.bridge.sample_bridge].
Registered on import of ``markovppl.guided``.
"""

from __future__ import annotations

from ..kernels.finite import Categorical
from ..kernels.jump import JumpProcess
from ..messages import categorical as cm
from .rules import guide

__all__: list[str] = []


@guide.register
def _(kernel: JumpProcess, message: cm.CategoricalMessage, x, noise):
    return guide(Categorical(kernel.transition_matrix()), message, x, noise)
