r"""Innovation-scheme MCMC for non-exact BFFG models: pCN moves on the noise, NUTS or random walk on the parameters.

A guided path is a deterministic function of the parameters and of *innovations* $z$ with a fixed
prior (standard normal, or uniform for discrete draws). With a non-exact auxiliary the model
writes (bffg.md §4.4, "mode B")

```python
theta = numpyro.sample("theta", prior)
z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand(noise_shape).to_event(len(noise_shape)))
back = backward_filter(initial, kernel(theta), leaves)             # auxiliary messages at theta
path = forward_guide(initial, kernel(theta), back.messages, z)     # x = GF_theta(z)
numpyro.factor("bffg", back.log_evidence + path.log_weights.sum())
```

so that its joint density is $\pi(\theta)\,\varphi(z)\,\tilde h_\theta(x_0)\,\Psi_\theta(z)$ whose
$\theta$-marginal is the exact posterior. [`PCN`][markovppl.infer.pcn.PCN] updates the innovation
sites given everything else by preconditioned Crank–Nicolson proposals

$$z^\circ = \rho z + \sqrt{1 - \rho^2}\, W,\qquad W \sim N(0, I),$$

which are reversible for the $N(0, I)$ prior, so the acceptance ratio is the model's density *without*
that prior: $\min\{1, \exp(\ell(z^\circ) - \ell(z))\}$, $\ell = \log p(\text{all sites}) - \log\varphi(z)$
(computed generically from the model with ``numpyro.infer.util.compute_log_probs``; the current
$\ell$ is cached in the kernel state). Innovations with a ``Uniform(0, 1)`` prior move by the torus
random walk $z^\circ = (z + (1 - \rho)W) \bmod 1$ instead. With exact guiding $\ell$ does not depend
on $z$ and every move is accepted.

**Segments.** The innovations can be split into segments (one per site, or one per index along an
axis of a site, e.g. per time step or per tree edge), each updated in turn with its own $\rho$.
During warm-up each $\rho_k$ is adapted by Robbins–Monro on $\operatorname{logit}\rho_k$ towards a
target acceptance rate; after warm-up it is frozen, so the chain is a plain Markov chain.

**Parameters.** [`pcn_nuts`][markovppl.infer.pcn.pcn_nuts] composes the pCN block with NUTS on
every other site in a ``numpyro.infer.Gibbs`` kernel (NUTS sees $\theta \mapsto \log p(\theta, z, y)$
with $z$ fixed: the non-centred conditional). For heavily discrete models, where the path is
piecewise constant in $z$ and gradients carry no information,
[`pcn_random_walk`][markovppl.infer.pcn.pcn_random_walk] uses [`RandomWalk`][markovppl.infer.pcn.RandomWalk]
instead: Gaussian random-walk Metropolis on the unconstrained parameters (a log-scale random walk
for positive ones) with its scale adapted during warm-up only. [`pcn_gibbs_fn`][markovppl.infer.pcn.pcn_gibbs_fn]
is the same pCN move as a ``gibbs_fn`` for ``numpyro.infer.HMCGibbs`` (fixed $\rho$, no diagnostics).

[`pcn_inference_data`][markovppl.infer.pcn.pcn_inference_data] turns a run into ArviZ groups:
``posterior`` = parameters, ``latent_posterior`` = innovations and latent paths
(``numpyro.deterministic`` sites named in ``latent``), ``sample_stats`` = NUTS statistics plus
``pcn_accept_prob`` and ``pcn_rho`` (dims ``chain, draw, segment``) and ``rw_accept_prob``/``rw_scale``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jax.flatten_util import ravel_pytree
from numpyro import handlers
from numpyro.distributions.transforms import biject_to
from numpyro.infer import NUTS
from numpyro.infer.gibbs import Gibbs, conditioned, prototype_trace, with_conditioning
from numpyro.infer.util import compute_log_probs

from .._validation import is_concrete
from ._block import GibbsBlock

__all__ = ["PCN", "PCNState", "RandomWalk", "RandomWalkState", "pcn_nuts", "pcn_random_walk", "pcn_gibbs_fn",
           "pcn_inference_data", "PCN_FIELDS", "PCN_RW_FIELDS"]

#: ``extra_fields`` of ``MCMC.run`` for a [`pcn_nuts`][markovppl.infer.pcn.pcn_nuts] kernel.
PCN_FIELDS = ("block_states.0.accept_prob", "block_states.0.rho", "block_states.1.diverging",
              "block_states.1.accept_prob")
#: ``extra_fields`` of ``MCMC.run`` for a [`pcn_random_walk`][markovppl.infer.pcn.pcn_random_walk] kernel.
PCN_RW_FIELDS = ("block_states.0.accept_prob", "block_states.0.rho", "block_states.1.accept_prob",
                 "block_states.1.scale")

_LOGIT_MAX = 9.21  # rho <= 0.9999 (the largest value used in the BFFG literature)


def _logit(p):
    return jnp.log(p) - jnp.log1p(-p)


def _base(fn):
    while isinstance(fn, (dist.Independent, dist.ExpandedDistribution)):
        fn = fn.base_dist
    return fn


def _innovation_kind(name, fn) -> str:
    """``"normal"`` for a N(0, 1) prior, ``"uniform"`` for U(0, 1); anything else is an error."""
    base = _base(fn)
    params = [getattr(base, a, None) for a in ("loc", "scale", "low", "high")]
    if not all(p is None or is_concrete(p) for p in params):    # traced parameters: trust the type
        if isinstance(base, (dist.Normal, dist.Uniform)):
            return "normal" if isinstance(base, dist.Normal) else "uniform"
    elif isinstance(base, dist.Normal):
        loc, scale = np.asarray(base.loc), np.asarray(base.scale)
        if np.all(loc == 0) and np.all(scale == 1):
            return "normal"
    elif isinstance(base, dist.Uniform):
        if np.all(np.asarray(base.low) == 0) and np.all(np.asarray(base.high) == 1):
            return "uniform"
    raise ValueError(f"innovation site {name!r} must have a standard Normal(0, 1) or a Uniform(0, 1) prior "
                     f"(possibly expanded / to_event), got {fn!r}")


def _rest_log_density(model, names, model_args, model_kwargs, values):
    """$\\log p$ of every site of ``model`` except ``names``, with ``values`` (constrained) conditioned."""
    kwargs = with_conditioning(model_kwargs, values)
    log_probs, _ = compute_log_probs(handlers.seed(conditioned(model), jax.random.PRNGKey(0)), model_args, kwargs, {})
    terms = [jnp.sum(v) for k, v in log_probs.items() if k not in names]
    return sum(terms, start=jnp.zeros((), jnp.result_type(float)))


def _full_log_density(model, model_args, model_kwargs, values):
    kwargs = with_conditioning(model_kwargs, values)
    log_probs, _ = compute_log_probs(handlers.seed(conditioned(model), jax.random.PRNGKey(0)), model_args, kwargs, {})
    return sum((jnp.sum(v) for v in log_probs.values()), start=jnp.zeros((), jnp.result_type(float)))


def _latent_sites(tr) -> list[str]:
    return [name for name, s in tr.items() if s["type"] == "sample" and not s["is_observed"]]


def _deterministic_postprocess(model, model_args, model_kwargs):
    """Replay the model with the block's values to collect its ``deterministic`` sites."""
    model_kwargs = {} if model_kwargs is None else model_kwargs

    def fn(z):
        tr = handlers.trace(handlers.seed(conditioned(model), jax.random.PRNGKey(0))).get_trace(
            *model_args, **with_conditioning(model_kwargs, z))
        det = {name: s["value"] for name, s in tr.items() if s["type"] == "deterministic"}
        return {**z, **det}

    return fn


def _robbins_monro(iteration, rate):
    return rate / (iteration + 1.0) ** 0.6


class PCNState(NamedTuple):
    r"""State of [`PCN`][markovppl.infer.pcn.PCN].

    Attributes:
        z: ``{site: innovations}``, the current values of the innovation sites.
        log_lik: cached $\ell(z)$: the model's log density without the innovations' prior.
        rho: ``(K,)`` the current $\rho$ of each segment (adapted during warm-up, then frozen).
        accept_prob: ``(K,)`` acceptance probabilities $\min(1, e^{\ell(z^\circ) - \ell(z)})$ of the
            last sweep's proposals (their average over draws is the acceptance rate).
        iteration: number of sweeps done.
        rng_key: key for the next sweep.

    Made by [`PCN`][markovppl.infer.pcn.PCN] (its example shows one in use).

    Examples:
        >>> PCNState._fields[:3]
        ('z', 'log_lik', 'rho')
    """

    z: dict
    log_lik: jax.Array
    rho: jax.Array
    accept_prob: jax.Array
    iteration: jax.Array
    rng_key: jax.Array


class PCN(GibbsBlock):
    r"""Preconditioned Crank–Nicolson moves on a NumPyro model's innovation sites, as an ``MCMCKernel``.

    Use it alone in ``numpyro.infer.MCMC`` when the innovations are the model's only latent sites
    (fixed parameters), or as a block of ``numpyro.infer.Gibbs`` (see
    [`pcn_nuts`][markovppl.infer.pcn.pcn_nuts], [`pcn_random_walk`][markovppl.infer.pcn.pcn_random_walk]).
    Each sweep updates the segments in turn (one model evaluation per segment).

    Args:
        model: the NumPyro model; the innovation sites have ``Normal(0, 1)`` (pCN) or ``Uniform(0, 1)``
            (torus random walk) priors, possibly expanded or ``to_event``.
        sites: names of the innovation sites.
        rho: initial $\rho \in [0, 1)$ (scalar, or one per segment).
        segments: ``None`` (one segment per site), ``"joint"`` (all innovations move together) or a
            dict ``{site: axis}`` splitting that site into one segment per index along ``axis`` (other
            sites stay one segment each). Segments are numbered in the order of ``sites``, then by index.
        adapt: adapt each $\rho$ during warm-up (Robbins–Monro on $\operatorname{logit}\rho$, step
            ``adapt_rate / (t + 1)^0.6``); it is frozen after warm-up either way.
        target_accept: the acceptance rate targeted by the adaptation.
        adapt_rate: initial step of the adaptation.

    Raises:
        ValueError: bad ``rho``/``target_accept``/``segments``; at ``init``, a site that is not a latent
            sample site with a standard normal or uniform prior, or (alone in ``MCMC``) other latent sites.

    Examples:
        >>> import jax, jax.numpy as jnp, numpyro, numpyro.distributions as dist
        >>> from numpyro.infer import MCMC
        >>> def model():
        ...     z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([3]).to_event(1))
        ...     numpyro.factor("lik", -0.5 * jnp.sum((z - 1.0) ** 2))     # posterior N(0.5, 0.5)
        >>> mcmc = MCMC(PCN(model, ["z"], rho=0.5), num_warmup=50, num_samples=200, progress_bar=False)
        >>> mcmc.run(jax.random.PRNGKey(0), extra_fields=("accept_prob", "rho"))
        >>> mcmc.get_samples()["z"].shape, mcmc.get_extra_fields()["rho"].shape
        ((200, 3), (200, 1))
    """

    sample_field = "z"

    def __init__(self, model: Callable, sites: Sequence[str], *, rho=0.9, segments=None, adapt: bool = True,
                 target_accept: float = 0.3, adapt_rate: float = 1.0):
        if isinstance(sites, str):
            sites = [sites]
        self.sites = tuple(sites)
        if not self.sites:
            raise ValueError("PCN needs at least one innovation site")
        r = np.asarray(rho, dtype=float)
        if np.any(r < 0) or np.any(r >= 1) or not np.all(np.isfinite(r)):
            raise ValueError(f"rho must lie in [0, 1), got {rho}")
        if not 0 < target_accept < 1:
            raise ValueError(f"target_accept must lie in (0, 1), got {target_accept}")
        if not (segments is None or segments == "joint" or isinstance(segments, dict)):
            raise ValueError(f"segments must be None, 'joint' or a dict {{site: axis}}, got {segments!r}")
        if isinstance(segments, dict) and set(segments) - set(self.sites):
            raise ValueError(f"segments names sites that are not innovation sites: {sorted(set(segments) - set(self.sites))}")
        self._model = model
        self.rho, self.segments, self.adapt = r, segments, bool(adapt)
        self.target_accept, self.adapt_rate = float(target_accept), float(adapt_rate)
        # static metadata resolved at init
        self._unravel = None
        self._masks = None
        self._torus = None
        self._num_warmup = 0

    @property
    def default_fields(self):
        return ("z",)

    def _layout(self, tr, z):
        """Flat segment masks (K, n) and torus flags (n,) in ``ravel_pytree`` order of ``z``."""
        seg_ids, torus, offset = {}, {}, 0
        for name in self.sites:
            shape = np.shape(z[name])
            kind = _innovation_kind(name, tr[name]["fn"])
            if isinstance(self.segments, dict) and name in self.segments:
                axis = int(self.segments[name])
                if not -len(shape) <= axis < len(shape):
                    raise ValueError(f"segment axis {axis} out of range for site {name!r} of shape {shape}")
                ids = offset + np.indices(shape)[axis]
                offset += shape[axis]
            elif self.segments == "joint":
                ids = np.zeros(shape, int)
                offset = 1
            else:
                ids = np.full(shape, offset)
                offset += 1
            seg_ids[name] = ids
            torus[name] = np.full(shape, kind == "uniform")
        flat_ids = np.concatenate([np.ravel(seg_ids[k]) for k in sorted(seg_ids)])   # ravel_pytree sorts dict keys
        flat_torus = np.concatenate([np.ravel(torus[k]) for k in sorted(torus)])
        num = int(flat_ids.max()) + 1
        return flat_ids[None, :] == np.arange(num)[:, None], flat_torus

    def init(self, rng_key, num_warmup, init_params, model_args, model_kwargs):
        model_kwargs = {} if model_kwargs is None else dict(model_kwargs)
        key, k_trace = jax.random.split(rng_key)
        tr = prototype_trace(conditioned(self._model), k_trace, model_args, model_kwargs)
        latent = _latent_sites(tr)
        missing = [s for s in self.sites if s not in latent]
        if missing:
            raise ValueError(f"{missing} are not latent sample sites of the model (latent sites: {latent})")
        others = [s for s in latent if s not in self.sites]
        if others:
            raise ValueError(f"PCN moves only the innovation sites {list(self.sites)}; the model has other latent "
                             f"sites {others}: use it as a block of numpyro.infer.Gibbs (pcn_nuts, pcn_random_walk)")
        init_params = init_params or {}
        z = {s: jnp.asarray(init_params.get(s, tr[s]["value"])) for s in self.sites}
        masks, torus = self._layout(tr, z)
        flat, self._unravel = ravel_pytree(z)
        self._masks, self._torus = masks, torus
        self._num_warmup = int(num_warmup)
        dtype = flat.dtype if jnp.issubdtype(flat.dtype, jnp.floating) else jnp.result_type(float)
        rho = np.broadcast_to(self.rho, (masks.shape[0],)) if self.rho.ndim == 0 else self.rho
        if rho.shape != (masks.shape[0],):
            raise ValueError(f"rho has {rho.size} entries for {masks.shape[0]} segments")
        log_lik = _rest_log_density(self._model, self.sites, model_args, model_kwargs, z)
        return PCNState(z, jnp.asarray(log_lik, dtype), jnp.asarray(rho, dtype), jnp.zeros(masks.shape[0], dtype),
                        jnp.zeros((), jnp.int32), key)

    def sample(self, state, model_args, model_kwargs):
        model_kwargs = {} if model_kwargs is None else model_kwargs
        key, k_sweep = jax.random.split(state.rng_key)
        flat, _ = ravel_pytree(state.z)
        masks, torus = jnp.asarray(self._masks), jnp.asarray(self._torus)
        unravel = self._unravel

        def log_lik(zf):
            return _rest_log_density(self._model, self.sites, model_args, model_kwargs, unravel(zf))

        def _segment(carry, inputs):
            zf, ll = carry
            k, mask, rho = inputs
            k_prop, k_acc = jax.random.split(k)
            w = jax.random.normal(k_prop, zf.shape, zf.dtype)
            moved = jnp.where(torus, jnp.mod(zf + (1.0 - rho) * w, 1.0), rho * zf + jnp.sqrt(1.0 - rho**2) * w)
            prop = jnp.where(mask, moved, zf).astype(zf.dtype)
            ll_new = log_lik(prop).astype(ll.dtype)
            log_ratio = jnp.where(jnp.isnan(ll_new), -jnp.inf, ll_new - ll)
            accept = jnp.log(jax.random.uniform(k_acc, dtype=zf.dtype)) < log_ratio
            alpha = jnp.exp(jnp.minimum(log_ratio, 0.0))
            return (jnp.where(accept, prop, zf), jnp.where(accept, ll_new, ll)), alpha

        keys = jax.random.split(k_sweep, masks.shape[0])
        (flat, ll), alpha = jax.lax.scan(_segment, (flat, state.log_lik), (keys, masks, state.rho))
        rho = state.rho
        if self.adapt:
            step = _robbins_monro(state.iteration.astype(rho.dtype), self.adapt_rate)
            logit = jnp.clip(_logit(jnp.clip(rho, 1e-12, 1.0 - 1e-12)) + step * (self.target_accept - alpha),
                             -_LOGIT_MAX, _LOGIT_MAX)
            rho = jnp.where(state.iteration < self._num_warmup, jax.nn.sigmoid(logit), rho)
        return PCNState(unravel(flat), ll, rho, alpha.astype(rho.dtype), state.iteration + 1, key)

    def refresh(self, state, model_args, model_kwargs):
        """Recompute the cached $\\ell(z)$ after other blocks moved (one model evaluation)."""
        ll = _rest_log_density(self._model, self.sites, model_args, model_kwargs or {}, state.z)
        return state._replace(log_lik=jnp.asarray(ll, state.log_lik.dtype))

    def postprocess_fn(self, model_args, model_kwargs):
        """Innovations plus the model's ``deterministic`` sites (e.g. the guided path), alone in ``MCMC``."""
        return _deterministic_postprocess(self._model, model_args, model_kwargs)

    def get_diagnostics_str(self, state):
        return f"pCN acc {float(jnp.mean(state.accept_prob)):.2f} rho {float(jnp.mean(state.rho)):.3f}"


class RandomWalkState(NamedTuple):
    r"""State of [`RandomWalk`][markovppl.infer.pcn.RandomWalk].

    Attributes:
        z: ``{site: value}`` (constrained values of the block's sites).
        log_density: cached log density of the model in the block's unconstrained coordinates.
        scale: the random-walk standard deviation (adapted during warm-up, then frozen).
        accept_prob: acceptance probability of the last proposal.
        iteration: number of steps done.
        rng_key: key for the next step.

    Examples:
        >>> RandomWalkState._fields[:3]
        ('z', 'log_density', 'scale')
    """

    z: dict
    log_density: jax.Array
    scale: jax.Array
    accept_prob: jax.Array
    iteration: jax.Array
    rng_key: jax.Array


class RandomWalk(GibbsBlock):
    r"""Gaussian random-walk Metropolis on the unconstrained values of a block of sites.

    $u^\circ = u + s\,W$, $W \sim N(0, I)$, on $u = T^{-1}(\theta)$ with $T$ the bijection onto each
    site's support (a log-scale random walk for positive parameters), accepted with the model's
    density times the Jacobian $|\det \partial T/\partial u|$. The scale $s$ is adapted during warm-up
    only (Robbins–Monro on $\log s$ towards ``target_accept``), then frozen. Needs no gradients: the
    parameter block for models whose likelihood is piecewise constant in the innovations.

    Alone in ``MCMC`` it moves every latent site; as a ``Gibbs`` block, the block's sites.

    Args:
        model: the NumPyro model.
        scale: initial $s > 0$.
        adapt: adapt $s$ during warm-up.
        target_accept: the targeted acceptance rate (0.44 suits one parameter, about 0.25 many).
        adapt_rate: initial step of the adaptation of $\log s$.

    Examples:
        >>> import jax, jax.numpy as jnp, numpyro, numpyro.distributions as dist
        >>> from numpyro.infer import MCMC
        >>> def model(y):
        ...     s = numpyro.sample("s", dist.LogNormal(0.0, 1.0))
        ...     numpyro.sample("y", dist.Normal(0.0, s), obs=y)
        >>> mcmc = MCMC(RandomWalk(model), num_warmup=100, num_samples=100, progress_bar=False)
        >>> mcmc.run(jax.random.PRNGKey(0), jnp.array([0.5, -1.0, 2.0]), extra_fields=("scale",))
        >>> bool(jnp.all(mcmc.get_samples()["s"] > 0)), bool(jnp.ptp(mcmc.get_extra_fields()["scale"]) == 0)
        (True, True)
    """

    sample_field = "z"

    def __init__(self, model: Callable, *, scale: float = 0.5, adapt: bool = True, target_accept: float = 0.44,
                 adapt_rate: float = 1.0):
        if not np.isfinite(scale) or scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        if not 0 < target_accept < 1:
            raise ValueError(f"target_accept must lie in (0, 1), got {target_accept}")
        self._model = model
        self.scale, self.adapt = float(scale), bool(adapt)
        self.target_accept, self.adapt_rate = float(target_accept), float(adapt_rate)
        self._sites = None
        self._transforms = None
        self._unravel = None
        self._num_warmup = 0

    @property
    def default_fields(self):
        return ("z",)

    def _log_target(self, u_flat, model_args, model_kwargs):
        u = self._unravel(u_flat)
        values, log_jac = {}, jnp.zeros((), u_flat.dtype)
        for name in self._sites:
            t = self._transforms[name]
            values[name] = t(u[name])
            log_jac = log_jac + jnp.sum(t.log_abs_det_jacobian(u[name], values[name]))
        return _full_log_density(self._model, model_args, model_kwargs, values) + log_jac

    def _unconstrain(self, z):
        return ravel_pytree({k: self._transforms[k].inv(z[k]) for k in self._sites})[0]

    def init(self, rng_key, num_warmup, init_params, model_args, model_kwargs):
        model_kwargs = {} if model_kwargs is None else dict(model_kwargs)
        key, k_trace = jax.random.split(rng_key)
        tr = prototype_trace(conditioned(self._model), k_trace, model_args, model_kwargs)
        latent = _latent_sites(tr)
        sites = tuple(init_params) if init_params else tuple(latent)
        if not sites:
            raise ValueError("RandomWalk found no latent sites to move")
        bad = [s for s in latent if s not in sites]
        if bad:
            raise ValueError(f"RandomWalk moves the sites {list(sites)}; the model has other latent sites {bad}: "
                             "use it as a block of numpyro.infer.Gibbs")
        discrete = [s for s in sites if tr[s]["fn"].support.is_discrete]
        if discrete:
            raise ValueError(f"RandomWalk moves continuous sites only, got discrete sites {discrete}")
        self._sites = sites
        self._transforms = {s: biject_to(tr[s]["fn"].support) for s in sites}
        init_params = init_params or {}
        z = {s: jnp.asarray(init_params.get(s, tr[s]["value"])) for s in sites}
        _, self._unravel = ravel_pytree({k: self._transforms[k].inv(z[k]) for k in sites})
        self._num_warmup = int(num_warmup)
        u0 = self._unconstrain(z)
        dtype = u0.dtype if jnp.issubdtype(u0.dtype, jnp.floating) else jnp.result_type(float)
        ld = self._log_target(self._unconstrain(z), model_args, model_kwargs)
        return RandomWalkState(z, jnp.asarray(ld, dtype), jnp.asarray(self.scale, dtype), jnp.zeros((), dtype),
                               jnp.zeros((), jnp.int32), key)

    def sample(self, state, model_args, model_kwargs):
        model_kwargs = {} if model_kwargs is None else model_kwargs
        key, k_prop, k_acc = jax.random.split(state.rng_key, 3)
        u = self._unconstrain(state.z)
        prop = (u + state.scale * jax.random.normal(k_prop, u.shape, u.dtype)).astype(u.dtype)
        ld_new = self._log_target(prop, model_args, model_kwargs).astype(state.log_density.dtype)
        log_ratio = jnp.where(jnp.isnan(ld_new), -jnp.inf, ld_new - state.log_density)
        accept = jnp.log(jax.random.uniform(k_acc, dtype=u.dtype)) < log_ratio
        alpha = jnp.exp(jnp.minimum(log_ratio, 0.0))
        u = jnp.where(accept, prop, u)
        scale = state.scale
        if self.adapt:
            step = _robbins_monro(state.iteration.astype(scale.dtype), self.adapt_rate)
            new = scale * jnp.exp(step * (alpha - self.target_accept))
            scale = jnp.where(state.iteration < self._num_warmup, new, scale)
        uu = self._unravel(u)
        z = {k: self._transforms[k](uu[k]).astype(jnp.result_type(state.z[k])) for k in self._sites}
        return RandomWalkState(z, jnp.where(accept, ld_new, state.log_density), scale, alpha.astype(scale.dtype),
                               state.iteration + 1, key)

    def refresh(self, state, model_args, model_kwargs):
        """Recompute the cached log density after other blocks moved."""
        ld = self._log_target(self._unconstrain(state.z), model_args, model_kwargs or {})
        return state._replace(log_density=jnp.asarray(ld, state.log_density.dtype))

    def postprocess_fn(self, model_args, model_kwargs):
        return _deterministic_postprocess(self._model, model_args, model_kwargs)

    def get_diagnostics_str(self, state):
        return f"RW acc {float(state.accept_prob):.2f} scale {float(state.scale):.3f}"


def pcn_nuts(model: Callable, sites: Sequence[str], *, rho=0.9, segments=None, adapt: bool = True,
             target_accept: float = 0.3, **nuts_kwargs):
    r"""A ``numpyro.infer.Gibbs`` kernel: [`PCN`][markovppl.infer.pcn.PCN] on the innovation sites, NUTS on every other site.

    Collect diagnostics with ``mcmc.run(..., extra_fields=PCN_FIELDS)`` (pCN acceptance probabilities
    and $\rho$ per segment, NUTS divergences and acceptance probabilities).

    Args:
        model: the NumPyro model (see the module docstring for its form).
        sites: the innovation sites.
        rho: initial $\rho$ (as in [`PCN`][markovppl.infer.pcn.PCN]).
        segments: the pCN segments (as in ``PCN``).
        adapt: adapt $\rho$ during warm-up.
        target_accept: the pCN block's targeted acceptance rate.
        **nuts_kwargs: keyword arguments of ``numpyro.infer.NUTS``.

    Returns:
        ``Gibbs([(PCN(model, sites, ...), sites), (NUTS(model, ...), None)])``.

    Examples:
        >>> import jax, jax.numpy as jnp, numpyro, numpyro.distributions as dist
        >>> from numpyro.infer import MCMC
        >>> def model(y):
        ...     mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
        ...     z = numpyro.sample("z", dist.Normal(0.0, 1.0))
        ...     numpyro.sample("y", dist.Normal(mu + z, 0.5), obs=y)
        >>> mcmc = MCMC(pcn_nuts(model, ["z"], rho=0.5), num_warmup=20, num_samples=20, progress_bar=False)
        >>> mcmc.run(jax.random.PRNGKey(0), 1.0, extra_fields=PCN_FIELDS)
        >>> sorted(mcmc.get_samples()), mcmc.get_extra_fields()["block_states.0.rho"].shape
        (['mu', 'z'], (20, 1))
    """
    sites = [sites] if isinstance(sites, str) else list(sites)
    pcn = PCN(model, sites, rho=rho, segments=segments, adapt=adapt, target_accept=target_accept)
    return Gibbs([(pcn, sites), (NUTS(model, **nuts_kwargs), None)])


def pcn_random_walk(model: Callable, sites: Sequence[str], *, rho=0.9, segments=None, adapt: bool = True,
                    target_accept: float = 0.3, scale: float = 0.5, rw_target_accept: float = 0.44):
    r"""A ``numpyro.infer.Gibbs`` kernel: pCN on the innovations, [`RandomWalk`][markovppl.infer.pcn.RandomWalk] on every other site.

    For models whose guided path is piecewise constant in the innovations (discrete states), where
    NUTS's gradients are useless. Collect diagnostics with ``extra_fields=PCN_RW_FIELDS``.

    Args:
        model: the NumPyro model.
        sites: the innovation sites.
        rho: initial $\rho$ (as in [`PCN`][markovppl.infer.pcn.PCN]).
        segments: the pCN segments (as in ``PCN``).
        adapt: adapt $\rho$ during warm-up.
        target_accept: the pCN block's targeted acceptance rate.
        scale: the random walk's initial scale.
        rw_target_accept: the random walk's targeted acceptance rate.

    Returns:
        ``Gibbs([(PCN(...), sites), (RandomWalk(model, ...), None)])``.

    Examples:
        >>> import jax, numpyro, numpyro.distributions as dist
        >>> from numpyro.infer import MCMC
        >>> def model(y):
        ...     p = numpyro.sample("p", dist.Uniform(0.0, 1.0))
        ...     u = numpyro.sample("u", dist.Uniform(0.0, 1.0))
        ...     numpyro.sample("y", dist.Bernoulli(0.05 + 0.9 * (u < p)), obs=y)
        >>> mcmc = MCMC(pcn_random_walk(model, ["u"]), num_warmup=20, num_samples=20, progress_bar=False)
        >>> mcmc.run(jax.random.PRNGKey(0), 1, extra_fields=PCN_RW_FIELDS)
        >>> mcmc.get_extra_fields()["block_states.1.scale"].shape
        (20,)
    """
    sites = [sites] if isinstance(sites, str) else list(sites)
    pcn = PCN(model, sites, rho=rho, segments=segments, adapt=adapt, target_accept=target_accept)
    return Gibbs([(pcn, sites), (RandomWalk(model, scale=scale, target_accept=rw_target_accept), None)])


def pcn_gibbs_fn(model: Callable, sites: Sequence[str], *, rho: float = 0.9, model_args: tuple = (),
                 model_kwargs: dict | None = None) -> Callable:
    r"""A ``gibbs_fn`` for ``numpyro.infer.HMCGibbs(NUTS(model), gibbs_fn, gibbs_sites=sites)``: one joint pCN
    move of the innovation sites with a fixed $\rho$.

    ``gibbs_fn`` cannot keep state, so the current $\ell(z)$ is recomputed (two model evaluations per
    call) and there is no adaptation or acceptance report: prefer [`pcn_nuts`][markovppl.infer.pcn.pcn_nuts].
    Innovations must have a standard normal prior (pCN). Model arguments are bound here (pass the same
    ones to ``mcmc.run``).

    Args:
        model: the NumPyro model.
        sites: the innovation sites.
        rho: $\rho \in [0, 1)$.
        model_args: the model's positional arguments.
        model_kwargs: the model's keyword arguments.

    Returns:
        ``gibbs_fn(rng_key, gibbs_sites, hmc_sites) -> {site: new_value}``.

    Examples:
        >>> import jax, jax.numpy as jnp, numpyro, numpyro.distributions as dist
        >>> from numpyro.infer import MCMC, NUTS, HMCGibbs
        >>> def model(y):
        ...     mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
        ...     z = numpyro.sample("z", dist.Normal(0.0, 1.0))
        ...     numpyro.sample("y", dist.Normal(mu + z, 0.5), obs=y)
        >>> kernel = HMCGibbs(NUTS(model), pcn_gibbs_fn(model, ["z"], rho=0.5, model_args=(1.0,)), gibbs_sites=["z"])
        >>> mcmc = MCMC(kernel, num_warmup=10, num_samples=10, progress_bar=False)
        >>> mcmc.run(jax.random.PRNGKey(0), 1.0)
        >>> mcmc.get_samples()["z"].shape
        (10,)
    """
    sites = (sites,) if isinstance(sites, str) else tuple(sites)
    if not 0 <= rho < 1:
        raise ValueError(f"rho must lie in [0, 1), got {rho}")
    model_kwargs = dict(model_kwargs or {})
    cmodel = conditioned(model)

    def gibbs_fn(rng_key, gibbs_sites, hmc_sites):
        k_prop, k_acc = jax.random.split(rng_key)
        kwargs = with_conditioning(model_kwargs, hmc_sites)
        z = {s: gibbs_sites[s] for s in sites}
        flat, unravel = ravel_pytree(z)
        prop = rho * flat + jnp.sqrt(1.0 - rho**2) * jax.random.normal(k_prop, flat.shape, flat.dtype)
        ll = _rest_log_density(cmodel, sites, model_args, kwargs, z)
        ll_new = _rest_log_density(cmodel, sites, model_args, kwargs, unravel(prop))
        accept = jnp.log(jax.random.uniform(k_acc, dtype=flat.dtype)) < jnp.where(jnp.isnan(ll_new), -jnp.inf,
                                                                                  ll_new - ll)
        return unravel(jnp.where(accept, prop, flat))

    return gibbs_fn


def pcn_inference_data(mcmc, sites: Sequence[str], *, latent: Sequence[str] = (), coords: dict | None = None,
                       dims: dict | None = None) -> Any:
    r"""ArviZ output of a pCN run, with the markovppl layout.

    Groups: ``posterior`` (every sample site but the innovations and ``latent``), ``latent_posterior``
    (the innovation sites and the ``latent`` sites, e.g. a ``numpyro.deterministic`` guided path, with
    dims ``chain, draw, <site>_dim_i`` unless ``dims`` names them), ``sample_stats`` (from the collected
    extra fields: ``pcn_accept_prob`` and ``pcn_rho`` with dims ``chain, draw, segment``,
    ``rw_accept_prob``, ``rw_scale``, ``diverging``, ``acceptance_rate``; whichever were collected).

    Args:
        mcmc: a ``numpyro.infer.MCMC`` after ``run`` with a [`pcn_nuts`][markovppl.infer.pcn.pcn_nuts],
            [`pcn_random_walk`][markovppl.infer.pcn.pcn_random_walk] or [`PCN`][markovppl.infer.pcn.PCN]
            kernel.
        sites: the innovation sites.
        latent: further sites to put in ``latent_posterior`` (deterministic paths).
        coords: optional coordinates, e.g. ``{"time": dates}``.
        dims: optional dims of latent sites without the chain/draw axes, e.g. ``{"x": ["time", "state"]}``.

    Returns:
        ``arviz.InferenceData`` (ArviZ 0.x) or ``xarray.DataTree`` (ArviZ 1.x).

    Examples:
        >>> import numpy as np
        >>> from types import SimpleNamespace
        >>> from markovppl.diagnostics import get_group
        >>> fake = SimpleNamespace(                                   # what a 1-chain run returns
        ...     get_samples=lambda group_by_chain: {"theta": np.zeros((1, 3)), "z": np.zeros((1, 3, 5)),
        ...                                         "x": np.zeros((1, 3, 5))},
        ...     get_extra_fields=lambda group_by_chain: {"block_states.0.accept_prob": np.ones((1, 3, 2))})
        >>> idata = pcn_inference_data(fake, ["z"], latent=["x"], dims={"x": ["time"]})
        >>> get_group(idata, "latent_posterior")["x"].dims, get_group(idata, "sample_stats")["pcn_accept_prob"].dims
        (('chain', 'draw', 'time'), ('chain', 'draw', 'segment'))
    """
    from ..diagnostics import add_group, from_dict

    sites = [sites] if isinstance(sites, str) else list(sites)
    samples = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    names = list(sites) + list(latent)
    unknown = [s for s in names if s not in samples]
    if unknown:
        raise ValueError(f"the run has no sites {unknown} (sites: {sorted(samples)})")
    lat = {k: samples.pop(k) for k in names}
    extra = {k: np.asarray(v) for k, v in (mcmc.get_extra_fields(group_by_chain=True) or {}).items()}
    stats = {}
    for key, value in extra.items():
        prefix, _, leaf = key.rpartition(".")
        if leaf == "rho":
            stats["pcn_rho"] = value
        elif leaf == "scale":
            stats["rw_scale"] = value
        elif leaf == "diverging":
            stats["diverging"] = value
        elif leaf == "accept_prob" and value.ndim == 3:          # one entry per pCN segment
            stats["pcn_accept_prob"] = value
        elif leaf == "accept_prob" and (f"{prefix}.scale" if prefix else "scale") in extra:
            stats["rw_accept_prob"] = value
        elif leaf == "accept_prob":
            stats["acceptance_rate"] = value
    stat_dims = {k: ["segment"] for k in ("pcn_accept_prob", "pcn_rho") if k in stats}
    idata = from_dict({"posterior": samples, **({"sample_stats": stats} if stats else {})}, dims=stat_dims)
    dims = dims or {}
    group = {}
    for k, v in lat.items():
        d = list(dims.get(k, [f"{k}_dim_{i}" for i in range(v.ndim - 2)]))
        if len(d) != v.ndim - 2:
            raise ValueError(f"dims for {k!r} must name {v.ndim - 2} axes, got {d}")
        group[k] = (("chain", "draw", *d), v)
    add_group(idata, "latent_posterior", group, coords=coords or {})
    return idata
