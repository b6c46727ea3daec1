r"""ArviZ output for fitted markovppl models."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from ..infer.latent import is_tree_site, markov_sites, posterior_latents
from . import _arviz_compat as compat

__all__ = ["to_inference_data"]


def _batch_dims(name: str, ndim: int) -> list[str]:
    if ndim == 0:
        return []
    return ["sequence"] if ndim == 1 else [f"sequence_{i}" for i in range(ndim)]


def to_inference_data(mcmc, rng_key=None, *, coords: dict | None = None, dims: dict | None = None,
                      posterior_predictive: bool = True) -> Any:
    r"""Convert a fitted ``numpyro.infer.MCMC`` to ArviZ, with latent paths and pointwise terms.

    Groups:

    * ``posterior`` — the parameters (sample sites of the model; no latent paths);
    * ``latent_posterior`` — for each observed Markov site, one exact posterior draw of its latent
      path per posterior draw (forward guiding), dims ``(chain, draw, [sequence,] time[, state])``;
      the variable has the site's name;
    * ``log_likelihood`` — per-time one-step-ahead predictive log densities
      $\log p(y_t \mid y_{0:t-1}, \theta)$ with dim ``time`` (steps missing in every sequence are left
      out). These are *sequential* predictive terms: they sum to the log-likelihood and are the right
      input for leave-future-out cross-validation. ``az.loo`` on them does **not** compute
      leave-one-out cross-validation for dependent data (it treats each term as exchangeable);
    * ``posterior_predictive`` — a replicate of each observed Markov sequence per draw;
    * tree sites ([`GaussianTree`][markovppl.families.tree.GaussianTree],
      [`DiscreteTree`][markovppl.families.tree.DiscreteTree]): the latent draw has dims
      ``(chain, draw, node[, state])`` with the node names as coordinates, and ``log_likelihood`` holds
      the sequential terms $\log p(y_i \mid y_{<i}, \theta)$ over the observed nodes (dim
      ``observed_node``); with several tree sites the dims are prefixed by the site name;
    * ``observed_data``, ``sample_stats`` — as ArviZ makes them from NumPyro.

    Args:
        mcmc: a ``numpyro.infer.MCMC`` after ``run``.
        rng_key: key for the latent draws and replicates (default ``PRNGKey(0)``).
        coords: extra ArviZ coordinates (e.g. ``{"time": years}``).
        dims: extra ArviZ dimension names per variable.
        posterior_predictive: also simulate replicates.

    Returns:
        ``arviz.InferenceData`` (ArviZ 0.x) or ``xarray.DataTree`` (ArviZ 1.x).

    Examples:
        >>> import jax, jax.numpy as jnp, numpyro, numpyro.distributions as dist
        >>> from numpyro.infer import MCMC, NUTS
        >>> import markovppl as mp
        >>> def model(y):
        ...     rate = numpyro.sample("rate", dist.Gamma(2.0, 0.5).expand([2]).to_event(1))
        ...     numpyro.sample("y", mp.HMM(jnp.ones(2) / 2, jnp.array([[0.9, 0.1], [0.1, 0.9]]),
        ...                                dist.Poisson(rate)), obs=y)
        >>> mcmc = MCMC(NUTS(model), num_warmup=20, num_samples=10, progress_bar=False)
        >>> mcmc.run(jax.random.PRNGKey(0), y=jnp.array([1, 2, 9, 8, 1]))
        >>> idata = mp.to_inference_data(mcmc)
        >>> tuple(mp.diagnostics.get_group(idata, "latent_posterior")["y"].shape)
        (1, 10, 5)
    """
    rng_key = jax.random.PRNGKey(0) if rng_key is None else rng_key
    model, args, kwargs = mcmc.sampler.model, mcmc._args, mcmc._kwargs
    grouped = mcmc.get_samples(group_by_chain=True)
    num_chains, num_draws = jax.tree.leaves(grouped)[0].shape[:2]
    flat = jax.tree.map(lambda x: x.reshape((num_chains * num_draws,) + x.shape[2:]), grouped)

    sites = markov_sites(model, jax.tree.map(lambda x: x[0], flat), args, kwargs)
    all_dims, coords = dict(dims or {}), dict(coords or {})
    trees = {name: fn for name, (fn, _) in sites.items() if is_tree_site(fn)}
    node_dims = {}
    for name, (fn, obs) in sites.items():
        event = ["obs_dim"] * (len(fn.event_shape) - 1)
        if name in trees:
            if np.ndim(obs) != len(fn.event_shape):
                raise ValueError(f"site {name!r}: to_inference_data takes one tree data set per site (no batch axes)")
            node, observed = ("node", "observed_node") if len(trees) == 1 else (f"{name}_node", f"{name}_observed_node")
            node_dims[name] = (node, observed)
            coords.setdefault(node, list(fn.node_names))
            coords.setdefault(observed, list(fn.observed_names))
            all_dims.setdefault(name, [observed] + event)
            continue
        batch_ndim = np.ndim(obs) - len(fn.event_shape)
        all_dims.setdefault(name, _batch_dims(name, batch_ndim) + ["time"] + event)
    idata = compat.from_numpyro(mcmc, log_likelihood=False, coords=coords or None, dims=all_dims)

    draws = posterior_latents(rng_key, model, flat, args, kwargs)
    reshape = lambda x: np.asarray(x).reshape((num_chains, num_draws) + x.shape[1:])
    latent, loglik, replicate = {}, {}, {}
    for name, out in draws.items():
        if name in node_dims:
            node, observed = node_dims[name]
            latent[name] = (("chain", "draw", node, *["state"] * out.event_ndim_latent), reshape(out.latent))
            loglik[name] = (("chain", "draw", observed), reshape(out.log_predictive))
            replicate[name] = (("chain", "draw", *all_dims[name]), reshape(out.replicate))
            continue
        seq_dims = all_dims[name][: all_dims[name].index("time") + 1]
        latent[name] = (("chain", "draw", *seq_dims, *["state"] * out.event_ndim_latent), reshape(out.latent))
        keep = ~np.asarray(out.missing).reshape(-1, out.missing.shape[-1]).all(0)
        loglik[name] = (("chain", "draw", *seq_dims), reshape(out.log_predictive)[..., keep])
        replicate[name] = (("chain", "draw", *all_dims[name]), reshape(out.replicate))
    time_coord = coords.get("time")
    if latent:
        base = {"time": time_coord} if time_coord is not None else {}
        base.update({d: coords[d] for dims_ in node_dims.values() for d in dims_})
        compat.add_group(idata, "latent_posterior", latent, coords=base)
        kept = {"time": np.asarray(time_coord)[keep]} if time_coord is not None and len(draws) == 1 and not node_dims else {}
        kept.update({d: coords[d] for dims_ in node_dims.values() for d in dims_})
        compat.add_group(idata, "log_likelihood", loglik, coords=kept)
        if posterior_predictive:
            compat.add_group(idata, "posterior_predictive", replicate, coords=base)
    return idata
