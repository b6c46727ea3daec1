r"""The fitting pipeline behind ``markovppl fit`` and ``markovppl demo``: NUTS, ArviZ, files, plots."""

from __future__ import annotations

import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import MCMC, NUTS

from . import diagnostics

__all__ = ["FitResult", "fit_model"]


class FitResult(NamedTuple):
    """What [`fit_model`][markovppl.fit.fit_model] returns.

    Attributes:
        mcmc: the ``numpyro.infer.MCMC`` object after ``run``.
        idata: ArviZ output of [`to_inference_data`][markovppl.diagnostics.inference_data.to_inference_data].
        summary: posterior summary (a ``pandas.DataFrame``).
        divergences: number of divergent transitions.
        files: paths of the files written.

    Examples:
        >>> FitResult._fields          # see fit_model for a run
        ('mcmc', 'idata', 'summary', 'divergences', 'files')
    """

    mcmc: MCMC
    idata: object
    summary: object
    divergences: int
    files: list


def fit_model(model, data: dict, out_dir: str, *, name: str = "model", var_names=None, plots=None,
              nuts_options: dict | None = None, num_warmup: int = 500, num_samples: int = 500,
              num_chains: int = 2, seed: int = 0, progress_bar: bool = True,
              particle_gibbs: dict | None = None, pcn: dict | None = None) -> FitResult:
    """Run NUTS on ``model(y=data["y"])`` and write ``{name}_idata.nc``, ``summary.csv``, ``trace.png``
    and the model's own plots to ``out_dir``.

    Args:
        model: NumPyro model taking the observations as ``y``.
        data: ``{"y": array, "time": array}`` (time becomes the ArviZ ``time`` coordinate).
        out_dir: output folder (created if needed).
        name: stem of the InferenceData file.
        var_names: parameters to summarise and trace-plot (default: all posterior variables).
        plots: optional ``plots(idata, data, out_dir) -> list[str]``.
        nuts_options: keyword arguments for ``numpyro.infer.NUTS``.
        num_warmup, num_samples, num_chains, seed, progress_bar: NUTS settings; chains run in parallel
            when enough devices exist (``numpyro.set_host_device_count``), else one after another.
        particle_gibbs: ``{"site": ..., "num_particles": ...}`` (and other keyword arguments of
            [`particle_gibbs_nuts`][markovppl.infer.particle_gibbs.particle_gibbs_nuts]) to move that
            latent path site by conditional SMC and the other sites by NUTS; the path then goes to the
            ``latent_posterior`` group (see
            [`particle_gibbs_inference_data`][markovppl.infer.particle_gibbs.particle_gibbs_inference_data]).
        pcn: ``{"sites": [...], "latent": [...], "parameters": "nuts" | "random_walk", ...}`` for models with
            innovation sites: pCN moves on ``sites`` ([`pcn_nuts`][markovppl.infer.pcn.pcn_nuts] or
            [`pcn_random_walk`][markovppl.infer.pcn.pcn_random_walk]; remaining keys are their options,
            ``dims`` those of the latent sites); innovations and ``latent`` sites go to ``latent_posterior``
            ([`pcn_inference_data`][markovppl.infer.pcn.pcn_inference_data]).

    Returns:
        [`FitResult`][markovppl.fit.FitResult].

    Examples:
        >>> import os, tempfile, numpy as np, numpyro, numpyro.distributions as dist
        >>> def model(y=None):
        ...     mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
        ...     numpyro.sample("y", dist.Normal(mu, 1.0).expand([3]), obs=y)
        >>> res = fit_model(model, {"y": np.array([0.1, -0.3, 0.4]), "time": np.arange(3)}, tempfile.mkdtemp(),
        ...                 num_warmup=20, num_samples=10, num_chains=1, progress_bar=False)
        >>> [os.path.basename(f) for f in res.files], res.summary.index.tolist()
        (['model_idata.nc', 'summary.csv', 'trace.png'], ['mu'])
    """
    y = jnp.asarray(data["y"])
    chain_method = "parallel" if jax.local_device_count() >= num_chains else "sequential"
    coords = {"time": np.asarray(data["time"])} if data.get("time") is not None else None
    if particle_gibbs:
        from .infer.particle_gibbs import PARTICLE_GIBBS_FIELDS, particle_gibbs_inference_data, particle_gibbs_nuts

        kernel, fields = particle_gibbs_nuts(model, **particle_gibbs, **(nuts_options or {})), PARTICLE_GIBBS_FIELDS
    elif pcn:
        from .infer.pcn import PCN_FIELDS, PCN_RW_FIELDS, pcn_inference_data, pcn_nuts, pcn_random_walk

        options = dict(pcn)
        sites, latent, dims = options.pop("sites"), options.pop("latent", ()), options.pop("dims", None)
        how = options.pop("parameters", "nuts")
        if how == "nuts":
            kernel, fields = pcn_nuts(model, sites, **options, **(nuts_options or {})), PCN_FIELDS
        elif how == "random_walk":
            kernel, fields = pcn_random_walk(model, sites, **options), PCN_RW_FIELDS
        else:
            raise ValueError(f"PCN 'parameters' must be 'nuts' or 'random_walk', got {how!r}")
    else:
        kernel, fields = NUTS(model, **(nuts_options or {})), ("diverging",)
    mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains,
                chain_method=chain_method, progress_bar=progress_bar)
    mcmc.run(jax.random.PRNGKey(seed), y=y, extra_fields=fields)
    if particle_gibbs:
        idata = particle_gibbs_inference_data(mcmc, particle_gibbs.get("site", "x"), coords=coords)
    elif pcn:
        idata = pcn_inference_data(mcmc, sites, latent=latent, coords=coords, dims=dims)
    else:
        idata = diagnostics.to_inference_data(mcmc, jax.random.PRNGKey(seed + 1), coords=coords)
    names = list(var_names) if var_names else None
    summary = diagnostics.summary(idata, var_names=names)

    os.makedirs(out_dir, exist_ok=True)
    files = [diagnostics.to_netcdf(idata, os.path.join(out_dir, f"{name}_idata.nc"))]
    summary.to_csv(os.path.join(out_dir, "summary.csv"))
    files.append(os.path.join(out_dir, "summary.csv"))
    trace = os.path.join(out_dir, "trace.png")
    diagnostics.plot_trace(idata, names, trace)
    files.append(trace)
    if plots is not None:
        files.extend(plots(idata, data, out_dir) or [])
    return FitResult(mcmc, idata, summary, diagnostics.divergences(idata), files)
