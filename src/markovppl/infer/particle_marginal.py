r"""Particle marginal Metropolis–Hastings (PMMH; Andrieu, Doucet & Holenstein 2010).

A NumPyro model whose likelihood is a particle-filter estimate
([`particle_factor`][markovppl.infer.particle_marginal.particle_factor]: $\log \hat p(y \mid \theta)$, unbiased on
the natural scale) is sampled by random-walk Metropolis–Hastings on the unconstrained parameters $u$:
$$u' = u + s\,L\,\varepsilon,\qquad
\alpha = \min\Bigl(1, \frac{\hat p(y \mid \theta(u'))\, p(\theta(u'))\, |J(u')|}
{\hat p(y \mid \theta(u))\, p(\theta(u))\, |J(u)|}\Bigr),$$
keeping the *current* estimate until the next acceptance (recomputing it would break exactness). The
chain's stationary law is the exact posterior $p(\theta \mid y)$ for any number of particles; fewer
particles (larger $\operatorname{Var}\log\hat p$) only lower the acceptance rate — aim for
$\operatorname{Var}\log \hat p \approx 1$–$2$ at the posterior mode (Doucet et al. 2015).

Warm-up adapts the scale $s$ by Robbins–Monro towards ``target_accept`` (default 0.25); with
``adapt_covariance`` the second half of warm-up uses $L$ = the Cholesky factor of the covariance of the
first half's draws times $2.38/\sqrt{d}$. The whole run is one ``lax.scan`` per phase under ``jit``;
chains are ``vmap``-ed.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from jax.flatten_util import ravel_pytree
from numpyro import handlers
from numpyro.infer.initialization import init_to_median, init_to_value
from numpyro.infer.util import constrain_fn, initialize_model, potential_energy

from ..particles.resampling import systematic
from ..particles.smc import particle_filter

__all__ = ["PMMHResult", "particle_factor", "pmmh"]


def particle_factor(name: str, fk, num_steps: int, num_particles: int, *, resample_fn: Callable = systematic,
                    ess_threshold: float = 0.5) -> jax.Array:
    r"""Add $\log \hat p(y)$, a particle-filter estimate of the log-likelihood, as ``numpyro.factor(name, ...)``.

    The filter's randomness comes from ``numpyro.prng_key()``, so the model must run under a seed
    handler (as [`pmmh`][markovppl.infer.particle_marginal.pmmh] does at every proposal). The estimate is noisy:
    use it with PMMH, not with gradient-based samplers (resampling is not differentiable).

    Args:
        name: the factor site's name.
        fk: the [`FeynmanKac`][markovppl.particles.FeynmanKac] model (e.g.
            ``StateSpaceModel(...).bootstrap(y)``), built from the model's parameters.
        num_steps: $T$, as in [`particle_filter`][markovppl.particles.particle_filter].
        num_particles: $N \ge 2$.
        resample_fn: the resampling scheme (default systematic).
        ess_threshold: resample when the ESS falls below this fraction of $N$.

    Returns:
        The log-likelihood estimate $\log \hat p(y)$ (a scalar).

    Raises:
        ValueError: the model is not run under a seed handler (no PRNG key available).

    Examples:
        >>> import jax, jax.numpy as jnp, numpyro, numpyro.distributions as dist
        >>> from numpyro import handlers
        >>> from markovppl.particles import StateSpaceModel
        >>> def model(y):
        ...     rho = numpyro.sample("rho", dist.Uniform(-1.0, 1.0))
        ...     ssm = StateSpaceModel(dist.Normal(0.0, 1.0), lambda t, x: dist.Normal(rho * x, 1.0),
        ...                           lambda t, x: dist.Normal(x, 0.5))
        ...     particle_factor("loglik", ssm.bootstrap(y), y.shape[0], 64)
        >>> tr = handlers.trace(handlers.seed(model, 0)).get_trace(jnp.array([0.1, 0.4, -0.2]))
        >>> tr["loglik"]["type"], tr["loglik"]["fn"].log_prob(0.0).shape
        ('sample', ())
    """
    key = numpyro.prng_key()
    if key is None:
        raise ValueError("particle_factor needs a PRNG key: run the model under numpyro.handlers.seed "
                         "(pmmh does this for every proposal)")
    log_z = particle_filter(key, fk, num_steps, num_particles, resample_fn=resample_fn,
                            ess_threshold=ess_threshold).log_evidence
    numpyro.factor(name, log_z)
    return log_z


class PMMHResult(NamedTuple):
    r"""Output of [`pmmh`][markovppl.infer.particle_marginal.pmmh] (leading axes ``(chains, draws)``).

    Attributes:
        samples: ``{site: (chains, draws, ...)}`` constrained parameter draws and the model's
            deterministic sites.
        log_density: the (noisy) log target of each kept draw: log prior + log-Jacobian + $\log\hat p(y)$,
            ``(chains, draws)``.
        accepted: whether the proposal of each kept iteration was accepted, ``(chains, draws)``.
        accept_rate: acceptance rate of the sampling phase per chain, ``(chains,)``.
        step_size: the adapted random-walk scale $s$ per chain, ``(chains,)``.
        proposal_factor: the adapted $L$, ``(chains, d, d)``.

    Made by [`pmmh`][markovppl.infer.particle_marginal.pmmh] (its example shows one).

    Examples:
        >>> PMMHResult._fields[:3]
        ('samples', 'log_density', 'accepted')
    """

    samples: dict
    log_density: jax.Array
    accepted: jax.Array
    accept_rate: jax.Array
    step_size: jax.Array
    proposal_factor: jax.Array

    def to_inference_data(self):
        """ArviZ output: ``posterior`` = the parameters; ``sample_stats`` = ``lp`` (the noisy log target),
        ``accepted`` and ``step_size``.

        Examples:
            >>> import numpy as np
            >>> res = PMMHResult({"rho": np.zeros((2, 5))}, np.zeros((2, 5)), np.ones((2, 5), bool),
            ...                  np.ones(2), np.ones(2), np.ones((2, 1, 1)))
            >>> from markovppl.diagnostics import get_group
            >>> sorted(get_group(res.to_inference_data(), "sample_stats").data_vars)
            ['accepted', 'lp', 'step_size']
        """
        from ..diagnostics import from_dict

        chains, draws = np.shape(self.log_density)
        stats = {"lp": np.asarray(self.log_density), "accepted": np.asarray(self.accepted),
                 "step_size": np.broadcast_to(np.asarray(self.step_size)[:, None], (chains, draws)).copy()}
        return from_dict({"posterior": {k: np.asarray(v) for k, v in self.samples.items()}, "sample_stats": stats})


def _log_target(model, model_args, model_kwargs, unravel, rng_key, u):
    """Log density of the unconstrained parameters (prior, Jacobian and the model's factors, among them
    the particle estimate), with the model seeded by ``rng_key``."""
    return -potential_energy(handlers.seed(model, rng_key), model_args, model_kwargs, unravel(u))


def pmmh(rng_key, model: Callable, num_samples: int, *, num_warmup: int = 500, num_chains: int = 1,
         model_args: tuple = (), model_kwargs: dict | None = None, init_params: dict | None = None,
         step_size: float = 0.5, proposal_scale=None, target_accept: float = 0.25,
         adapt_covariance: bool = True, thinning: int = 1) -> PMMHResult:
    r"""Particle marginal Metropolis–Hastings on the parameters of a NumPyro model.

    Every latent sample site of ``model`` is a parameter moved by the random walk; the model adds the
    particle estimate of its likelihood with [`particle_factor`][markovppl.infer.particle_marginal.particle_factor]
    (or any other non-negative unbiased estimate drawn from ``numpyro.prng_key()``).

    Args:
        rng_key: a JAX PRNG key.
        model: the NumPyro model.
        num_samples: draws kept per chain (after thinning).
        num_warmup: adaptation iterations per chain (discarded).
        num_chains: independent chains (``vmap``-ed).
        model_args: the model's positional arguments.
        model_kwargs: the model's keyword arguments.
        init_params: constrained initial values ``{site: value}`` (default: the prior medians).
        step_size: initial random-walk scale $s$ (> 0).
        proposal_scale: optional per-coordinate scales of the unconstrained parameters (the initial
            diagonal of $L$, flattened in ``ravel_pytree`` order); default ones.
        target_accept: acceptance rate targeted during warm-up, in (0, 1).
        adapt_covariance: use the first half of warm-up to estimate $L$ (needs ``num_warmup >= 20``).
        thinning: keep every ``thinning``-th iteration.

    Returns:
        [`PMMHResult`][markovppl.infer.particle_marginal.PMMHResult].

    Raises:
        ValueError: non-positive ``num_samples``/``num_chains``/``thinning``/``step_size``, negative
            ``num_warmup``, ``target_accept`` outside (0, 1), a model without latent sites, or a
            ``proposal_scale`` of the wrong length.

    Examples:
        >>> import jax, jax.numpy as jnp, numpyro, numpyro.distributions as dist
        >>> from markovppl.particles import StateSpaceModel
        >>> def model(y):
        ...     rho = numpyro.sample("rho", dist.Uniform(-1.0, 1.0))
        ...     ssm = StateSpaceModel(dist.Normal(0.0, 1.0), lambda t, x: dist.Normal(rho * x, 1.0),
        ...                           lambda t, x: dist.Normal(x, 0.5))
        ...     particle_factor("loglik", ssm.bootstrap(y), y.shape[0], 32)
        >>> res = pmmh(jax.random.PRNGKey(0), model, 50, num_warmup=50,
        ...            model_args=(jnp.array([0.1, 0.5, 0.9, 1.2, 0.8]),))
        >>> res.samples["rho"].shape, res.accepted.shape, bool(0 < res.accept_rate[0] < 1)
        ((1, 50), (1, 50), True)
    """
    num_samples, num_warmup, num_chains, thinning = int(num_samples), int(num_warmup), int(num_chains), int(thinning)
    if num_samples < 1 or num_chains < 1 or thinning < 1:
        raise ValueError(f"num_samples, num_chains and thinning must be >= 1, got {num_samples}, {num_chains}, {thinning}")
    if num_warmup < 0:
        raise ValueError(f"num_warmup must be >= 0, got {num_warmup}")
    if not step_size > 0:
        raise ValueError(f"step_size must be positive, got {step_size}")
    if not 0 < target_accept < 1:
        raise ValueError(f"target_accept must be in (0, 1), got {target_accept}")
    model_kwargs = dict(model_kwargs or {})
    strategy = init_to_value(values=init_params) if init_params else init_to_median
    k_init, k_run = jax.random.split(rng_key)
    info = initialize_model(k_init, model, init_strategy=strategy, model_args=model_args, model_kwargs=model_kwargs,
                            validate_grad=False)
    z0 = info.param_info.z
    if not z0:
        raise ValueError("the model has no latent sample sites for PMMH to move")
    u0, unravel = ravel_pytree(z0)
    d = u0.shape[0]
    scale = jnp.ones(d, u0.dtype) if proposal_scale is None else jnp.asarray(proposal_scale, u0.dtype).reshape(-1)
    if scale.shape != (d,):
        raise ValueError(f"proposal_scale must have {d} entries (one per unconstrained coordinate), got {scale.shape[0]}")
    log_target = lambda key, u: _log_target(model, model_args, model_kwargs, unravel, key, u)

    def mh(carry, key, adapt_gain):
        u, lp, log_s, chol = carry
        k_prop, k_pf, k_acc = jax.random.split(key, 3)
        u_new = u + jnp.exp(log_s) * chol @ jax.random.normal(k_prop, (d,), u.dtype)
        lp_new = log_target(k_pf, u_new)
        log_alpha = jnp.where(jnp.isnan(lp_new), -jnp.inf, lp_new - lp)
        accept = jnp.log(jax.random.uniform(k_acc, dtype=u.dtype)) < log_alpha
        u, lp = jnp.where(accept, u_new, u), jnp.where(accept, lp_new, lp)
        alpha = jnp.exp(jnp.minimum(log_alpha, 0.0))
        log_s = log_s + adapt_gain * (alpha - target_accept)
        return (u, lp, log_s, chol), (u, lp, accept)

    def warm(carry, keys, offset):
        def body(c, inp):
            i, key = inp
            return mh(c, key, (i + 1.0) ** -0.6)
        idx = jnp.arange(keys.shape[0], dtype=u0.dtype) + offset
        return jax.lax.scan(body, carry, (idx, keys))

    def chain(key):
        k_lp, k_w1, k_w2, k_s = jax.random.split(key, 4)
        lp0 = log_target(k_lp, u0)
        carry = (u0, lp0, jnp.log(jnp.asarray(step_size, u0.dtype)), jnp.diag(scale))
        if num_warmup:
            half = num_warmup // 2 if adapt_covariance and num_warmup >= 20 else num_warmup
            carry, (us, _, _) = warm(carry, jax.random.split(k_w1, half), 0.0)
            if half < num_warmup:
                tail = us[half // 2:]
                cov = jnp.cov(tail.T).reshape(d, d) + 1e-8 * jnp.eye(d, dtype=u0.dtype)
                chol = jnp.linalg.cholesky(cov) * (2.38 / np.sqrt(d))
                ok = jnp.all(jnp.isfinite(chol))
                carry = (carry[0], carry[1], jnp.zeros((), u0.dtype), jnp.where(ok, chol, carry[3]))
                carry, _ = warm(carry, jax.random.split(k_w2, num_warmup - half), 0.0)

        def sample_body(c, key):
            c, (u, lp, acc) = mh(c, key, 0.0)
            return c, (u, lp, acc)

        carry, (us, lps, accs) = jax.lax.scan(sample_body, carry, jax.random.split(k_s, num_samples * thinning))
        rate = jnp.mean(accs)
        us, lps, accs = us[thinning - 1::thinning], lps[thinning - 1::thinning], accs[thinning - 1::thinning]
        return us, lps, accs, rate, jnp.exp(carry[2]), carry[3]

    us, lps, accs, rate, s, chol = jax.jit(jax.vmap(chain))(jax.random.split(k_run, num_chains))
    seeded = handlers.seed(model, jax.random.PRNGKey(0))
    constrain = jax.jit(jax.vmap(jax.vmap(lambda u: constrain_fn(seeded, model_args, model_kwargs, unravel(u),
                                                                            return_deterministic=True))))
    return PMMHResult(constrain(us), lps, accs, rate, s, chol)
