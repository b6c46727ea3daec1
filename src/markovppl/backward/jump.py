r"""Backward rule of the continuous-time Markov chain kernel: the pullback through $P = e^{\ell Q}$.

$$h_\text{parent}(x) = \sum_y e^{\ell Q}[x, y]\, h_\text{child}(y),$$

the categorical pullback of [`rules.pullback`][markovppl.backward.rules.pullback] applied to the transition
matrix, so the message keeps its log-constant (Felsenstein pruning on a tree, the HMM backward
recursion on a chain). Registered on import of ``markovppl.backward``.
"""

from __future__ import annotations

from ..kernels.finite import Categorical
from ..kernels.jump import JumpProcess
from ..messages import categorical as cm
from .rules import pullback

__all__: list[str] = []


@pullback.register
def _(kernel: JumpProcess, message: cm.CategoricalMessage):
    return pullback(Categorical(kernel.transition_matrix()), message)
