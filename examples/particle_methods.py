"""Particle methods end to end: guided vs bootstrap filters, PMMH and particle Gibbs against the exact
Kalman answer, then stochastic volatility on GBP/USD and the nonlinear growth model.

    python examples/particle_methods.py                       # figures and tables into results/
    MARKOVPPL_EXAMPLE_OUT=docs/figures python examples/particle_methods.py   # the figures of docs/particles.md

Writes particles_guided_variance.png, particles_pmmh_trace.png, particles_pg_states.png,
particles_sv_volatility.png, particles_sv_trace.png and particles_growth_states.png.
"""

import os
import sys

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from numpyro.infer import MCMC, NUTS  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from _settings import OUT_DIR, QUICK  # noqa: E402

from markovppl import diagnostics  # noqa: E402
from markovppl import particles as pt  # noqa: E402
from markovppl.infer import (PARTICLE_GIBBS_FIELDS, particle_factor, particle_gibbs_inference_data,  # noqa: E402
                             particle_gibbs_nuts, pmmh)
from markovppl.modelfile import find_model_file, load_model_file  # noqa: E402

os.makedirs(OUT_DIR, exist_ok=True)
WARMUP, DRAWS = (100, 100) if QUICK else (1000, 2000)
lg = load_model_file(find_model_file("lg_oracle")).module
data = lg.load_data()
y = jnp.asarray(data["y"])
T = y.shape[0]


def save(fig, name):
    path = os.path.join(OUT_DIR, name)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")


# ---------------------------------------------------------------- 1. guided vs bootstrap filter
target = lg.lg_exact(lg.RHO, lg.SIGMA_X, lg.SIGMA_Y)
aux = lg.lg_exact(0.7, 1.3, 0.8)                       # messages of a misspecified auxiliary model
exact = float(target.log_prob(y[:, None]))
reps, n = (100, 100) if QUICK else (1000, 100)
keys = jax.random.split(jax.random.PRNGKey(0), reps)
lz = {}
for name, fk in [("bootstrap", pt.bootstrap_lgssm(target, y[:, None])),
                 ("guided, auxiliary messages", pt.guided_lgssm(target, y[:, None], auxiliary=aux)),
                 ("guided, exact messages", pt.guided_lgssm(target, y[:, None]))]:
    lz[name] = np.asarray(jax.jit(jax.vmap(lambda k: pt.particle_filter(k, fk, T, n).log_evidence))(keys)) - exact
print(f"\nlog Z_hat - log Z over {reps} filters, N = {n}, T = {T}:")
for name, d in lz.items():
    ratio = np.exp(d)
    print(f"  {name:28s} mean {d.mean():+.4f}  var {d.var():.4f}  mean(Z_hat/Z) {ratio.mean():.3f} "
          f"+- {ratio.std() / np.sqrt(reps):.3f}")
fig, ax = plt.subplots(figsize=(8, 3.8))
bins = np.linspace(min(d.min() for d in lz.values()), max(d.max() for d in lz.values()), 60)
for name, d in lz.items():
    if d.var() > 1e-12:
        ax.hist(d, bins=bins, alpha=0.6, label=f"{name} (var {d.var():.3f})")
    else:
        ax.axvline(0, color="k", lw=1.2, label=f"{name}: every run exact (var {d.var():.0e})")
ax.set_xlabel("log Z_hat - log Z (exact Kalman)")
ax.set_title(f"Particle filters on the linear-Gaussian oracle, N = {n}, T = {T}")
ax.legend(frameon=False, fontsize=8)
save(fig, "particles_guided_variance.png")

# ---------------------------------------------------------------- 2. exact NUTS vs PMMH vs particle Gibbs
names = lg.VAR_NAMES
nuts = MCMC(NUTS(lg.exact_model), num_warmup=WARMUP, num_samples=DRAWS, progress_bar=False)
nuts.run(jax.random.PRNGKey(1), y)
exact_post = nuts.get_samples()


def locally_optimal(ssm_params, y):
    """The fully adapted proposal q_t(x_{t-1}, .) = p(x_t | x_{t-1}, y_t) of the linear-Gaussian model,
    with p(x_0 | y_0) at t = 0 (closed form): PMMH's likelihood estimate then varies far less."""
    import numpyro.distributions as dist

    rho, sx, sy = ssm_params
    prec = 1 / sx**2 + 1 / sy**2
    q = lambda t, xp: dist.Normal((rho * xp / sx**2 + y[t] / sy**2) / prec, 1 / jnp.sqrt(prec))
    prec0 = 1.0 + 1 / sy**2
    q0 = dist.Normal(y[0] / sy**2 / prec0, 1 / jnp.sqrt(prec0))
    return dict(proposal=lambda k, t, xp: q(t, xp).sample(k), log_proposal=lambda t, xp, x: q(t, xp).log_prob(x),
                initial_proposal=lambda k, n: q0.sample(k, (n,)), initial_log_proposal=q0.log_prob)


def pmmh_model(y, num_particles=100):
    import numpyro
    import numpyro.distributions as dist

    rho = numpyro.sample("rho", dist.Uniform(-1.0, 1.0))
    sigma_x = numpyro.sample("sigma_x", dist.HalfNormal(1.0))
    sigma_y = numpyro.sample("sigma_y", dist.HalfNormal(1.0))
    ssm = lg.lg_ssm(rho, sigma_x, sigma_y)
    fk = pt.proposal_model(ssm, y, **locally_optimal((rho, sigma_x, sigma_y), y))
    particle_factor("loglik", fk, y.shape[0], num_particles)


res = pmmh(jax.random.PRNGKey(2), pmmh_model, DRAWS, num_warmup=WARMUP, num_chains=2, model_args=(y,))
pg = MCMC(particle_gibbs_nuts(lg.model, "x", 32), num_warmup=WARMUP, num_samples=DRAWS, num_chains=2,
          chain_method="sequential", progress_bar=False)
pg.run(jax.random.PRNGKey(3), y, extra_fields=PARTICLE_GIBBS_FIELDS)
pg_idata = particle_gibbs_inference_data(pg, "x")
pg_post = pg.get_samples(group_by_chain=True)
print(f"\nposterior mean (sd) [ESS]; PMMH acceptance {np.asarray(res.accept_rate).round(2).tolist()}, "
      f"particle Gibbs renewal {float(pg.get_extra_fields()['block_states.0.fraction_changed'].mean()):.2f}")
print(f"  {'':8s} {'exact NUTS':>26s} {'PMMH (N=100, opt. prop.)':>26s} {'NUTS + CSMC (N=32)':>26s}")
import arviz as az  # noqa: E402

for v in names:
    cells = []
    for draws in (np.asarray(exact_post[v])[None], np.asarray(res.samples[v]), np.asarray(pg_post[v])):
        cells.append(f"{draws.mean():.3f} ({draws.std():.3f}) [{float(az.ess(draws)):.0f}]")
    print(f"  {v:8s} " + " ".join(f"{c:>26s}" for c in cells))

fig, axes = plt.subplots(len(names), 2, figsize=(10, 6.5), gridspec_kw={"width_ratios": [3, 1]})
for i, v in enumerate(names):
    for c in range(2):
        axes[i, 0].plot(np.asarray(res.samples[v])[c], lw=0.5, alpha=0.8, label=f"PMMH chain {c}")
    axes[i, 0].set_ylabel(v)
    for label, draws in [("exact NUTS", exact_post[v]), ("PMMH", res.samples[v]), ("NUTS + CSMC", pg_post[v])]:
        axes[i, 1].hist(np.asarray(draws).reshape(-1), bins=40, density=True, histtype="step", label=label)
axes[0, 0].legend(frameon=False, fontsize=8)
axes[0, 1].legend(frameon=False, fontsize=7)
axes[-1, 0].set_xlabel("iteration")
fig.suptitle("PMMH traces and the posteriors of PMMH, particle Gibbs and exact NUTS (linear-Gaussian oracle)")
save(fig, "particles_pmmh_trace.png")

latent = np.asarray(diagnostics.get_group(pg_idata, "latent_posterior")["x"]).reshape(-1, T)
rts = jax.vmap(lambda r, sx, sy: lg.lg_exact(r, sx, sy).smooth(y[:, None]).smoothed_means[:, 0])(
    *[jnp.asarray(np.asarray(pg_post[v]).reshape(-1)) for v in names])
fig, ax = plt.subplots(figsize=(10, 4))
lo, hi = np.quantile(latent, [0.05, 0.95], axis=0)
ax.fill_between(np.arange(T), lo, hi, alpha=0.3, label="90% band of the particle Gibbs paths")
ax.plot(latent.mean(0), lw=1.6, label="particle Gibbs mean of x_t")
ax.plot(np.asarray(rts).mean(0), "k--", lw=1, label="exact RTS mean (same parameter draws)")
ax.plot(np.asarray(y), ".", color="0.5", ms=4, label="y_t")
ax.legend(frameon=False, fontsize=8, ncol=2)
ax.set_title("Smoothed states: particle Gibbs (NUTS + conditional SMC) vs the exact smoother")
save(fig, "particles_pg_states.png")
print(f"max |PG mean - RTS mean| over t: {np.max(np.abs(latent.mean(0) - np.asarray(rts).mean(0))):.3f}")

# ---------------------------------------------------------------- 3. stochastic volatility on GBP/USD
sv_spec = load_model_file(find_model_file("stochastic_volatility"))
sv_data = sv_spec.load_data()
sv = MCMC(particle_gibbs_nuts(sv_spec.model, "x", 64), num_warmup=WARMUP, num_samples=DRAWS, num_chains=2,
          chain_method="sequential", progress_bar=False)
sv.run(jax.random.PRNGKey(4), jnp.asarray(sv_data["y"]), extra_fields=PARTICLE_GIBBS_FIELDS)
sv_idata = particle_gibbs_inference_data(sv, "x", coords={"time": sv_data["time"]})
print("\nstochastic volatility, GBP/USD (750 returns), NUTS + CSMC (N = 64):")
print(diagnostics.summary(sv_idata, var_names=sv_spec.var_names).round(3).to_string())
for path in sv_spec.plots(sv_idata, sv_data, OUT_DIR):
    os.replace(path, os.path.join(OUT_DIR, "particles_sv_volatility.png"))
post = diagnostics.get_group(sv_idata, "posterior")
fig, axes = plt.subplots(len(sv_spec.var_names), 1, figsize=(10, 5.5), sharex=True)
for ax, v in zip(axes, sv_spec.var_names):
    vals = np.asarray(post[v])
    for c in range(vals.shape[0]):
        ax.plot(vals[c], lw=0.5, alpha=0.8)
    ax.set_ylabel(v)
axes[-1].set_xlabel("iteration")
fig.suptitle("Stochastic volatility on GBP/USD: parameter traces (2 chains, NUTS + conditional SMC)")
save(fig, "particles_sv_trace.png")

# ---------------------------------------------------------------- 4. growth model
gr_spec = load_model_file(find_model_file("growth"))
gr_data = gr_spec.load_data()
gr = MCMC(particle_gibbs_nuts(gr_spec.model, "x", 64), num_warmup=WARMUP, num_samples=DRAWS, progress_bar=False)
gr.run(jax.random.PRNGKey(5), jnp.asarray(gr_data["y"]), extra_fields=PARTICLE_GIBBS_FIELDS)
gr_idata = particle_gibbs_inference_data(gr, "x")
print("\ngrowth model (simulated, sigma_v = 3.162, sigma_w = 1), NUTS + CSMC (N = 64):")
print(diagnostics.summary(gr_idata, var_names=gr_spec.var_names).round(3).to_string())
for path in gr_spec.plots(gr_idata, gr_data, OUT_DIR):
    os.replace(path, os.path.join(OUT_DIR, "particles_growth_states.png"))
print(f"wrote {os.path.join(OUT_DIR, 'particles_growth_states.png')}")
