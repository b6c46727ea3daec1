"""Ion channel as a continuous-time Markov jump process (C1 <-> C2 <-> O) seen through a noisy current at irregular times.

Run it with ``markovppl fit ion_channel``; fit your own recording with
``--data my.csv --columns time,current --time-column time`` (times in ms, non-decreasing).

Model: the channel's gating is a 3-state continuous-time Markov chain with two closed states C1, C2
and an open state O, generator
$$Q = \\begin{pmatrix} -k_{12} & k_{12} & 0 \\\\ k_{21} & -(k_{21} + k_{23}) & k_{23} \\\\ 0 & k_{32} & -k_{32} \\end{pmatrix}$$
(rates per ms, $\\log k \\sim N(0, 1.5^2)$), started from its stationary law. The current is sampled at
irregular times $t_k$: $y_k \\mid x(t_k) \\sim N(i_\\text{open} 1\\{x(t_k) = O\\}, \\sigma^2)$ with
$i_\\text{open} \\sim \\mathrm{LogNormal}(0, 0.5)$ pA and $\\sigma \\sim HN(0.5)$. The two closed states carry the
same current, so they are told apart only through dwell times, the classic aggregated-Markov problem.
``mp.MarkovJumpProcess`` marginalises the path exactly (transition matrices $e^{(t_{k+1} - t_k)Q}$); the
plot shows exact continuous-time posterior paths (skeleton by forward guiding, then uniformisation
bridges between observations).

Data: no recording with a compatible licence ships with markovppl, so ``load_data`` **simulates** 400
observations at exponential sampling gaps (mean 0.12 ms) from $k_{12} = 2, k_{21} = 1, k_{23} = 4,
k_{32} = 3$, $i_\\text{open} = 1$ pA, $\\sigma = 0.3$ pA, with a fixed seed (``TRUE_PARAMS``).
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

import markovppl as mp
from markovppl.jump import path_state_at, suggest_max_jumps
from markovppl.kernels import generator_from_rates
from markovppl.kernels.jump import expm_generator

DATA_COLUMNS = ["time", "current"]
TIME_COLUMN = "time"
VAR_NAMES = ["rates", "i_open", "sigma"]
TRUE_PARAMS = {"rates": (2.0, 1.0, 4.0, 3.0), "i_open": 1.0, "sigma": 0.3}
NUM_OBS, MEAN_GAP, SEED = 400, 0.12, 20260601
OPEN = 2


def generator(rates):
    """Q from (k12, k21, k23, k32); C1 and O do not communicate directly."""
    k12, k21, k23, k32 = (rates[..., i] for i in range(4))
    zero = jnp.zeros_like(k12)
    off = jnp.stack([jnp.stack([zero, k12, zero], -1), jnp.stack([k21, zero, k23], -1),
                     jnp.stack([zero, k32, zero], -1)], -2)
    return generator_from_rates(off)


def channel(rates, i_open, sigma, times):
    q = generator(rates)
    pi = mp.stationary_distribution(expm_generator(q, 1.0))  # pi e^Q = pi  <=>  pi Q = 0
    levels = jnp.stack([jnp.zeros_like(i_open), jnp.zeros_like(i_open), i_open])
    return mp.MarkovJumpProcess(pi, q, dist.Normal(levels, sigma), times)


def _split(y):
    y = jnp.asarray(y)
    if y.ndim != 2 or y.shape[-1] != 2:
        raise ValueError(f"ion_channel expects y with two columns (time, current), got shape {y.shape}")
    return y[:, 0], y[:, 1]


def model(y=None, times=None):
    if y is not None:
        times, current = _split(y)
    else:
        times, current = (jnp.asarray(load_data()["y"][:, 0]) if times is None else jnp.asarray(times)), None
    log_rates = numpyro.sample("log_rates", dist.Normal(0.0, 1.5).expand([4]).to_event(1))
    rates = numpyro.deterministic("rates", jnp.exp(log_rates))
    i_open = numpyro.sample("i_open", dist.LogNormal(0.0, 0.5))
    sigma = numpyro.sample("sigma", dist.HalfNormal(0.5))
    numpyro.sample("y", channel(rates, i_open, sigma, times), obs=current)


def load_data():
    rng = np.random.default_rng(SEED)
    times = np.cumsum(rng.exponential(MEAN_GAP, NUM_OBS))
    times -= times[0]
    d = channel(jnp.asarray(TRUE_PARAMS["rates"]), jnp.asarray(TRUE_PARAMS["i_open"]), jnp.asarray(TRUE_PARAMS["sigma"]),
                jnp.asarray(times))
    current = np.asarray(d.sample(jax.random.PRNGKey(SEED)))
    return {"y": np.stack([times, current], 1), "time": times, "columns": DATA_COLUMNS}


def posterior_open_probability(idata, data, grid, num_draws: int = 40, seed: int = 0):
    """P(channel open at each grid time | data) from exact posterior paths, one per posterior draw
    (``num_draws`` draws spread over the chains), and a few of the paths themselves."""
    from markovppl import diagnostics

    post = diagnostics.get_group(idata, "posterior")
    rates = np.asarray(post["rates"]).reshape(-1, 4)
    i_open = np.asarray(post["i_open"]).reshape(-1)
    sigma = np.asarray(post["sigma"]).reshape(-1)
    pick = np.linspace(0, len(sigma) - 1, min(num_draws, len(sigma))).astype(int)
    times, current = (np.asarray(a) for a in _split(data["y"]))
    q_max = np.asarray(generator(jnp.asarray(rates[pick].max(0))))
    max_jumps = suggest_max_jumps(q_max, np.diff(times).max(), tail=1e-8)

    def one(key, r, i, s):
        d = channel(r, i, s, jnp.asarray(times))
        path = d.posterior_path(key, jnp.asarray(current), max_jumps=max_jumps)
        return path_state_at(path, jnp.asarray(grid)), path.overflow

    keys = jax.random.split(jax.random.PRNGKey(seed), len(pick))
    states, overflow = jax.jit(jax.vmap(one))(keys, jnp.asarray(rates[pick]), jnp.asarray(i_open[pick]), jnp.asarray(sigma[pick]))
    states = np.asarray(states)
    return (states == OPEN).mean(0), states, int(np.asarray(overflow).sum())


def plots(idata, data, out_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times, current = (np.asarray(a) for a in _split(data["y"]))
    window = times <= times[0] + 12.0  # the first 12 ms, where individual openings are visible
    grid = np.linspace(times[0], times[window][-1], 1200)
    p_open, states, overflow = posterior_open_probability(idata, data, grid)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    ax1.plot(times[window], current[window], "o", color="0.3", ms=3, label="observed current (irregular times)")
    i_open = float(np.asarray(mp.diagnostics.get_group(idata, "posterior")["i_open"]).mean())
    for k in range(3):
        ax1.step(grid, i_open * (states[k] == OPEN), where="post", lw=1.0, alpha=0.8, label="posterior path" if k == 0 else None)
    ax1.set_ylabel("current (pA)")
    ax1.legend(loc="upper right", frameon=False, fontsize="small")
    ax1.set_title("Ion channel: exact continuous-time posterior paths between irregular observations")
    ax2.fill_between(grid, p_open, step="post", color="C1", alpha=0.6)
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("P(open | data)")
    ax2.set_xlabel(f"time (ms){'' if overflow == 0 else f'  [{overflow} paths overflowed]'}")
    fig.tight_layout()
    path = os.path.join(out_dir, "posterior_paths.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]
