r"""Markov jump processes: exact endpoint-conditioned paths (uniformisation) and the guided CTMC of BFFG."""

from .bridge import JumpPath, occupation_times, path_state_at, sample_bridge, suggest_max_jumps, transition_counts
from .guided import (DenseGuiding, GuidedJumpPath, ISEstimate, ProductGuiding, dense_guiding, dense_guiding_times, dense_rates,
                     guided_ctmc_evidence, guided_ctmc_path, guiding_grid, is_estimate, product_guiding,
                     product_guiding_times)

__all__ = [
    "DenseGuiding", "GuidedJumpPath", "ISEstimate", "JumpPath", "ProductGuiding", "dense_guiding", "dense_guiding_times", "dense_rates",
    "guided_ctmc_evidence", "guided_ctmc_path", "guiding_grid", "is_estimate", "occupation_times", "path_state_at", "product_guiding", "product_guiding_times",
    "sample_bridge", "suggest_max_jumps", "transition_counts",
]
