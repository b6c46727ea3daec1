"""What every Gibbs-block kernel of markovppl shares (particle Gibbs, pCN, random walk)."""

from __future__ import annotations

import copy

from numpyro.infer.mcmc import MCMCKernel


class GibbsBlock(MCMCKernel):
    """An ``MCMCKernel`` over a NumPyro model (``self._model``) whose sites are stored in their own
    (constrained) space, so it can serve as a block of ``numpyro.infer.Gibbs``."""

    @property
    def model(self):
        return self._model

    def wrap_model(self, wrapper):
        kernel = copy.copy(self)
        kernel._model = wrapper(self._model)
        return kernel

    def get_constrain_fn(self, model_args, model_kwargs):
        """Identity: values are stored as they are."""
        return lambda z: z
