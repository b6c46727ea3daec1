r"""Transition and observation kernels: small pytrees whose array leaves are parameters."""

from .continuous import BrownianMotion, OrnsteinUhlenbeck
from .diffusion import Diffusion, LinearSDE
from .finite import Categorical, Emission
from .gamma import GammaProcess
from .gaussian import LinearGaussian
from .jump import JumpProcess, generator_from_rates
from .nonlinear import NonlinearGaussian, linearize
from .time import TimeVarying, time_varying

__all__ = ["BrownianMotion", "OrnsteinUhlenbeck", "Diffusion", "LinearSDE", "Categorical", "Emission", "GammaProcess", "JumpProcess", "LinearGaussian", "NonlinearGaussian", "TimeVarying", "generator_from_rates", "linearize", "time_varying"]
