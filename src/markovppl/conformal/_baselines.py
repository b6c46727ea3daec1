"""Private baselines for tests and benchmarks only — not public API.

``original_anchoring_p_values`` reproduces the window anchoring of the published reference code of
Nettasinghe et al. (2023): the observed window ends at the final (reference) element while each
permuted window ends one step before it, and ``p = #{S_pi >= S_obs} / |G|``. The two windows are not
exchangeable, so coverage falls below the target on short sequences; it is kept only to show that
defect (tests) and as a benchmark baseline.
"""

from __future__ import annotations

import numpy as np


def original_anchoring_p_values(model, Y_new, rng_key=None) -> np.ndarray:
    """P-values of every candidate under the reference code's (shifted) anchoring.

    ``model`` is a fitted ``BlockConformalHMM`` (the paper uses ``blocks="pair"``); its
    ``n_permutations`` random permutations (or the exact enumeration) give the permuted windows.
    Calibration sequences need at least 2 steps.
    """
    return model._p_values(Y_new, rng_key, shift=1)


def original_anchoring_sets(model, Y_new, rng_key=None) -> np.ndarray:
    """Prediction-set masks ``p > alpha`` under the reference code's anchoring."""
    return original_anchoring_p_values(model, Y_new, rng_key) > 1.0 - float(model.confidence_level)
