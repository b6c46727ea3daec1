r"""Transition and observation kernels: small pytrees whose array leaves are parameters."""

from .finite import Categorical, Emission
from .gaussian import LinearGaussian
from .time import TimeVarying, time_varying

__all__ = ["Categorical", "Emission", "LinearGaussian", "TimeVarying", "time_varying"]
