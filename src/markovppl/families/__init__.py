r"""Ready-made model families: distributions over observation sequences built on the BFFG core."""

from .dag import GuidedDAG
from .diffusion_tree import DiffusionTree
from .hmm import HMM, HMMFilter, HMMForecast, HMMPosterior, stationary_distribution
from .lgssm import LGSSMFilter, LGSSMForecast, LGSSMPosterior, LinearGaussianSSM
from .mjp import MarkovJumpProcess, MJPForecast
from .sde import DiscretelyObservedSDE
from .tree import DiscreteTree, GaussianTree, TreePosterior

__all__ = [
    "HMM", "HMMFilter", "HMMForecast", "HMMPosterior", "LGSSMFilter", "LGSSMForecast", "LGSSMPosterior",
    "LinearGaussianSSM", "MarkovJumpProcess", "MJPForecast", "stationary_distribution", "DiscreteTree", "GaussianTree", "TreePosterior",
    "GuidedDAG", "DiffusionTree", "DiscretelyObservedSDE",
]
