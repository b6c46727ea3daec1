r"""Message families $h$ of the backward filter and their algebra (fuse, evaluate, marginalise).

Finite state spaces use [`CategoricalMessage`][markovppl.messages.categorical.CategoricalMessage] (log-vectors with a carried log-scale); linear-Gaussian
parts use [`GaussianMessage`][markovppl.messages.gaussian.GaussianMessage] in exponent form $\log h(x) = c + F^\top x - \tfrac12 x^\top H x$.
"""

from . import categorical, gaussian
from .categorical import CategoricalMessage, categorical_message
from .gaussian import GaussianMessage, gaussian_message

__all__ = ["CategoricalMessage", "GaussianMessage", "categorical", "categorical_message", "gaussian", "gaussian_message"]
