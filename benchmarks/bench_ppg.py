"""PPG vs PaRIS at equal cost: bias, standard deviation and RMSE of smoothed additive functionals.

Protocol (ppg_conformal.md §A7 E1 / §C T-A9 / §D D4): scalar LGSSM (rho = 0.9, sigma_x = 1,
sigma_y = 0.5), T = 100 simulated observations, functionals h = sum_t x_t and sum_t x_{t-1} x_t with
exact values from the Kalman/RTS smoother. At an equal budget of particle-steps, PaRIS runs once with
N * k particles while PPG runs k iterations with N particles (burn-in k0 = k / 4, from the zero
path). Both use K = 2 backward draws and the fixed-cost hybrid backward sampler. Each configuration is
repeated over R independent seeds (vmapped); bias is reported with its Monte Carlo standard error.
Wall-clock times are per run, measured after compilation, on this machine.

Usage: python benchmarks/bench_ppg.py [--reps R] [--T T]
"""

from __future__ import annotations

import argparse
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

import markovppl as mp
from markovppl import particles as pt

jax.config.update("jax_enable_x64", True)


def problem(T, seed=0, rho=0.9, sx=1.0, sy=0.5):
    rng = np.random.default_rng(seed)
    x = np.zeros(T)
    x[0] = rng.normal()
    for t in range(1, T):
        x[t] = rho * x[t - 1] + sx * rng.normal()
    y = jnp.asarray((x + sy * rng.normal(size=T))[:, None])
    ssm = mp.LinearGaussianSSM(jnp.zeros(1), jnp.eye(1), rho * jnp.eye(1), sx**2 * jnp.eye(1), jnp.eye(1),
                               sy**2 * jnp.eye(1))
    post = ssm.smooth(y)
    m = np.asarray(post.smoothed_means[:, 0])
    cross = np.asarray(post.smoothed_cross_covs[:, 0, 0]) + m[:-1] * m[1:]
    return ssm, y, {"sum": m.sum(), "cross": cross.sum()}


def h(t, xp, x):
    return {"sum": x[:, 0], "cross": jnp.where(t > 0, xp[:, 0] * x[:, 0], 0.0)}


def timed(fn, keys):
    out = fn(keys)
    jax.block_until_ready(out)                       # compile + first run
    start = time.perf_counter()
    out = fn(keys)
    jax.block_until_ready(out)
    return jax.tree.map(np.asarray, out), (time.perf_counter() - start) / keys.shape[0]


def summarise(name, est, exact, sec):
    rows = []
    for k in exact:
        err = est[k] - exact[k]
        r = err.shape[0]
        rows.append(f"| {name} | {k} | {err.mean():+.4f} ± {err.std(ddof=1) / np.sqrt(r):.4f} | "
                    f"{err.std(ddof=1):.4f} | {np.sqrt(np.mean(err**2)):.4f} | {1e3 * sec:.1f} |")
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=100)
    parser.add_argument("--T", type=int, default=100)
    args = parser.parse_args()
    ssm, y, exact = problem(args.T)
    fk = pt.bootstrap_lgssm(ssm, y)
    T, R = args.T, args.reps
    keys = jax.random.split(jax.random.PRNGKey(1), R)
    print(f"markovppl PPG vs PaRIS, T = {T}, R = {R}, jax {jax.__version__}, {platform.processor() or platform.machine()}, "
          f"{jax.devices()[0].platform}")
    print("| method | functional | bias ± MC s.e. | sd | RMSE | ms / run |")
    print("|---|---|---|---|---|---|")
    for n, k in [(32, 16), (16, 32)]:
        k0 = k // 4
        paris = jax.jit(jax.vmap(lambda key: pt.paris_smoother(key, fk, h, T, n * k, backward_sampler="hybrid").estimate))
        ppg = jax.jit(jax.vmap(lambda key: pt.parisian_particle_gibbs(key, fk, h, jnp.zeros((T, 1)), n, k, burn_in=k0,
                                                                      backward_sampler="hybrid").estimate))
        est_paris, t_paris = timed(paris, keys)
        est_ppg, t_ppg = timed(ppg, keys)
        for row in summarise(f"PaRIS N={n * k}", est_paris, exact, t_paris) + \
                summarise(f"PPG N={n}, k={k}, k0={k0}", est_ppg, exact, t_ppg):
            print(row)


if __name__ == "__main__":
    main()
