r"""Conformal prediction of hidden states with exact finite-sample coverage (block conformal HMM).

[`BlockConformalHMM`][markovppl.conformal.estimator.BlockConformalHMM] gives prediction sets for the next
$H$ hidden states of a hidden Markov model from one fully observed calibration sequence, with
marginal coverage $\ge 1 - \alpha$ under any mixture of HMMs (exactly $1 - \alpha$ with randomised
tie-breaking). The building blocks are public: block decompositions and permutations
([`markovppl.conformal.blocks`][markovppl.conformal.blocks]), permutation-invariant estimates
([`markovppl.conformal.estimation`][markovppl.conformal.estimation]) and window scores
([`markovppl.conformal.scores`][markovppl.conformal.scores]).
"""

from . import blocks, estimation, scores
from .estimation import EmissionFamily, categorical_emission, normal_emission, poisson_emission
from .estimator import BlockConformalHMM
from .scores import filter_score, smoother_score

__all__ = [
    "BlockConformalHMM",
    "EmissionFamily",
    "blocks",
    "categorical_emission",
    "estimation",
    "filter_score",
    "normal_emission",
    "poisson_emission",
    "scores",
    "smoother_score",
]
