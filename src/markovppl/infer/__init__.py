r"""NumPyro glue: recovery of latent paths and pointwise predictive terms after inference."""

from .latent import SiteDraws, posterior_latents
from .particle_marginal import PMMHResult, particle_factor, pmmh

__all__ = ["PMMHResult", "SiteDraws", "particle_factor", "pmmh", "posterior_latents"]
