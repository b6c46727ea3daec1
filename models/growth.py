"""Nonlinear growth model (Kitagawa's benchmark) on simulated data, fitted by particle Gibbs (NUTS + conditional SMC).

Run it with ``markovppl fit growth``.

Model (Kitagawa 1996; Andrieu, Doucet & Holenstein 2010, section 3.1):
$x_0 \\sim N(0, 5)$,
$x_t = x_{t-1}/2 + 25 x_{t-1}/(1 + x_{t-1}^2) + 8\\cos(1.2 t) + v_t$, $v_t \\sim N(0, \\sigma_v^2)$;
$y_t = x_t^2/20 + w_t$, $w_t \\sim N(0, \\sigma_w^2)$, $t = 0, \\dots, T-1$.
The likelihood has no closed form and the smoothing law is bimodal (the sign of $x_t$ is only weakly
identified through $y_t \\propto x_t^2$): the latent path is a sample site moved by conditional SMC with
backward sampling and the noise scales move by NUTS given the path (``PARTICLE_GIBBS``). Half-normal priors
$\\sigma_v \\sim HN(5)$, $\\sigma_w \\sim HN(2)$. The bundled data are simulated (NumPy seed 0, $T = 100$) at the
classic values $\\sigma_v^2 = 10$, $\\sigma_w^2 = 1$, so the recovered scales can be checked.
"""

import os

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from markovppl import diagnostics
from markovppl.diagnostics.plots import plot_smoothing_band
from markovppl.particles import StateSpaceModel

DATA_COLUMNS = ["y"]
VAR_NAMES = ["sigma_v", "sigma_w"]
PARTICLE_GIBBS = {"site": "x", "num_particles": 64}
NUM_STEPS, SIGMA_V, SIGMA_W = 100, np.sqrt(10.0), 1.0


def growth_ssm(sigma_v, sigma_w):
    """The growth model as a StateSpaceModel (vectorised over particles)."""
    drift = lambda t, x: x / 2 + 25 * x / (1 + x**2) + 8 * jnp.cos(1.2 * t)
    return StateSpaceModel(dist.Normal(0.0, jnp.sqrt(5.0)), lambda t, x: dist.Normal(drift(t, x), sigma_v),
                           lambda t, x: dist.Normal(x**2 / 20, sigma_w))


def model(y=None, num_steps=NUM_STEPS):
    sigma_v = numpyro.sample("sigma_v", dist.HalfNormal(5.0))
    sigma_w = numpyro.sample("sigma_w", dist.HalfNormal(2.0))
    ssm = growth_ssm(sigma_v, sigma_w)
    x = numpyro.sample("x", ssm.path_prior(num_steps if y is None else jnp.shape(y)[0]))
    numpyro.sample("y", ssm.observation_law(x), obs=y)


def simulate(seed=0, num_steps=NUM_STEPS):
    """``(x, y)`` simulated at the classic parameter values with NumPy (the same numbers whether JAX runs
    in float32 or float64)."""
    rng = np.random.default_rng(seed)
    x = np.empty(num_steps)
    x[0] = rng.normal(0.0, np.sqrt(5.0))
    for t in range(1, num_steps):
        x[t] = x[t - 1] / 2 + 25 * x[t - 1] / (1 + x[t - 1] ** 2) + 8 * np.cos(1.2 * t) + SIGMA_V * rng.normal()
    return x, x**2 / 20 + SIGMA_W * rng.normal(size=num_steps)


def load_data():
    _, y = simulate()
    return {"y": y, "time": np.arange(NUM_STEPS), "columns": DATA_COLUMNS}


def plots(idata, data, out_dir):
    # posterior draws of the path (one per parameter draw) against the simulated truth; the band is
    # bimodal wherever the sign of x_t is not identified
    latent = np.asarray(diagnostics.get_group(idata, "latent_posterior")["x"])
    draws = latent.reshape((-1,) + latent.shape[2:])
    x_true, _ = simulate(num_steps=len(data["y"])) if len(data["y"]) == NUM_STEPS else (None, None)
    path = os.path.join(out_dir, "smoothed_states.png")
    obs = x_true if x_true is not None else np.full(len(data["y"]), np.nan)
    plot_smoothing_band(data["time"], obs, draws, path, ylabel="x_t", label="x_t (particle Gibbs)",
                        obs_label="simulated truth", title="Growth model: smoothed states by particle Gibbs")
    return [path]
