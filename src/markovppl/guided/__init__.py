r"""Forward guiding: the guided process $\kappa^\circ \propto \kappa h$ and its log-weights."""

from . import diffusion as _diffusion  # registers the Diffusion guiding rule
from . import jump as _jump  # registers the JumpProcess guiding rule
from . import nonlinear as _nonlinear  # registers the NonlinearGaussian guiding rule
from .forward import GuidedPath, forward_guide, sample_noise
from .rules import guide, guide_initial

__all__ = ["GuidedPath", "forward_guide", "guide", "guide_initial", "sample_noise"]
