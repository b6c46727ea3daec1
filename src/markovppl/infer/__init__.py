r"""NumPyro glue: recovery of latent paths and pointwise predictive terms after inference."""

from .latent import SiteDraws, posterior_latents
from .particle_gibbs import (PARTICLE_GIBBS_FIELDS, ParticleGibbs, ParticleGibbsKernelState, particle_gibbs_fn,
                             particle_gibbs_inference_data, particle_gibbs_nuts)
from .particle_marginal import PMMHResult, particle_factor, pmmh
from .pcn import (PCN, PCN_FIELDS, PCN_RW_FIELDS, PCNState, RandomWalk, RandomWalkState, pcn_gibbs_fn,
                  pcn_inference_data, pcn_nuts, pcn_random_walk)

__all__ = ["PARTICLE_GIBBS_FIELDS", "PMMHResult", "ParticleGibbs", "ParticleGibbsKernelState", "SiteDraws",
           "particle_factor", "particle_gibbs_fn", "particle_gibbs_inference_data", "particle_gibbs_nuts", "pmmh",
           "posterior_latents", "PCN", "PCN_FIELDS", "PCN_RW_FIELDS", "PCNState", "RandomWalk", "RandomWalkState",
           "pcn_gibbs_fn", "pcn_inference_data", "pcn_nuts", "pcn_random_walk"]
