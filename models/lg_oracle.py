"""Linear-Gaussian state-space model fitted by particle Gibbs, with the exact Kalman answer as an oracle (simulated data).

Run it with ``markovppl fit lg_oracle``.

Model: $x_0 \\sim N(0, 1)$, $x_t = \\rho x_{t-1} + \\sigma_x \\eta_t$, $y_t = x_t + \\sigma_y \\varepsilon_t$
($\\eta_t, \\varepsilon_t \\sim N(0, 1)$), written as a ``StateSpaceModel`` and fitted like the nonlinear
models (``PARTICLE_GIBBS``: NUTS on $(\\rho, \\sigma_x, \\sigma_y)$, conditional SMC with backward sampling
on the path), although its likelihood is exact. That makes it the check of the particle machinery on real
runs: the same model as ``mp.LinearGaussianSSM`` has the exact Kalman likelihood (fit it by NUTS and compare
posteriors) and, at each parameter draw, the exact RTS smoother — the plot overlays the particle Gibbs path
draws with the RTS means averaged over the same parameter draws. Priors: $\\rho \\sim U(-1, 1)$,
$\\sigma_x, \\sigma_y \\sim HN(1)$. Data: simulated (NumPy seed 1, $T = 100$) at $\\rho = 0.9$, $\\sigma_x = 1$,
$\\sigma_y = 0.5$.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

import markovppl as mp
from markovppl import diagnostics
from markovppl.diagnostics.plots import plot_smoothing_band
from markovppl.particles import StateSpaceModel

DATA_COLUMNS = ["y"]
VAR_NAMES = ["rho", "sigma_x", "sigma_y"]
PARTICLE_GIBBS = {"site": "x", "num_particles": 32}
NUM_STEPS, RHO, SIGMA_X, SIGMA_Y = 100, 0.9, 1.0, 0.5


def lg_ssm(rho, sigma_x, sigma_y):
    """The model as a StateSpaceModel (for particle methods)."""
    return StateSpaceModel(dist.Normal(0.0, 1.0), lambda t, x: dist.Normal(rho * x, sigma_x),
                           lambda t, x: dist.Normal(x, sigma_y))


def lg_exact(rho, sigma_x, sigma_y):
    """The same model as a LinearGaussianSSM (exact Kalman likelihood and RTS smoother)."""
    one = jnp.ones((1, 1))
    return mp.LinearGaussianSSM(jnp.zeros(1), one, rho * one, sigma_x**2 * one, one, sigma_y**2 * one)


def model(y=None, num_steps=NUM_STEPS):
    rho = numpyro.sample("rho", dist.Uniform(-1.0, 1.0))
    sigma_x = numpyro.sample("sigma_x", dist.HalfNormal(1.0))
    sigma_y = numpyro.sample("sigma_y", dist.HalfNormal(1.0))
    ssm = lg_ssm(rho, sigma_x, sigma_y)
    x = numpyro.sample("x", ssm.path_prior(num_steps if y is None else jnp.shape(y)[0]))
    numpyro.sample("y", ssm.observation_law(x), obs=y)


def exact_model(y=None, num_steps=NUM_STEPS):
    """The oracle: the same priors with the exact Kalman likelihood (fit it with NUTS)."""
    rho = numpyro.sample("rho", dist.Uniform(-1.0, 1.0))
    sigma_x = numpyro.sample("sigma_x", dist.HalfNormal(1.0))
    sigma_y = numpyro.sample("sigma_y", dist.HalfNormal(1.0))
    obs = None if y is None else jnp.reshape(y, (-1, 1))
    numpyro.sample("y", lg_exact(rho, sigma_x, sigma_y).with_num_steps(num_steps) if y is None
                   else lg_exact(rho, sigma_x, sigma_y), obs=obs)


def load_data():
    # simulated with NumPy, so the data are the same whether JAX runs in float32 or float64
    rng = np.random.default_rng(1)
    x = np.empty(NUM_STEPS)
    x[0] = rng.normal()
    for t in range(1, NUM_STEPS):
        x[t] = RHO * x[t - 1] + SIGMA_X * rng.normal()
    return {"y": x + SIGMA_Y * rng.normal(size=NUM_STEPS), "time": np.arange(NUM_STEPS), "columns": DATA_COLUMNS}


def plots(idata, data, out_dir):
    post = diagnostics.get_group(idata, "posterior")
    params = [jnp.asarray(np.asarray(post[v]).reshape(-1)) for v in VAR_NAMES]
    obs = jnp.reshape(jnp.asarray(data["y"]), (-1, 1))
    rts = jax.jit(jax.vmap(lambda r, sx, sy: lg_exact(r, sx, sy).smooth(obs).smoothed_means[:, 0]))(*params)
    latent = np.asarray(diagnostics.get_group(idata, "latent_posterior")["x"])
    draws = latent.reshape((-1,) + latent.shape[2:])
    path = os.path.join(out_dir, "smoothed_states.png")
    plot_smoothing_band(data["time"], data["y"], draws, path, mean=np.asarray(rts).mean(0), ylabel="y_t",
                        label="state: PG band, exact RTS mean",
                        title="Linear-Gaussian oracle: particle Gibbs paths vs the exact RTS smoother")
    return [path]
