r"""Particle Gibbs in NumPyro: the latent path moves by conditional SMC, the parameters by NUTS.

The model writes the joint density of a [`StateSpaceModel`][markovppl.particles.StateSpaceModel]'s
path and observations with the path as a sample site:

```python
ssm = StateSpaceModel(initial, transition, emission)          # built from the parameters
x = numpyro.sample("x", ssm.path_prior(T))                    # exact log p(x | theta)
numpyro.sample("y", ssm.observation_law(x), obs=y)            # exact log p(y | x, theta)
```

NUTS then moves $\theta$ given the path (its potential is the exact $\log p(\theta, x, y)$), and
[`ParticleGibbs`][markovppl.infer.particle_gibbs.ParticleGibbs] moves the path given $\theta$ by one
conditional SMC sweep with the current path as reference
([`particle_gibbs_step`][markovppl.particles.particle_gibbs_step], backward sampling by default) on the
bootstrap Feynman–Kac model of the same ``ssm``. The CSMC sweep does not draw *exactly* from
$p(x \mid \theta, y)$ but leaves it invariant, which suffices for the Gibbs chain to target
$p(\theta, x \mid y)$ (Metropolis-within-Gibbs; Andrieu, Doucet & Holenstein 2010). The path must enter
the model only through these two sites.

Three ways to run it:

* [`particle_gibbs_nuts`][markovppl.infer.particle_gibbs.particle_gibbs_nuts] — a
  ``numpyro.infer.Gibbs`` composite of ``ParticleGibbs`` (the path) and ``NUTS`` (everything else),
  with per-sweep diagnostics (particle ESS per time step, renewal rate, CSMC log-evidence);
* ``ParticleGibbs`` alone in ``numpyro.infer.MCMC`` when the path is the only latent site;
* [`particle_gibbs_fn`][markovppl.infer.particle_gibbs.particle_gibbs_fn] — a ``gibbs_fn`` for
  ``numpyro.infer.HMCGibbs`` (no diagnostics: ``gibbs_fn`` returns values only).

[`particle_gibbs_inference_data`][markovppl.infer.particle_gibbs.particle_gibbs_inference_data] turns
the run into ArviZ groups laid out as elsewhere in markovppl: ``posterior`` = parameters,
``latent_posterior`` = the path (dims ``chain, draw, time, ...``), ``sample_stats`` = NUTS statistics
plus ``particle_ess`` (``chain, draw, time``), ``renewal_rate`` and ``csmc_log_evidence``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpyro import handlers
from numpyro.infer import NUTS

from ..particles.csmc import ParticleGibbsState, particle_gibbs_step
from ..particles.resampling import multinomial
from ..particles.state_space import MarkovPathPrior, ObservationLaw
from ._block import GibbsBlock

__all__ = ["ParticleGibbs", "ParticleGibbsKernelState", "particle_gibbs_fn", "particle_gibbs_nuts",
           "particle_gibbs_inference_data", "PARTICLE_GIBBS_FIELDS"]

#: ``extra_fields`` of ``MCMC.run`` for a [`particle_gibbs_nuts`][markovppl.infer.particle_gibbs.particle_gibbs_nuts]
#: kernel: the CSMC block's diagnostics and NUTS's divergences and acceptance probabilities.
PARTICLE_GIBBS_FIELDS = ("block_states.0.ess", "block_states.0.fraction_changed", "block_states.0.log_evidence",
                         "block_states.1.diverging", "block_states.1.accept_prob")


class ParticleGibbsKernelState(NamedTuple):
    r"""State of [`ParticleGibbs`][markovppl.infer.particle_gibbs.ParticleGibbs].

    Attributes:
        z: ``{site: path}``, the current path (leading time axis).
        rng_key: key for the next sweep.
        log_evidence: $\log\hat Z$ of the last conditional SMC sweep.
        ess: particle ESS per time step of the last sweep, ``(T,)``.
        fraction_changed: fraction of time steps at which the last sweep changed the path (renewal rate).

    Made by [`ParticleGibbs`][markovppl.infer.particle_gibbs.ParticleGibbs] (its example shows one).

    Examples:
        >>> ParticleGibbsKernelState._fields[:2]
        ('z', 'rng_key')
    """

    z: dict
    rng_key: jax.Array
    log_evidence: jax.Array
    ess: jax.Array
    fraction_changed: jax.Array


def _base(fn):
    while not isinstance(fn, (MarkovPathPrior, ObservationLaw)) and hasattr(fn, "base_dist"):
        fn = fn.base_dist
    return fn


def _trace(model, rng_key, site, path, model_args, model_kwargs):
    data = {} if path is None else {site: path}
    return handlers.trace(handlers.substitute(handlers.seed(model, rng_key), data=data)).get_trace(
        *model_args, **(model_kwargs or {}))


def _feynman_kac(tr, site, fk_fn):
    """The Feynman–Kac model of the path site's state-space model and its observations."""
    if site not in tr or tr[site]["type"] != "sample":
        raise ValueError(f"the model has no sample site {site!r}")
    prior = _base(tr[site]["fn"])
    if not isinstance(prior, MarkovPathPrior):
        raise ValueError(f"site {site!r} must be sampled from StateSpaceModel.path_prior(...), "
                         f"got {type(tr[site]['fn']).__name__}")
    ssm = prior.ssm
    obs = [s for s in tr.values() if s["type"] == "sample" and s["is_observed"]
           and isinstance(_base(s["fn"]), ObservationLaw) and _base(s["fn"]).ssm is ssm]
    if len(obs) != 1:
        raise ValueError(f"the model must observe exactly one site from the same model's observation_law(path) "
                         f"for path site {site!r}; found {len(obs)}")
    return fk_fn(ssm, obs[0]["value"])


def _bootstrap(ssm, obs):
    return ssm.bootstrap(obs)


class ParticleGibbs(GibbsBlock):
    r"""Conditional SMC on a NumPyro model's latent path site, as a NumPyro ``MCMCKernel``.

    Use it alone in ``numpyro.infer.MCMC`` when the path is the model's only latent site (fixed
    parameters), or as a block of ``numpyro.infer.Gibbs`` with NUTS on the other sites (see
    [`particle_gibbs_nuts`][markovppl.infer.particle_gibbs.particle_gibbs_nuts]).

    Args:
        model: the NumPyro model (see the module docstring for its form).
        site: name of the path site, sampled from ``StateSpaceModel.path_prior``.
        num_particles: $N \ge 2$.
        path_sampling: ``"backward"`` (default), ``"ancestor"`` or ``"genealogy"`` (see
            [`conditional_smc`][markovppl.particles.conditional_smc]).
        resample_fn: resampling scheme of the conditional SMC.
        fk_fn: ``fk_fn(ssm, obs) -> FeynmanKac`` with the smoothing law of ``ssm`` as its path law
            (default: the bootstrap model ``ssm.bootstrap(obs)``), e.g. a model with a user proposal
            from [`proposal_model`][markovppl.particles.proposal_model].

    Raises:
        ValueError: ``num_particles < 2``; at ``init``, a site that is not a path prior, no matching
            observed site, or (alone in MCMC) other latent sites.

    Examples:
        >>> import jax, jax.numpy as jnp, numpyro, numpyro.distributions as dist
        >>> from numpyro.infer import MCMC
        >>> from markovppl.particles import StateSpaceModel
        >>> def model(y):
        ...     ssm = StateSpaceModel(dist.Normal(0.0, 1.0), lambda t, x: dist.Normal(0.9 * x, 1.0),
        ...                           lambda t, x: dist.Normal(x, 0.5))
        ...     x = numpyro.sample("x", ssm.path_prior(y.shape[0]))
        ...     numpyro.sample("y", ssm.observation_law(x), obs=y)
        >>> mcmc = MCMC(ParticleGibbs(model, "x", 16), num_warmup=5, num_samples=20, progress_bar=False)
        >>> mcmc.run(jax.random.PRNGKey(0), jnp.array([0.2, 0.9, 1.4, 0.3]), extra_fields=("ess",))
        >>> mcmc.get_samples()["x"].shape, mcmc.get_extra_fields()["ess"].shape
        ((20, 4), (20, 4))
    """

    sample_field = "z"

    def __init__(self, model: Callable, site: str = "x", num_particles: int = 32, *, path_sampling: str = "backward",
                 resample_fn: Callable = multinomial, fk_fn: Callable | None = None):
        if int(num_particles) != num_particles or int(num_particles) < 2:
            raise ValueError(f"num_particles must be an integer >= 2, got {num_particles}")
        self._model = model
        self.site = site
        self.num_particles = int(num_particles)
        self.path_sampling = path_sampling
        self.resample_fn = resample_fn
        self.fk_fn = fk_fn or _bootstrap

    @property
    def default_fields(self):
        return ("z",)

    def init(self, rng_key, num_warmup, init_params, model_args, model_kwargs):
        k_trace, k_state = jax.random.split(rng_key)
        path = None if not init_params else init_params[self.site]
        tr = _trace(self._model, k_trace, self.site, path, model_args, model_kwargs)
        self._check(tr)
        _feynman_kac(tr, self.site, self.fk_fn)          # validates the model's form now
        path = jnp.asarray(tr[self.site]["value"])
        num_steps = path.shape[0]
        dtype = jnp.result_type(float)
        return ParticleGibbsKernelState({self.site: path}, k_state, jnp.zeros((), dtype),
                                        jnp.zeros((num_steps,), dtype), jnp.zeros((), dtype))

    def _check(self, tr):
        others = [name for name, s in tr.items() if s["type"] == "sample" and not s["is_observed"]
                  and name != self.site]
        if others:
            raise ValueError(f"ParticleGibbs moves only the path site {self.site!r}; the model has other latent "
                             f"sites {others}: use it as a block of numpyro.infer.Gibbs (particle_gibbs_nuts)")

    def sample(self, state, model_args, model_kwargs):
        key, k_trace, k_step = jax.random.split(state.rng_key, 3)
        path = state.z[self.site]
        tr = _trace(self._model, k_trace, self.site, path, model_args, model_kwargs)
        fk = _feynman_kac(tr, self.site, self.fk_fn)
        new, info = particle_gibbs_step(k_step, ParticleGibbsState(path), fk, self.num_particles,
                                        path_sampling=self.path_sampling, resample_fn=self.resample_fn)
        dtype = state.ess.dtype
        return ParticleGibbsKernelState({self.site: new.path}, key, info.log_evidence.astype(dtype),
                                        info.ess.astype(dtype), info.fraction_changed.astype(dtype))

    def refresh(self, state, model_args, model_kwargs):
        """Identity: nothing depending on the other sites is cached."""
        return state

    def get_diagnostics_str(self, state):
        return f"renewal {float(state.fraction_changed):.2f}"


def particle_gibbs_nuts(model: Callable, site: str = "x", num_particles: int = 32, *,
                        path_sampling: str = "backward", resample_fn: Callable = multinomial,
                        fk_fn: Callable | None = None, **nuts_kwargs):
    r"""A ``numpyro.infer.Gibbs`` kernel: conditional SMC on the path site, NUTS on every other site.

    Collect the per-sweep diagnostics with ``mcmc.run(..., extra_fields=PARTICLE_GIBBS_FIELDS)``
    (``markovppl.infer.PARTICLE_GIBBS_FIELDS``: the CSMC block's ESS per step, renewal rate and
    log-evidence, and NUTS's divergences and acceptance probabilities).

    Args:
        model: the NumPyro model.
        site: the path site (as in [`ParticleGibbs`][markovppl.infer.particle_gibbs.ParticleGibbs]).
        num_particles: $N \ge 2$.
        path_sampling: ``"backward"`` (default), ``"ancestor"`` or ``"genealogy"``.
        resample_fn: resampling scheme of the conditional SMC.
        fk_fn: ``fk_fn(ssm, obs) -> FeynmanKac`` (default: the bootstrap model).
        **nuts_kwargs: keyword arguments of ``numpyro.infer.NUTS`` (``find_heuristic_step_size`` stays
            off: the NUTS block adapts on its own conditional).

    Returns:
        ``numpyro.infer.Gibbs([(ParticleGibbs(...), [site]), (NUTS(model, ...), None)])``.

    Examples:
        >>> import jax, jax.numpy as jnp, numpyro, numpyro.distributions as dist
        >>> from numpyro.infer import MCMC
        >>> from markovppl.particles import StateSpaceModel
        >>> def model(y):
        ...     rho = numpyro.sample("rho", dist.Uniform(-1.0, 1.0))
        ...     ssm = StateSpaceModel(dist.Normal(0.0, 1.0), lambda t, x: dist.Normal(rho * x, 1.0),
        ...                           lambda t, x: dist.Normal(x, 0.5))
        ...     x = numpyro.sample("x", ssm.path_prior(y.shape[0]))
        ...     numpyro.sample("y", ssm.observation_law(x), obs=y)
        >>> mcmc = MCMC(particle_gibbs_nuts(model, "x", 16), num_warmup=10, num_samples=10, progress_bar=False)
        >>> mcmc.run(jax.random.PRNGKey(0), jnp.array([0.2, 0.9, 1.4, 0.3]), extra_fields=PARTICLE_GIBBS_FIELDS)
        >>> sorted(mcmc.get_samples()), mcmc.get_extra_fields()["block_states.0.ess"].shape
        (['rho', 'x'], (10, 4))
    """
    from numpyro.infer import Gibbs

    pg = ParticleGibbs(model, site, num_particles, path_sampling=path_sampling, resample_fn=resample_fn, fk_fn=fk_fn)
    return Gibbs([(pg, [site]), (NUTS(model, **nuts_kwargs), None)])


def particle_gibbs_fn(model: Callable, site: str = "x", num_particles: int = 32, *, model_args: tuple = (),
                      model_kwargs: dict | None = None, path_sampling: str = "backward",
                      resample_fn: Callable = multinomial, fk_fn: Callable | None = None) -> Callable:
    r"""A ``gibbs_fn`` for ``numpyro.infer.HMCGibbs(NUTS(model), gibbs_fn, gibbs_sites=[site])``: one
    conditional SMC sweep on the path given the HMC sites.

    ``gibbs_fn`` receives no model arguments, so they are bound here (pass the same ones to
    ``mcmc.run``). It returns values only: use
    [`particle_gibbs_nuts`][markovppl.infer.particle_gibbs.particle_gibbs_nuts] for diagnostics.

    Args:
        model: the NumPyro model.
        site: the path site (as in [`ParticleGibbs`][markovppl.infer.particle_gibbs.ParticleGibbs]).
        num_particles: $N \ge 2$.
        model_args: the model's positional arguments.
        model_kwargs: the model's keyword arguments.
        path_sampling: ``"backward"`` (default), ``"ancestor"`` or ``"genealogy"``.
        resample_fn: resampling scheme of the conditional SMC.
        fk_fn: ``fk_fn(ssm, obs) -> FeynmanKac`` (default: the bootstrap model).

    Returns:
        ``gibbs_fn(rng_key, gibbs_sites, hmc_sites) -> {site: new_path}``.

    Examples:
        >>> import jax, jax.numpy as jnp, numpyro, numpyro.distributions as dist
        >>> from numpyro.infer import MCMC, NUTS, HMCGibbs
        >>> from markovppl.particles import StateSpaceModel
        >>> def model(y):
        ...     rho = numpyro.sample("rho", dist.Uniform(-1.0, 1.0))
        ...     ssm = StateSpaceModel(dist.Normal(0.0, 1.0), lambda t, x: dist.Normal(rho * x, 1.0),
        ...                           lambda t, x: dist.Normal(x, 0.5))
        ...     x = numpyro.sample("x", ssm.path_prior(y.shape[0]))
        ...     numpyro.sample("y", ssm.observation_law(x), obs=y)
        >>> y = jnp.array([0.2, 0.9, 1.4, 0.3])
        >>> kernel = HMCGibbs(NUTS(model), particle_gibbs_fn(model, "x", 16, model_args=(y,)), gibbs_sites=["x"])
        >>> mcmc = MCMC(kernel, num_warmup=10, num_samples=10, progress_bar=False)
        >>> mcmc.run(jax.random.PRNGKey(0), y)
        >>> mcmc.get_samples()["x"].shape
        (10, 4)
    """
    if int(num_particles) != num_particles or int(num_particles) < 2:
        raise ValueError(f"num_particles must be an integer >= 2, got {num_particles}")
    fk_fn = fk_fn or _bootstrap

    def gibbs_fn(rng_key, gibbs_sites, hmc_sites):
        k_trace, k_step = jax.random.split(rng_key)
        path = gibbs_sites[site]
        model_c = handlers.condition(model, data=hmc_sites)
        tr = _trace(model_c, k_trace, site, path, model_args, model_kwargs)
        fk = _feynman_kac(tr, site, fk_fn)
        new, _ = particle_gibbs_step(k_step, ParticleGibbsState(path), fk, int(num_particles),
                                     path_sampling=path_sampling, resample_fn=resample_fn)
        return {site: new.path}

    return gibbs_fn


def particle_gibbs_inference_data(mcmc, site: str = "x", *, coords: dict | None = None) -> Any:
    r"""ArviZ output of a particle Gibbs run, with the markovppl layout.

    Groups: ``posterior`` (every sample site but the path), ``latent_posterior`` (the path, dims
    ``chain, draw, time[, state]``), ``sample_stats`` (from the collected extra fields:
    ``particle_ess`` with dims ``chain, draw, time``, ``renewal_rate``, ``csmc_log_evidence``,
    ``diverging``, ``acceptance_rate``; whichever were collected).

    Args:
        mcmc: a ``numpyro.infer.MCMC`` after ``run`` with a
            [`particle_gibbs_nuts`][markovppl.infer.particle_gibbs.particle_gibbs_nuts] or
            [`ParticleGibbs`][markovppl.infer.particle_gibbs.ParticleGibbs] kernel (or ``HMCGibbs``).
        site: the path site.
        coords: optional coordinates, e.g. ``{"time": dates}``.

    Returns:
        ``arviz.InferenceData`` (ArviZ 0.x) or ``xarray.DataTree`` (ArviZ 1.x).

    Examples:
        >>> import numpy as np
        >>> from types import SimpleNamespace
        >>> from markovppl.diagnostics import get_group
        >>> fake = SimpleNamespace(                                   # what a 1-chain run returns
        ...     get_samples=lambda group_by_chain: {"rho": np.zeros((1, 3)), "x": np.zeros((1, 3, 5))},
        ...     get_extra_fields=lambda group_by_chain: {"block_states.0.ess": np.ones((1, 3, 5))})
        >>> idata = particle_gibbs_inference_data(fake)
        >>> get_group(idata, "latent_posterior")["x"].dims
        ('chain', 'draw', 'time')
    """
    from ..diagnostics import add_group, from_dict

    samples = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    if site not in samples:
        raise ValueError(f"the run has no site {site!r} (sites: {sorted(samples)})")
    path = samples.pop(site)
    extra = {k: np.asarray(v) for k, v in (mcmc.get_extra_fields(group_by_chain=True) or {}).items()}
    names = {"ess": "particle_ess", "fraction_changed": "renewal_rate", "log_evidence": "csmc_log_evidence",
             "diverging": "diverging", "accept_prob": "acceptance_rate"}
    stats = {}
    for key, value in extra.items():
        leaf = key.rsplit(".", 1)[-1]
        if leaf in names:
            stats[names[leaf]] = value
    dims = {"particle_ess": ["time"]} if "particle_ess" in stats else {}
    time = (coords or {}).get("time")
    base = {"time": np.asarray(time)} if time is not None else {}
    idata = from_dict({"posterior": samples, **({"sample_stats": stats} if stats else {})},
                      coords=base or None, dims=dims)
    latent_dims = ("chain", "draw", "time", *["state"] * (path.ndim - 3))
    add_group(idata, "latent_posterior", {site: (latent_dims, path)}, coords=base)
    return idata
