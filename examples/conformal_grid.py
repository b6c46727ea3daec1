"""Block conformal prediction on the two-state grid of Nettasinghe et al. (2023).

Two-state HMM with P = [[p, 1-p], [1-p, p]] and B = [[b, 1-b], [1-b, b]], calibration length T = 50,
alpha = 0.2, horizons H = 1 and 2. For each p and b, R independent problems are simulated and
predicted with hidden-state blocks and with state-observation pair blocks (the paper's blocking);
coverage should sit at 0.8 (randomised tie-breaking makes it exact) and the mean set size is
compared with the randomised-trivial set (all 2^H sequences with probability 0.8).

Run: ``python examples/conformal_grid.py`` (about a minute; most of it compilation) prints a table
and, with ``--plot``, saves ``docs/figures/conformal_grid.png``.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

import markovppl as mp
from markovppl.conformal import BlockConformalHMM

ALPHA = 0.2
PS = (0.1, 0.3, 0.5, 0.7, 0.9)
BS = (0.75, 0.9)


def simulate(seed, r, t, h, p, b):
    P = jnp.array([[p, 1 - p], [1 - p, p]])
    B = jnp.array([[b, 1 - b], [1 - b, b]])
    hmm = mp.HMM(jnp.array([0.5, 0.5]), P, dist.Categorical(probs=B), num_steps=t + h)
    x, y = hmm.sample_with_states(jax.random.PRNGKey(seed), (r,))
    return np.asarray(x), np.asarray(y)


def grid(r=1000, t=50, horizons=(1, 2), n_permutations=100, seed=0, ps=PS, bs=BS):
    """Rows (H, p, b, blocks, coverage, se, mean set size)."""
    rows = []
    for h in horizons:
        for i, p in enumerate(ps):
            for j, b in enumerate(bs):
                cell_seed = seed + 100 * i + 10 * j + h
                x, y = simulate(cell_seed, r, t, h, p, b)
                for blocks in ("state", "pair"):  # a seed per cell: cells do not share tie-breaking draws
                    cp = BlockConformalHMM(2, confidence_level=1 - ALPHA, blocks=blocks, horizon=h,
                                           n_permutations=n_permutations, random_state=cell_seed)
                    ev = cp.fit(x[:, :t], y[:, :t]).evaluate(x[:, t:], y[:, t:])
                    se = np.sqrt(ev["coverage"] * (1 - ev["coverage"]) / r)
                    rows.append((h, p, b, blocks, ev["coverage"], se, ev["set_size"]))
    return rows


def main(r=1000, plot=False):
    rows = grid(r)
    print(f"two-state grid, T = 50, alpha = {ALPHA}, R = {r} problems per cell")
    print(" H    p     b  blocks  coverage (SE)   mean |C|  trivial")
    for h, p, b, blocks, cov, se, size in rows:
        print(f" {h}  {p:.1f}  {b:.2f}  {blocks:6s}  {cov:.3f} ({se:.3f})   {size:.3f}    {(1 - ALPHA) * 2**h:.2f}")
    if plot:
        _plot(rows)
    return rows


def _plot(rows):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(8, 5.2), sharex=True)
    for col, h in enumerate((1, 2)):
        for b, ls in zip(BS, ("-", "--")):
            for blocks, color in (("state", "C0"), ("pair", "C1")):
                sel = [row for row in rows if row[0] == h and row[2] == b and row[3] == blocks]
                ps = [row[1] for row in sel]
                axes[0, col].errorbar(ps, [row[4] for row in sel], yerr=[3 * row[5] for row in sel], color=color, ls=ls,
                                      marker="o", ms=3, capsize=2, label=f"{blocks} blocks, b = {b}")
                axes[1, col].plot(ps, [row[6] / 2**h for row in sel], color=color, ls=ls, marker="o", ms=3)
        axes[0, col].axhline(1 - ALPHA, color="k", lw=0.8, ls=":")
        axes[0, col].set_ylim(0.7, 0.9)
        axes[0, col].set_title(f"horizon H = {h}")
        axes[1, col].axhline(1 - ALPHA, color="k", lw=0.8, ls=":", label="randomised-trivial set")
        axes[1, col].set_xlabel("persistence p")
    axes[0, 0].set_ylabel("coverage (± 3 SE)")
    axes[1, 0].set_ylabel("mean |C| / 2^H")
    axes[0, 0].legend(fontsize=7)
    axes[1, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig("docs/figures/conformal_grid.png", dpi=120)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=1000)
    parser.add_argument("--plot", action="store_true")
    args = parser.parse_args()
    main(args.problems, args.plot)
