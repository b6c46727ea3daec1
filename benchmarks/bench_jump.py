"""Jump-process benchmark: MarkovJumpProcess evidence (and gradient) vs a SciPy expm forward algorithm.

Run:  python benchmarks/bench_jump.py [--repeats 5] [--cases 3:1000,3:10000,10:1000]

Model: a K-state continuous-time chain with a dense random generator (off-diagonal rates Exp(1)),
observed at T irregular times (gaps Exp(mean 0.5)) through Gaussian emissions with state means 0..K-1
and sd 0.7, uniform initial law. float64 throughout.

Timed (each case):
  - markovppl value:  jit(MarkovJumpProcess(...).log_prob) as a function of the off-diagonal rates;
  - markovppl v+g:    jit(value_and_grad) of the same in the K(K-1) rates (exact reverse mode);
  - SciPy value:      forward algorithm with scipy.linalg.expm per gap (NumPy loop over time);
  - SciPy v+g (FD):   value plus central finite differences in the K(K-1) rates (2 K(K-1) more passes),
                      the gradient one gets from SciPy without writing adjoint code.
markovppl's "first" includes tracing and compilation. Ratios are SciPy time / markovppl time (> 1:
markovppl faster). Values are checked to agree to 1e-9 relative, gradients to 1e-5.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import fmt_s, print_header, print_table, setup_jax, time_fn  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5, help="timed calls per measurement (median)")
    p.add_argument("--cases", type=str, default="3:1000,3:10000,10:1000", help="K:T pairs, comma separated")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def scipy_loglik(rates, times, y, k):
    import numpy as np
    import scipy.linalg
    from scipy.special import logsumexp

    q = rates * (1 - np.eye(k))
    q = q - np.diag(q.sum(1))
    ll = -0.5 * ((y[:, None] - np.arange(k)) / 0.7) ** 2 - np.log(0.7) - 0.5 * np.log(2 * np.pi)
    alpha = np.log(np.full(k, 1.0 / k)) + ll[0]
    for t in range(1, len(y)):
        p = scipy.linalg.expm((times[t] - times[t - 1]) * q)
        top = alpha.max()
        alpha = np.log(np.maximum(np.exp(alpha - top) @ p, 1e-300)) + top + ll[t]
    return float(logsumexp(alpha))


def scipy_value_and_fd_grad(rates, times, y, k, eps=1e-6):
    import numpy as np

    value = scipy_loglik(rates, times, y, k)
    grad = np.zeros_like(rates)
    for i in range(k):
        for j in range(k):
            if i != j:
                e = np.zeros_like(rates)
                e[i, j] = eps
                grad[i, j] = (scipy_loglik(rates + e, times, y, k) - scipy_loglik(rates - e, times, y, k)) / (2 * eps)
    return value, grad


def time_numpy(fn, repeats):
    t0 = time.perf_counter()
    out = fn()
    times = [time.perf_counter() - t0]
    for _ in range(max(0, min(repeats, 3 if times[0] > 2.0 else repeats) - 1)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main(argv=None):
    args = parse_args(argv)
    setup_jax(True)
    import jax
    import jax.numpy as jnp
    import numpy as np
    import numpyro.distributions as dist

    import markovppl as mp
    from markovppl.kernels import generator_from_rates

    print_header("Jump-process evidence: markovppl MarkovJumpProcess vs SciPy expm forward algorithm", True)
    rows = []
    for case in args.cases.split(","):
        k, t_len = (int(v) for v in case.split(":"))
        rng = np.random.default_rng(args.seed)
        rates = rng.exponential(1.0, (k, k)) * (1 - np.eye(k))
        times = np.cumsum(rng.exponential(0.5, t_len))
        y = rng.normal(rng.integers(0, k, t_len).astype(float), 0.7)
        tj, yj = jnp.asarray(times), jnp.asarray(y)

        def loglik(r):
            d = mp.MarkovJumpProcess(jnp.full(k, 1.0 / k), generator_from_rates(r), dist.Normal(jnp.arange(k, dtype=r.dtype), 0.7), tj)
            return d.log_prob(yj)

        value_fn = jax.jit(loglik)
        vg_fn = jax.jit(jax.value_and_grad(loglik))
        r = jnp.asarray(rates)
        first_v, med_v, ours_v = time_fn(value_fn, r, repeats=args.repeats)
        first_g, med_g, (ours_v2, ours_g) = time_fn(vg_fn, r, repeats=args.repeats)
        sp_v_time, sp_v = time_numpy(lambda: scipy_loglik(rates, times, y, k), args.repeats)
        sp_g_time, (sp_v2, sp_g) = time_numpy(lambda: scipy_value_and_fd_grad(rates, times, y, k), min(args.repeats, 3))
        assert abs(float(ours_v) - sp_v) <= 1e-9 * max(1.0, abs(sp_v)), (float(ours_v), sp_v)
        g_err = float(np.max(np.abs(np.asarray(ours_g) - sp_g)) / max(1.0, np.max(np.abs(sp_g))))
        assert g_err < 1e-5, g_err
        rows.append([k, t_len, "value", fmt_s(first_v), fmt_s(med_v), fmt_s(sp_v_time), f"{sp_v_time / med_v:.1f}"])
        rows.append([k, t_len, "value + grad", fmt_s(first_g), fmt_s(med_g), fmt_s(sp_g_time) + " (FD)",
                     f"{sp_g_time / med_g:.0f}"])
        print(f"K={k} T={t_len}: log p = {float(ours_v):.6f} (SciPy {sp_v:.6f}); max rel. grad diff vs FD {g_err:.1e}",
              flush=True)
    print()
    print_table(rows, ["K", "T", "quantity", "markovppl first", "markovppl median", "SciPy", "SciPy / markovppl"])


if __name__ == "__main__":
    main()
