"""FitzHugh-Nagumo neuron model with only the membrane potential observed: guided diffusion proposals, pCN on the innovations and NUTS on the parameters.

Run it with ``markovppl fit fitzhugh_nagumo``; fit your own recording with
``--data my.csv --columns time,potential --time-column time`` (non-decreasing times, NaN = missing).

Model (the classic hypo-elliptic guided-proposal benchmark; Bierkens, van der Meulen & Schauer 2020):

$$dX = \\tfrac1\\varepsilon (X - X^3 - Y + s)\\,dt,\\qquad dY = (\\gamma X - Y + \\beta)\\,dt + \\sigma\\,dW,$$

started at $(X_0, Y_0) = (-0.5, -0.6)$, with only the potential observed, $y_k = X(t_k) + N(0, 0.05^2)$;
$\\varepsilon = 0.1$ and $s = 0$ are fixed. Priors: $\\log\\gamma \\sim N(\\log 1.5, 0.5^2)$,
$\\beta \\sim N(0.5, 0.5^2)$, $\\sigma \\sim HN(0.5)$.

The transition density is intractable. ``mp.DiscretelyObservedSDE`` guides the process with a linear
auxiliary per interval, the drift linearised at the interval's closing observation $c = y_k$
($x - x^3 \\approx (1 - 3c^2)x + 2c^3$), and the exact Girsanov weight (here $\\tilde a = a$, so only
$(b - \\tilde b)^\\top r$ remains). The likelihood enters non-centred (Mode B): the innovations
``z`` ``(M, N, 1)`` are a standard-normal site and ``numpyro.factor`` adds
$\\log\\tilde h_\\text{root} + \\log\\Psi(z)$. ``markovppl fit`` moves ``z`` by preconditioned
Crank-Nicolson, one segment per observation interval (``PCN``), and the parameters by NUTS; the
parameter marginal is the posterior of the Euler-discretised model, and every posterior draw of
``(parameters, z)`` *is* a posterior path (the plot draws them, including the unobserved recovery
variable $Y$).

Data: ``load_data`` **simulates** 10 observations every 0.5 time units from $\\gamma = 1.5$, $\\beta = 0.8$,
$\\sigma = 0.3$ with a fixed seed (``TRUE``; a fine Euler grid of 400 steps per interval).
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

import markovppl as mp
from markovppl.kernels.diffusion import LinearSDE

DATA_COLUMNS = ["time", "potential"]
TIME_COLUMN = "time"
VAR_NAMES = ["gamma", "beta", "sigma"]
TRUE = {"gamma": 1.5, "beta": 0.8, "sigma": 0.3}
EPS, S = 0.1, 0.0
X0 = (-0.5, -0.6)
OBS_SD = 0.05
NUM_OBS, GAP, SEED = 10, 0.5, 20260607
PCN = {"sites": ["z"], "segments": {"z": 0}, "rho": 0.8}
NUM_STEPS = 20  # Euler steps per interval for inference (time-changed grid)


def fhn_drift(t, x, params):
    gamma, beta, _ = params
    return jnp.stack([(x[0] - x[0] ** 3 - x[1] + S) / EPS, gamma * x[0] - x[1] + beta])


def fhn_diffusion(t, x, params):
    return jnp.array([[0.0], [1.0]], x.dtype) * params[2]


def linearised_auxiliary(gamma, beta, sigma, anchors):
    r"""Per-interval linear auxiliaries: the drift with $x - x^3$ linearised at ``anchors`` ``(M,)``."""
    c = jnp.asarray(anchors)
    one = jnp.ones_like(c)
    B = jnp.stack([jnp.stack([(1 - 3 * c**2) / EPS, -one / EPS], -1), jnp.stack([gamma * one, -one], -1)], -2)
    beta_t = jnp.stack([(S + 2 * c**3) / EPS, beta * one], -1)
    sig = jnp.zeros(c.shape + (2, 1), B.dtype).at[..., 1, 0].set(sigma)
    return LinearSDE(B, beta_t, sig)


def fhn_sde(gamma, beta, sigma, times, anchors, num_steps=NUM_STEPS):
    times = jnp.asarray(times)
    gamma, beta, sigma = (jnp.asarray(v, times.dtype) for v in (gamma, beta, sigma))
    return mp.DiscretelyObservedSDE(fhn_drift, fhn_diffusion, linearised_auxiliary(gamma, beta, sigma, anchors), times,
                                    jnp.array([[1.0, 0.0]], times.dtype), jnp.full((1, 1), OBS_SD**2, times.dtype),
                                    x0=jnp.asarray(X0, times.dtype), num_steps=num_steps, params=(gamma, beta, sigma))


def _split(y):
    y = jnp.asarray(y)
    if y.ndim != 2 or y.shape[-1] != 2:
        raise ValueError(f"fitzhugh_nagumo expects y with two columns (time, potential), got shape {y.shape}")
    return y[:, 0], y[:, 1:]


def _anchors(pos):
    return jnp.where(jnp.isnan(pos[:, 0]), 0.0, pos[:, 0])


def model(y=None, times=None):
    if y is not None:
        times, pos = _split(y)
    else:
        times, pos = (jnp.asarray(load_data()["time"]) if times is None else jnp.asarray(times)), None
    gamma = numpyro.sample("gamma", dist.LogNormal(np.log(1.5), 0.5))
    beta = numpyro.sample("beta", dist.Normal(0.5, 0.5))
    sigma = numpyro.sample("sigma", dist.HalfNormal(0.5))
    if pos is None:  # prior predictive: simulate the observations
        sde = fhn_sde(gamma, beta, sigma, times, jnp.zeros(times.shape[0]))
        numpyro.deterministic("y", sde.sample(numpyro.prng_key())[1][:, 0])
        return
    sde = fhn_sde(gamma, beta, sigma, times, _anchors(pos))
    z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand(list(sde.noise_shape)).to_event(3))
    numpyro.factor("loglik", sde.guided_log_likelihood(pos, z.reshape(-1)))


def load_data():
    times = GAP * np.arange(1, NUM_OBS + 1)
    sde = fhn_sde(TRUE["gamma"], TRUE["beta"], TRUE["sigma"], jnp.asarray(times), jnp.zeros(NUM_OBS), num_steps=400)
    _, y = sde.sample(jax.random.PRNGKey(SEED))
    return {"y": np.stack([times, np.asarray(y)[:, 0]], 1), "time": times, "columns": DATA_COLUMNS}


def posterior_paths(idata, data, num_draws=20):
    """The guided paths of ``num_draws`` posterior draws of (parameters, z): posterior paths of (X, Y)."""
    post = mp.diagnostics.get_group(idata, "posterior")
    latent = mp.diagnostics.get_group(idata, "latent_posterior")  # the innovations (pcn_inference_data)
    draws = {k: np.asarray(post[k]).reshape(-1) for k in VAR_NAMES}
    draws["z"] = np.asarray(latent["z"]).reshape((-1,) + tuple(latent["z"].shape[2:]))
    pick = np.linspace(0, len(draws["sigma"]) - 1, min(num_draws, len(draws["sigma"]))).astype(int)
    times, pos = _split(data["y"])

    def one(g, b, s, z):
        return fhn_sde(g, b, s, times, _anchors(pos)).guided_sample(None, pos, noise=z.reshape(-1))

    out = jax.jit(jax.vmap(one))(*(jnp.asarray(draws[k][pick]) for k in VAR_NAMES + ["z"]))
    return np.asarray(out.times[0]).reshape(-1), np.asarray(out.states).reshape(len(pick), -1, 2)


def plots(idata, data, out_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid, paths = posterior_paths(idata, data)
    times, pos = (np.asarray(a) for a in _split(data["y"]))
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True)
    for k, p in enumerate(paths):
        ax1.plot(grid, p[:, 0], lw=0.7, alpha=0.4, color="C0", label="posterior paths" if k == 0 else None)
        ax2.plot(grid, p[:, 1], lw=0.7, alpha=0.4, color="C2")
    ax1.plot(times, pos[:, 0], "o", color="C3", ms=4, label="observed potential X")
    ax1.set_ylabel("X (observed)")
    ax1.legend(loc="upper right", frameon=False, fontsize="small")
    ax1.set_title("FitzHugh-Nagumo: posterior paths (pCN on the innovations, NUTS on the parameters)")
    ax2.set_ylabel("Y (never observed)")
    ax2.set_xlabel("time")
    fig.tight_layout()
    path = os.path.join(out_dir, "guided_paths.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]
