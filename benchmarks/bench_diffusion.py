"""Guided diffusions: parameter inference ESS per second (pCN + NUTS vs bootstrap-PF PMMH) and guided vs
unguided importance weights, on the same discretely observed SDE.

Problem: geometric Brownian motion dX = mu X dt + sigma X dW, x0 = 1, mu = 0.1 known, observed with
N(0, 0.1^2) noise at T irregular times (simulated, fixed seed); prior log sigma ~ N(log 0.4, 0.5^2). The
exact posterior of sigma comes from a forward algorithm on a fine grid of log X (lognormal transitions).

1. Parameter inference: (a) markovppl mode B, innovations as sites with pCN moves (one segment per
   observation interval, rho adapted during warm-up) and NUTS on log sigma, guided by a per-interval
   linear auxiliary, 50 Euler steps per interval; (b) PMMH with a bootstrap particle filter using the
   *exact* lognormal transition (the particle method's best case), N particles, adaptive random walk.
   Reported: posterior mean/sd of sigma, bulk ESS, wall time (second run, compiled) and ESS/s.
2. Importance weights at the true sigma: guided paths (DiscretelyObservedSDE.log_evidence_is) vs
   forward-simulated Euler paths weighted by the observation density: log-evidence estimate +- SE
   against the exact value, ESS fraction and time per path.

``--obs-sd`` sets the observation noise (default 0.1); precise observations (e.g. 0.02) make the bootstrap
filter's weights degenerate while the guided paths are steered to each observation.

Usage: python benchmarks/bench_diffusion.py [--T 12] [--samples 2000] [--particles 512] [--obs-sd 0.1] [--steps 50]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import MCMC
from scipy import signal, stats

jax.config.update("jax_enable_x64", True)

from markovppl.families.sde import DiscretelyObservedSDE  # noqa: E402
from markovppl.infer.particle_marginal import particle_factor, pmmh  # noqa: E402
from markovppl.infer.pcn import PCN_FIELDS, pcn_nuts  # noqa: E402
from markovppl.kernels.diffusion import LinearSDE  # noqa: E402
from markovppl.particles import StateSpaceModel  # noqa: E402

MU, SIGMA, X0, OBS_SD, STEPS = 0.1, 0.4, 1.0, 0.1, 50
PRIOR = (np.log(0.4), 0.5)


def simulate(T, seed=11):
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.uniform(0.2, 0.6, T))
    u, prev, ys = 0.0, 0.0, []
    for t in times:
        dt = t - prev
        u += (MU - 0.5 * SIGMA**2) * dt + SIGMA * np.sqrt(dt) * rng.normal()
        ys.append(np.exp(u) + OBS_SD * rng.normal())
        prev = t
    return times, np.array(ys)


def grid_loglik(times, y, s, u):
    """Forward algorithm on the equally spaced grid ``u`` of log X: the lognormal transition is a shift-invariant
    Gaussian kernel in u, so each step is one FFT convolution."""
    du, n = u[1] - u[0], len(u)
    offsets = (np.arange(2 * n - 1) - (n - 1)) * du
    prev, ll, alpha = 0.0, 0.0, None
    for t, yy in zip(times, y):
        dt = t - prev
        m = (MU - 0.5 * s**2) * dt
        if alpha is None:
            dens = stats.norm.pdf(u, m, s * np.sqrt(dt))
        else:
            kernel = stats.norm.pdf(offsets, m, s * np.sqrt(dt))
            dens = np.maximum(signal.fftconvolve(alpha, kernel)[n - 1:2 * n - 1], 0.0) * du
        dens = dens * stats.norm.pdf(yy, np.exp(u), OBS_SD)
        c = dens.sum() * du
        ll += np.log(c)
        alpha, prev = dens / c, t
    return ll


def log_x_grid(y):
    """Grid of log X fine enough for the observation noise (spacing below OBS_SD / (3 max y) in log X)."""
    lo, hi = -1.5, np.log(np.max(y)) + 1.0
    return np.linspace(lo, hi, max(1200, int((hi - lo) * 3 * np.max(y) / OBS_SD)))


def grid_posterior(times, y):
    u = log_x_grid(y)
    ls = np.linspace(np.log(0.12), np.log(1.2), 80)
    lp = np.array([grid_loglik(times, y, np.exp(v), u) for v in ls]) + stats.norm.logpdf(ls, *PRIOR)
    w = np.exp(lp - lp.max())
    w /= w.sum()
    m = np.sum(w * np.exp(ls))
    return m, np.sqrt(np.sum(w * (np.exp(ls) - m) ** 2))


def _drift(t, x, s):
    return MU * x


def _sigma(t, x, s):
    return jnp.reshape(s * x, (1, 1))


def sde_at(sigma, times, y):
    n = len(times)
    aux = LinearSDE(jnp.full((n, 1, 1), MU), jnp.zeros((n, 1)), sigma * jnp.asarray(y)[:, None, None])
    return DiscretelyObservedSDE(_drift, _sigma, aux, jnp.asarray(times), jnp.eye(1), jnp.array([[OBS_SD**2]]),
                                 x0=jnp.array([X0]), num_steps=STEPS, params=sigma)


def guided_model(times, y):
    sigma = numpyro.deterministic("sigma", jnp.exp(numpyro.sample("log_sigma", dist.Normal(*PRIOR))))
    sde = sde_at(sigma, times, y)
    z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([len(times), STEPS]).to_event(2))
    numpyro.factor("guided", sde.guided_log_likelihood(jnp.asarray(y)[:, None], z.reshape(-1)))


def pmmh_model(times, y, num_particles):
    sigma = numpyro.deterministic("sigma", jnp.exp(numpyro.sample("log_sigma", dist.Normal(*PRIOR))))
    gaps = jnp.diff(jnp.concatenate([jnp.zeros(1), jnp.asarray(times)]))

    def lognormal(x, dt):
        return dist.LogNormal(jnp.log(x) + (MU - 0.5 * sigma**2) * dt, sigma * jnp.sqrt(dt))

    ssm = StateSpaceModel(lognormal(jnp.asarray(X0), gaps[0]), lambda t, x: lognormal(x, gaps[t]),
                          lambda t, x: dist.Normal(x, OBS_SD))
    particle_factor("loglik", ssm.bootstrap(jnp.asarray(y)), len(times), num_particles)


def ess(x):
    return float(numpyro.diagnostics.effective_sample_size(np.asarray(x).reshape(1, -1)))


def run_pcn(times, y, warmup, samples):
    mcmc = MCMC(pcn_nuts(guided_model, ["z"], rho=0.9, segments={"z": 0}, init_strategy=numpyro.infer.init_to_median),
                num_warmup=warmup, num_samples=samples,
                progress_bar=False)
    mcmc.run(jax.random.PRNGKey(0), times, y, extra_fields=PCN_FIELDS)      # compile + first run
    t0 = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(1), times, y, extra_fields=PCN_FIELDS)
    jax.block_until_ready(mcmc.get_samples())
    return np.asarray(mcmc.get_samples()["sigma"]), time.perf_counter() - t0


def run_pmmh(times, y, warmup, samples, particles):
    kw = dict(num_warmup=warmup, model_args=(times, y, particles))
    pmmh(jax.random.PRNGKey(0), pmmh_model, samples, **kw)
    t0 = time.perf_counter()
    out = pmmh(jax.random.PRNGKey(1), pmmh_model, samples, **kw)
    s = np.asarray(jax.block_until_ready(out.samples["sigma"]))[0]
    return s, time.perf_counter() - t0


def weights(times, y, num_paths):
    sde = sde_at(jnp.asarray(SIGMA), times, y)
    obs = jnp.asarray(y)[:, None]
    f = jax.jit(lambda k: sde.log_evidence_is(k, obs, num_paths))
    f(jax.random.PRNGKey(0))
    t0 = time.perf_counter()
    est = jax.block_until_ready(f(jax.random.PRNGKey(1)))
    t_guided = time.perf_counter() - t0
    gaps = np.diff(np.concatenate([[0.0], times]))
    dts = jnp.asarray(np.repeat(gaps / STEPS, STEPS))

    @jax.jit
    def unguided(key):
        z = jax.random.normal(key, (num_paths, len(times) * STEPS))

        def path(zz):
            def step(x, inp):
                dt, e = inp
                x = x + MU * x * dt + SIGMA * x * jnp.sqrt(dt) * e
                return x, x
            return jax.lax.scan(step, jnp.asarray(X0), (dts, zz))[1][STEPS - 1::STEPS]

        xs = jax.vmap(path)(z)
        return jnp.sum(jax.scipy.stats.norm.logpdf(jnp.asarray(y), xs, OBS_SD), -1)

    unguided(jax.random.PRNGKey(0))
    t0 = time.perf_counter()
    lw = np.asarray(jax.block_until_ready(unguided(jax.random.PRNGKey(1))))
    t_unguided = time.perf_counter() - t0
    w = np.exp(lw - lw.max())
    est_u = lw.max() + np.log(w.mean())
    se_u = np.std(w / w.mean()) / np.sqrt(len(w))
    ess_u = w.sum() ** 2 / np.sum(w**2)
    return est, t_guided, (est_u, se_u, ess_u), t_unguided


def main():
    global OBS_SD, STEPS
    ap = argparse.ArgumentParser()
    ap.add_argument("--T", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--particles", type=int, default=512)
    ap.add_argument("--paths", type=int, default=20000)
    ap.add_argument("--obs-sd", type=float, default=OBS_SD)
    ap.add_argument("--steps", type=int, default=STEPS, help="Euler steps per observation interval")
    a = ap.parse_args()
    OBS_SD, STEPS = a.obs_sd, a.steps
    times, y = simulate(a.T)
    print(f"markovppl guided-diffusion benchmark: jax {jax.__version__}, numpyro {numpyro.__version__}, "
          f"python {sys.version.split()[0]}, {platform.processor() or platform.machine()}, cpus {jax.local_device_count()}")
    print(f"GBM, T = {a.T} observations with noise sd {OBS_SD}, {STEPS} Euler steps per interval, "
          f"{a.warmup} warm-up + {a.samples} draws")
    mean, sd = grid_posterior(times, y)
    print(f"exact grid posterior of sigma: mean {mean:.4f}, sd {sd:.4f}")
    s, t = run_pcn(times, y, a.warmup, a.samples)
    e = ess(s)
    print(f"pCN + NUTS (guided):      mean {s.mean():.4f} sd {s.std():.4f}  ESS {e:7.1f}  time {t:7.2f} s  ESS/s {e / t:8.2f}")
    s2, t2 = run_pmmh(times, y, a.warmup, a.samples, a.particles)
    e2 = ess(s2)
    print(f"PMMH, bootstrap PF N={a.particles}: mean {s2.mean():.4f} sd {s2.std():.4f}  ESS {e2:7.1f}  time {t2:7.2f} s  "
          f"ESS/s {e2 / t2:8.2f}")
    print(f"ratio of ESS/s (guided pCN / PMMH): {(e / t) / (e2 / t2):.2f}")
    exact = grid_loglik(times, y, SIGMA, log_x_grid(y))
    est, tg, (eu, seu, essu), tu = weights(times, y, a.paths)
    print(f"\nimportance weights at sigma = {SIGMA}, {a.paths} paths; exact log p(y) = {exact:.4f}")
    print(f"guided:   {float(est.log_evidence):.4f} +- {float(est.standard_error):.4f}  ESS {float(est.ess):8.1f} "
          f"({100 * float(est.ess) / a.paths:.1f}%)  time {tg:.3f} s")
    print(f"unguided: {eu:.4f} +- {seu:.4f}  ESS {essu:8.1f} ({100 * essu / a.paths:.3f}%)  time {tu:.3f} s")
    print(f"ESS ratio guided / unguided: {float(est.ess) / essu:.1f}; per second: {(float(est.ess) / tg) / (essu / tu):.1f}")


if __name__ == "__main__":
    main()
