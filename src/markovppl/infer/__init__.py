r"""NumPyro glue: recovery of latent paths and pointwise predictive terms after inference."""

from .latent import SiteDraws, posterior_latents

__all__ = ["SiteDraws", "posterior_latents"]
