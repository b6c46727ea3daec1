r"""Backward filtering: the BFFG rules and their drivers (sequential and parallel-in-time scans)."""

from . import diffusion as _diffusion  # registers the Diffusion pullback
from . import jump as _jump  # registers the JumpProcess pullback
from . import nonlinear as _nonlinear  # registers the NonlinearGaussian pullback
from .parallel import backward_filter_parallel
from .rules import fuse, leaf, marginalize, pullback
from .sequential import BackwardResult, backward_filter

__all__ = ["BackwardResult", "backward_filter", "backward_filter_parallel", "fuse", "leaf", "marginalize", "pullback"]
