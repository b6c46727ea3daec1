r"""Backward rule of the nonlinear Gaussian kernel: the pullback through its linear-Gaussian auxiliary.

$$\tilde h_\text{parent}(x) = \int \tilde h_\text{child}(y)\, N(y; \tilde A x + \tilde b, \tilde Q)\, dy ,$$

the exact linear-Gaussian rule applied to ``kernel.auxiliary`` of a
[`NonlinearGaussian`][markovppl.kernels.nonlinear.NonlinearGaussian]. The messages are therefore
approximate ($\tilde h \neq h$); forward guiding corrects for it with its log-weights
([`markovppl.guided.nonlinear`][markovppl.guided.nonlinear]). Registered on import of ``markovppl.backward``.
"""

from __future__ import annotations

from ..kernels.nonlinear import NonlinearGaussian
from ..messages import gaussian as gm
from .parallel import _elements
from .rules import pullback

__all__: list[str] = []


@pullback.register
def _(kernel: NonlinearGaussian, message: gm.GaussianMessage):
    return pullback(kernel.auxiliary, message)


@_elements.register
def _(transition: NonlinearGaussian, num_steps: int):
    """The parallel-in-time filter runs on the auxiliary too."""
    return _elements(transition.auxiliary, num_steps)
