r"""Particle methods: resampling schemes, Feynman–Kac models and the particle filter (SMC).

Monte Carlo counterparts of the exact filters, for checking them and for models without exact
recursions: [`particle_filter`][markovppl.particles.particle_filter] runs SMC on a
[`FeynmanKac`][markovppl.particles.FeynmanKac] model, e.g. the bootstrap model of an ``HMM`` or a
``LinearGaussianSSM`` ([`bootstrap_hmm`][markovppl.particles.bootstrap_hmm],
[`bootstrap_lgssm`][markovppl.particles.bootstrap_lgssm]).
"""

from .csmc import CSMCInfo, ParticleGibbsInfo, ParticleGibbsState, conditional_smc, particle_gibbs_init, particle_gibbs_step
from .feynman_kac import FeynmanKac, bootstrap_hmm, bootstrap_lgssm
from .learning import LearningResult, fisher_score_functional, markov_score_climbing, sa_mle, score_paris
from .paris import ConditionalPaRISResult, PaRISResult, conditional_paris, paris_smoother
from .proposals import guided_hmm, guided_lgssm, proposal_model
from .ppg import (PPGInfo, PPGResult, PPGState, parisian_particle_gibbs, path_functional, ppg_init, ppg_step,
                  trace_path)
from .resampling import conditional, multinomial, normalized_weights, residual, stratified, systematic
from .smc import ParticleFilterResult, particle_filter
from .state_space import MarkovPathPrior, ObservationLaw, StateSpaceModel

__all__ = [
    "LearningResult",
    "fisher_score_functional",
    "markov_score_climbing",
    "sa_mle",
    "score_paris",
    "PPGInfo",
    "PPGResult",
    "PPGState",
    "parisian_particle_gibbs",
    "path_functional",
    "ppg_init",
    "ppg_step",
    "trace_path",
    "ConditionalPaRISResult",
    "PaRISResult",
    "conditional_paris",
    "paris_smoother",
    "CSMCInfo",
    "ParticleGibbsInfo",
    "ParticleGibbsState",
    "conditional_smc",
    "particle_gibbs_init",
    "particle_gibbs_step",
    "FeynmanKac",
    "MarkovPathPrior",
    "ObservationLaw",
    "ParticleFilterResult",
    "StateSpaceModel",
    "bootstrap_hmm",
    "bootstrap_lgssm",
    "conditional",
    "guided_hmm",
    "guided_lgssm",
    "multinomial",
    "normalized_weights",
    "particle_filter",
    "proposal_model",
    "residual",
    "stratified",
    "systematic",
]
