r"""NumPyro glue: recovery of latent paths and pointwise predictive terms after inference."""

from .latent import SiteDraws, markov_sites, posterior_latents

__all__ = ["SiteDraws", "posterior_latents"]
