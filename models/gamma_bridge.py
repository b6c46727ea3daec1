"""Gamma-process bridge with a time-varying rate, guided two ways (a script: run ``python models/gamma_bridge.py``; not a ``markovppl fit`` model).

Settings of bffg.md §1.7 (after ``fmeulen/GuidedDAGExamples.jl``, ``gammabridge.jl``): $T = 100$ split into
$n = 1000$ steps, shape $\\alpha_s = 0.1$ per step, rate $\\beta_s = 0.1 + \\sin(\\pi s / n)$, $x_0 = 0$,
conditioned on the endpoint $x_v$ (here the mean $E[X_T] = \\sum_s \\alpha_s/\\beta_s$). The script draws guided
bridges with construction (a) (the homogeneous auxiliary's Beta bridge, $\\tilde\\beta = 0.4$) and (b) (true kernel
times $\\tilde h$, $\\tilde\\beta = 0.3$), prints their importance-sampling estimates of $\\log p(x_v)$ with standard
errors, the spread of the log-weights and the ESS, an independent oracle (numerical inversion of the Laplace
transform $\\prod_s (\\beta_s/(\\beta_s + \\lambda))^{\\alpha_s}$), and writes a plot of guided paths against the
endpoint (``docs/figures/gamma_bridge_paths.png`` by default).
"""

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from markovppl.guided.gamma import gamma_bridge_evidence
from markovppl.kernels.gamma import GammaProcess

T, N_STEPS, X0 = 100.0, 1000, 0.0
AUX_RATE = {"auxiliary": 0.4, "tilted": 0.3}


def process(n=N_STEPS, total=T):
    s = np.arange(1, n + 1)
    return GammaProcess(1.0, jnp.asarray(0.1 + np.sin(np.pi * s / n)), jnp.full(n, total / n))


def oracle_log_density(x, proc):
    """log p(X_T = x) by inverting the Laplace transform along the vertical line through its saddle point."""
    from scipy import integrate
    from scipy.optimize import brentq

    shapes, rates = np.asarray(proc.shapes()), np.asarray(proc.rates())
    lam = brentq(lambda s: np.sum(shapes / (rates + s)) - x, -rates.min() * (1 - 1e-12), 1e6)
    base = np.sum(shapes * (np.log(rates) - np.log(rates + lam))) + lam * x

    def integrand(w):
        s = lam + 1j * w
        return np.exp(np.sum(shapes * (np.log(rates) - np.log(rates + s))) + s * x - base).real

    val, _ = integrate.quad(integrand, 0, np.inf, limit=1000, epsabs=0, epsrel=1e-12)
    return float(np.log(val / np.pi) + base)


def run(num_paths=1000, seed=0, plot_path=None):
    proc = process()
    x_end = float(jnp.sum(proc.shapes() / proc.rates()))
    results = {"x_end": x_end, "oracle": oracle_log_density(x_end, proc)}
    paths_by = {}
    for method, bt in AUX_RATE.items():
        t0 = time.perf_counter()
        est, paths = gamma_bridge_evidence(jax.random.PRNGKey(seed), proc, X0, x_end, bt, num_paths, method=method)
        jax.block_until_ready(paths.log_weight)
        results[method] = dict(log_evidence=float(est.log_evidence), rel_se=float(est.standard_error / est.evidence),
                               sd_log_weight=float(jnp.std(paths.log_weight)), ess=float(est.ess),
                               overflow=int(est.num_overflow), seconds=time.perf_counter() - t0)
        paths_by[method] = paths
    if plot_path:
        _plot(proc, x_end, paths_by, plot_path)
    return results


def _plot(proc, x_end, paths_by, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.concatenate([[0.0], np.cumsum(np.asarray(proc.duration))])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, (method, paths) in zip(axes[:2], paths_by.items()):
        lw = np.asarray(paths.log_weight)
        order = np.argsort(-lw)[:20]
        for i in order:
            ax.plot(t, np.asarray(paths.path[i]), lw=0.8, alpha=0.7)
        ax.axhline(x_end, color="k", ls="--", lw=1)
        ax.plot([T], [x_end], "ko")
        ax.set_title(f"({'a' if method == 'auxiliary' else 'b'}) {method}: 20 highest-weight bridges")
        ax.set_xlabel("t")
    axes[0].set_ylabel("x")
    for method, paths in paths_by.items():
        lw = np.asarray(paths.log_weight)
        axes[2].hist(lw - lw.max(), bins=40, alpha=0.6, label=f"{method} (sd {lw.std():.2f})")
    axes[2].set_title("log-weights (shifted to max 0)")
    axes[2].legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-paths", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default=os.path.join(os.path.dirname(__file__), "..", "docs", "figures", "gamma_bridge_paths.png"))
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    res = run(args.num_paths, args.seed, args.plot)
    print(f"x_end = {res['x_end']:.4f}; oracle log p(x_end) = {res['oracle']:.5f}")
    for method in AUX_RATE:
        r = res[method]
        print(f"{method:>9}: log p = {r['log_evidence']:.5f} (rel. SE {r['rel_se']:.4f}), sd(log w) = {r['sd_log_weight']:.3f}, "
              f"ESS = {r['ess']:.1f} / {args.num_paths}, overflow = {r['overflow']}, {r['seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
