r"""Transition and observation kernels: small pytrees whose array leaves are parameters."""

from .continuous import BrownianMotion, OrnsteinUhlenbeck
from .finite import Categorical, Emission
from .gaussian import LinearGaussian
from .jump import JumpProcess, generator_from_rates
from .time import TimeVarying, time_varying

__all__ = ["BrownianMotion", "OrnsteinUhlenbeck", "Categorical", "Emission", "JumpProcess", "LinearGaussian", "TimeVarying", "generator_from_rates", "time_varying"]
