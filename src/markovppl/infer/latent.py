r"""Recover latent paths, pointwise predictive densities and replicates for every posterior draw.

Markov families are observed NumPyro sample sites whose ``log_prob`` marginalises the latent path.
After MCMC on the parameters, this module replays the model at each posterior draw and, for each
such site, draws one exact posterior path (forward guiding), computes the one-step-ahead predictive
log densities $\log p(y_t \mid y_{0:t-1}, \theta)$ and simulates a posterior-predictive replicate.
Tree families ([`GaussianTree`][markovppl.families.tree.GaussianTree],
[`DiscreteTree`][markovppl.families.tree.DiscreteTree]) give a draw of every node instead of a path and
the sequential predictive terms $\log p(y_i \mid y_{<i}, \theta)$ over their observed nodes.
Everything is vectorised over draws with ``jax.vmap``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
from numpyro import handlers

from ..families._sequence import MarkovSequence
from ..families.tree import DiscreteTree, GaussianTree

_FAMILIES = (MarkovSequence, GaussianTree, DiscreteTree)

__all__ = ["SiteDraws", "posterior_latents"]


class SiteDraws(NamedTuple):
    r"""Per-draw outputs for one observed Markov site (leading axis: draws).

    Attributes:
        latent: one exact draw of the latent path per posterior draw.
        log_predictive: $\log p(y_t \mid y_{0:t-1}, \theta)$, ``(draws, *batch, T)``; 0 at missing steps
            (tree families: over the observed nodes, ``(draws, num_observed)``).
        replicate: a posterior-predictive replicate of the observed sequence.
        missing: missing steps of the observed sequence, ``(*batch, T)``.
        event_ndim_latent: number of trailing latent axes after time (0 for finite states, 1 for vectors).

    Made by [`posterior_latents`][markovppl.infer.latent.posterior_latents] (its example shows one in use).

    Examples:
        >>> SiteDraws._fields
        ('latent', 'log_predictive', 'replicate', 'missing', 'event_ndim_latent')
    """

    latent: jax.Array
    log_predictive: jax.Array
    replicate: jax.Array
    missing: jax.Array
    event_ndim_latent: int


def _markov_base(fn):
    while not isinstance(fn, _FAMILIES) and hasattr(fn, "base_dist"):
        fn = fn.base_dist
    return fn if isinstance(fn, _FAMILIES) else None


def is_tree_site(fn) -> bool:
    """Whether a Markov site's law is a tree family (latent rows are nodes, not time steps)."""
    return isinstance(fn, (GaussianTree, DiscreteTree))


def _missing(fn, obs):
    if isinstance(fn, GaussianTree):
        return jax.numpy.isnan(obs).all(-1)
    if isinstance(fn, DiscreteTree):
        return obs < 0
    return fn.missing_steps(obs)


def markov_sites(model: Callable, sample: dict, args=(), kwargs=None, rng_key=None) -> dict[str, Any]:
    """Trace ``model`` at one parameter draw; return ``{name: (distribution, observed value)}``."""
    rng_key = jax.random.PRNGKey(0) if rng_key is None else rng_key
    tr = handlers.trace(handlers.substitute(handlers.seed(model, rng_key), data=sample)).get_trace(*args, **(kwargs or {}))
    out = {}
    for name, site in tr.items():
        if site["type"] == "sample" and site["is_observed"]:
            base = _markov_base(site["fn"])
            if base is not None:
                out[name] = (base, site["value"])
    return out


def posterior_latents(rng_key, model: Callable, samples: dict, args=(), kwargs=None) -> dict[str, SiteDraws]:
    """Latent paths, predictive log densities and replicates for every draw in ``samples``.

    Args:
        rng_key: PRNG key.
        model: the NumPyro model that was fitted.
        samples: posterior draws, each with a leading draw axis (``mcmc.get_samples()``).
        args: the model's positional arguments (as given to ``mcmc.run``).
        kwargs: the model's keyword arguments (as given to ``mcmc.run``).

    Returns:
        ``{site_name: SiteDraws}`` for every observed site whose law is a markovppl sequence family.

    Examples:
        >>> import jax, jax.numpy as jnp, numpyro, numpyro.distributions as dist
        >>> import markovppl as mp
        >>> def model(y):
        ...     rate = numpyro.sample("rate", dist.Gamma(2.0, 0.5).expand([2]).to_event(1))
        ...     numpyro.sample("y", mp.HMM(jnp.ones(2) / 2, jnp.array([[0.9, 0.1], [0.1, 0.9]]),
        ...                                dist.Poisson(rate)), obs=y)
        >>> samples = {"rate": jnp.array([[1.0, 8.0], [2.0, 9.0], [1.5, 7.0]])}   # e.g. mcmc.get_samples()
        >>> out = posterior_latents(jax.random.PRNGKey(0), model, samples, kwargs={"y": jnp.array([1, 2, 9, 8, 1])})
        >>> list(out), out["y"].latent.shape, out["y"].log_predictive.shape   # (draws, T)
        (['y'], (3, 5), (3, 5))
    """
    num_draws = jax.tree.leaves(samples)[0].shape[0]
    first = jax.tree.map(lambda x: x[0], samples)
    sites = markov_sites(model, first, args, kwargs)
    if not sites:
        return {}

    def _one(key, sample):
        found = markov_sites(model, sample, args, kwargs, key)
        out = {}
        for i, name in enumerate(sorted(found)):
            fn, obs = found[name]
            k_path, k_rep = jax.random.split(jax.random.fold_in(key, i))
            if is_tree_site(fn):
                replicate = fn.sample(k_rep)
            else:
                steps = obs.shape[obs.ndim - 1 - len(fn.event_shape[1:])]
                replicate = fn.with_num_steps(steps).sample(k_rep)
            out[name] = (fn.posterior_sample(k_path, obs), fn.log_predictive(obs), replicate)
        return out

    keys = jax.random.split(rng_key, num_draws)
    per_draw = jax.jit(jax.vmap(_one))(keys, samples)
    result = {}
    for name, (fn, obs) in sites.items():
        latent, log_pred, replicate = per_draw[name]
        result[name] = SiteDraws(latent, log_pred, replicate, _missing(fn, obs), latent.ndim - log_pred.ndim)
    return result
