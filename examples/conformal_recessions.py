"""Conformal prediction sets for the US business-cycle regime from GNP growth.

The hidden state X is the NBER recession indicator (1 = recession quarter), the observation Y is
quarterly growth of US real GNP (Hamilton's data), both recorded for 1951Q2-1984Q4 in
``markovppl.datasets``. Each quarter t from 1961Q2 on, the states and growth rates up to t-1 are
the calibration sequence and the growth of quarter t is the new observation; the method returns
the set of regimes for quarter t that is guaranteed (marginally, if the data are a mixture of
two-state Gaussian HMMs) to hold the true regime with probability >= 1 - alpha. Blocks are cut at
returns of the regime; the Gaussian emission is estimated from per-regime counts, sums and sums of
squares, which block permutations keep.

Run: ``python examples/conformal_recessions.py`` (under a minute on a laptop CPU, most of it
compilation). Prints coverage, mean set size and the shares of singleton and empty sets, averaged
over repeated runs of the method's randomness, and saves
``docs/figures/conformal_recessions.png`` when ``--plot`` is given.
"""

from __future__ import annotations

import argparse

import numpy as np

import markovppl as mp
from markovppl.conformal import BlockConformalHMM

START = 40  # first predicted quarter: 1961Q2 (40 quarters of calibration data)


def rolling_problems(states, obs, start, horizon=1):
    """One problem per quarter t >= start: calibration (x_{0:t-1}, y_{0:t-1}), new y_{t:t+H-1}."""
    ends = np.arange(start, len(states) - horizon + 1)
    x_cal = np.broadcast_to(states, (len(ends), len(states)))
    y_cal = np.broadcast_to(obs, (len(ends), len(obs)))
    y_new = np.stack([obs[t : t + horizon] for t in ends])
    x_true = np.stack([states[t : t + horizon] for t in ends])
    return ends, x_cal, y_cal, ends, y_new, x_true


def main(confidence_level=0.8, n_permutations=500, n_repeats=20, seed=0, plot=False):
    gnp, rec = mp.datasets.load_gnp_growth(), mp.datasets.load_us_recessions()
    x, y = rec.values, gnp.values
    ends, x_cal, y_cal, lengths, y_new, x_true = rolling_problems(x, y, START)
    cp = BlockConformalHMM(2, confidence_level=confidence_level, emission="normal",
                           n_permutations=n_permutations, random_state=seed)
    cp.fit(x_cal, y_cal, lengths=lengths)
    rows = np.arange(len(ends))
    coverage, size, singleton, empty = [], [], [], []
    for _ in range(n_repeats):  # the method's own randomness (permutations, tie-breaking) varies a lot on 95 quarters
        _, p = cp.predict_p(y_new)
        mask = p > 1 - confidence_level
        sizes = mask.sum(1)
        coverage.append(mask[rows, x_true[:, 0]].mean())
        size.append(sizes.mean())
        singleton.append(np.mean(sizes == 1))
        empty.append(np.mean(sizes == 0))
        if len(coverage) == 1:
            p_first = p
    print(f"{len(ends)} one-quarter-ahead regime predictions, {gnp.time[ends[0]]:.2f}-{gnp.time[ends[-1]]:.2f}, "
          f"averaged over {n_repeats} runs of the method's randomness")
    print(f"target coverage {confidence_level:.2f}: coverage {np.mean(coverage):.3f} (runs {np.min(coverage):.2f}-"
          f"{np.max(coverage):.2f}), mean set size {np.mean(size):.3f} (randomised-trivial baseline "
          f"{2 * confidence_level:.2f}), singletons {np.mean(singleton):.2f}, empty {np.mean(empty):.2f}")
    if plot:
        _plot(gnp.time[ends], y[ends], x_true[:, 0], p_first, confidence_level)
    return float(np.mean(coverage)), float(np.mean(size))


def _plot(time, growth, truth, p, confidence_level):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax0, ax1) = plt.subplots(2, 1, figsize=(8, 4.8), sharex=True, height_ratios=[1.2, 1])
    for t, r in zip(time, truth):
        if r:
            ax0.axvspan(t - 0.125, t + 0.125, color="0.85", lw=0)
            ax1.axvspan(t - 0.125, t + 0.125, color="0.85", lw=0)
    ax0.plot(time, growth, color="k", lw=1)
    ax0.set_ylabel("GNP growth (%)")
    ax0.set_title("Grey: NBER recession quarters")
    alpha = 1 - confidence_level
    ax1.plot(time, p[:, 1], color="C3", lw=1, label="p-value of 'recession'")
    ax1.plot(time, p[:, 0], color="C0", lw=1, label="p-value of 'expansion'")
    ax1.axhline(alpha, color="k", ls=":", lw=1, label=f"alpha = {alpha:.1f}")
    ax1.set_ylabel("conformal p-value")
    ax1.set_xlabel("year")
    ax1.legend(fontsize=7, loc="upper left", ncol=3)
    fig.tight_layout()
    fig.savefig("docs/figures/conformal_recessions.png", dpi=120)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--confidence-level", type=float, default=0.8)
    parser.add_argument("--permutations", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--plot", action="store_true")
    args = parser.parse_args()
    main(args.confidence_level, args.permutations, args.repeats, plot=args.plot)
