r"""markovppl: latent-Markov models as first-class NumPyro distributions.

Backward filtering forward guiding (BFFG) gives exact evidence, smoothing and posterior path draws for
finite-state and linear-Gaussian chains; see the documentation for the model families.
"""

from . import backward, conformal, datasets, diagnostics, guided, infer, kernels, messages, particles
from .backward import backward_filter, backward_filter_parallel
from .diagnostics import to_inference_data
from . import jump
from .families.mjp import MarkovJumpProcess
from .families.sde import DiscretelyObservedSDE
from . import graph
from . import ips
from .families import HMM, DiffusionTree, DiscreteTree, GaussianTree, GuidedDAG, LinearGaussianSSM, stationary_distribution
from .guided import forward_guide
from .kernels import time_varying

__version__ = "0.1.0"

__all__ = [
    "DiffusionTree",
    "DiscreteTree",
    "DiscretelyObservedSDE",
    "GaussianTree",
    "GuidedDAG",
    "HMM",
    "LinearGaussianSSM",
    "MarkovJumpProcess",
    "backward",
    "backward_filter",
    "backward_filter_parallel",
    "conformal",
    "datasets",
    "diagnostics",
    "forward_guide",
    "graph",
    "guided",
    "infer",
    "ips",
    "jump",
    "kernels",
    "messages",
    "particles",
    "stationary_distribution",
    "time_varying",
    "to_inference_data",
]
