"""Conformal prediction of hidden states: coverage, set size and time per prediction, side by side.

Two-state HMM grid of Nettasinghe et al. (2023) (P = [[p, 1-p], [1-p, p]], B = [[b, 1-b], [1-b, b]]),
calibration length T, horizon 1, alpha = 0.2, R independent problems per cell. Methods:

* ``state``  — markovppl ``BlockConformalHMM`` (hidden-state blocks, randomised ties), M permutations;
* ``pair``   — the same with state-observation pair blocks (the paper's blocking);
* ``orig``   — the reference code's anchoring (permuted windows end one step before the reference
  element, p = #{S_pi >= S}/M), reproduced inside markovppl as a private baseline only;
* ``split``  — naive split conformal that ignores dependence: crepes ``WrapClassifier`` around a
  scikit-learn logistic regression on per-time features (one-hot y_t, one-hot x_{t-1}), trained on
  the first half of the calibration pairs and calibrated on the second half (hinge score,
  ``smoothing=True``); one fit per problem;
* ``trivial``— the randomised-trivial set (all states with probability 1 - alpha).

The last cell is the 3-state cyclic chain of the authors' first notebook (P = [[.1,.6,.3],[.3,.1,.6],
[.6,.3,.1]], three symbols, 0.6 on the emission diagonal).

Needs ``crepes`` and ``scikit-learn`` (``pip install -e ".[bench]"``); without them the split row is
skipped. Usage: ``python benchmarks/bench_conformal.py [--R 500] [--T 50] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import time

from _common import machine, print_header, print_table, setup_jax, versions

ALPHA = 0.2
CELLS = [(0.1, 0.9), (0.1, 0.75), (0.5, 0.75), (0.9, 0.9), ("cyclic", 0.6)]  # (p, b); "cyclic": 3 states


def simulate(seed, r, t, p, b):
    import jax
    import jax.numpy as jnp
    import numpy as np
    import numpyro.distributions as dist

    import markovppl as mp

    if p == "cyclic":  # the authors' first notebook: 3-state cyclic chain, 3 symbols, b on the diagonal
        P = jnp.array([[0.1, 0.6, 0.3], [0.3, 0.1, 0.6], [0.6, 0.3, 0.1]])
        B = jnp.full((3, 3), (1 - b) / 2) + (b - (1 - b) / 2) * jnp.eye(3)
    else:
        P = jnp.array([[p, 1 - p], [1 - p, p]])
        B = jnp.array([[b, 1 - b], [1 - b, b]])
    k = P.shape[0]
    hmm = mp.HMM(jnp.ones(k) / k, P, dist.Categorical(probs=B), num_steps=t + 1)
    x, y = hmm.sample_with_states(jax.random.PRNGKey(seed), (r,))
    return np.asarray(x), np.asarray(y)


def run_block(x, y, t, blocks, m, original=False, seed=0, k=2):
    from markovppl.conformal import BlockConformalHMM
    from markovppl.conformal._baselines import original_anchoring_sets

    cp = BlockConformalHMM(k, confidence_level=1 - ALPHA, blocks=blocks, n_permutations=m, random_state=seed)
    cp.fit(x[:, :t], y[:, :t])
    predict = (lambda: original_anchoring_sets(cp, y[:, t:])) if original else (lambda: cp.predict_set(y[:, t:])[1])
    t0 = time.perf_counter()
    predict()  # compile
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    mask = predict()
    steady = time.perf_counter() - t0
    return mask, first, steady / x.shape[0]


def run_split(x, y, t, seed=0, k=2):
    import numpy as np
    from crepes import WrapClassifier
    from sklearn.linear_model import LogisticRegression

    r = x.shape[0]
    eye = np.eye(k)
    mask = np.zeros((r, k), bool)
    t0 = time.perf_counter()
    for i in range(r):
        feats = np.concatenate([eye[y[i, 1 : t + 1]], eye[x[i, :t]]], 1)  # (y_t, x_{t-1}) for t = 1..T
        target = x[i, 1 : t + 1]
        train, cal = slice(0, (t - 1) // 2), slice((t - 1) // 2, t - 1)
        if len(set(target[train].tolist())) < 2:  # one class only: the whole label set
            mask[i] = True
            continue
        clf = WrapClassifier(LogisticRegression())
        clf.fit(feats[train], target[train])
        clf.calibrate(feats[cal], target[cal], seed=seed + i)
        pred = clf.predict_set(feats[t - 1 : t], confidence=1 - ALPHA, seed=seed + i, labels=False)
        mask[i, clf.learner.classes_] = np.asarray(pred)[0].astype(bool)
    return mask, (time.perf_counter() - t0) / r


def single_problem_latency(x, y, t, m, k=2, repeats=20):
    import statistics

    from markovppl.conformal import BlockConformalHMM

    cp = BlockConformalHMM(k, confidence_level=1 - ALPHA, n_permutations=m, random_state=0).fit(x[0, :t], y[0, :t])
    cp.predict_set(y[0, t:])
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        cp.predict_set(y[0, t:])
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--R", type=int, default=1000)
    parser.add_argument("--T", type=int, default=50)
    parser.add_argument("--M", type=int, default=200)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    setup_jax(True)
    import numpy as np

    print_header(f"Conformal prediction of hidden states, two-state grid, T={args.T}, H=1, alpha={ALPHA}, "
                 f"R={args.R}, M={args.M}", True)
    import importlib.util

    have_split = all(importlib.util.find_spec(mod) is not None for mod in ("crepes", "sklearn"))
    if not have_split:
        print("crepes / scikit-learn not installed: the split-conformal row is skipped\n")
    rows, raw = [], []
    for ci, (p, b) in enumerate(CELLS):
        x, y = simulate(100 + ci, args.R, args.T, p, b)
        k = 3 if p == "cyclic" else 2
        truth = x[:, args.T]
        results = {}
        for name, kw in (("state", dict(blocks="state")), ("pair", dict(blocks="pair")),
                         ("orig", dict(blocks="pair", original=True))):
            mask, first, per = run_block(x, y, args.T, m=args.M, k=k, **kw)
            results[name] = (mask, per, first)
        if have_split:
            mask, per = run_split(x, y, args.T, k=k)
            results["split"] = (mask, per, None)
        rng = np.random.default_rng(ci)
        results["trivial"] = (np.repeat(rng.uniform(size=(args.R, 1)) < 1 - ALPHA, k, 1), 0.0, None)
        ours = results["state"][1]
        for name, (mask, per, first) in results.items():
            cov = mask[np.arange(args.R), truth].mean()
            se = np.sqrt(cov * (1 - cov) / args.R)
            size = mask.sum(1)
            ratio = "" if name in ("state", "trivial") else f"{per / ours:.1f}"
            label = f"3-state cyclic, b={b}" if p == "cyclic" else f"p={p}, b={b}"
            rows.append((label, name, f"{cov:.3f} ± {se:.3f}", f"{size.mean():.3f}", f"{np.mean(size == 0):.3f}",
                         f"{per * 1e6:.1f} µs" if per else "—", "" if first is None else f"{first:.1f} s", ratio))
            raw.append(dict(p=p, b=b, method=name, coverage=float(cov), se=float(se), set_size=float(size.mean()),
                            empty=float(np.mean(size == 0)), time_per_prediction_s=per, first_call_s=first))
    print_table(rows, ["cell", "method", "coverage ± SE", "mean |C|", "empty", "time / prediction",
                       "first call (compile)", "time ratio vs state"])
    print("time / prediction: batched methods (state, pair, orig) predict all R problems in one call and the time is"
          " divided by R; split fits and calibrates one classifier per problem.")
    latency = single_problem_latency(x, y, args.T, args.M, k=k)  # the last cell
    print(f"one problem per call (state blocks, Python overhead included): median {latency * 1e3:.2f} ms per predict_set")
    raw.append(dict(method="state, one problem per call", time_per_prediction_s=latency))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(rows=raw, versions=versions(), machine=machine(), args=vars(args)), fh, indent=1)


if __name__ == "__main__":
    main()
