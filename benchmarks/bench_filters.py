"""Filter benchmarks: markovppl vs dynamax vs NumPyro enumeration, side by side.

Run:  python benchmarks/bench_filters.py [--x64] [--repeats 20] [--T 10000] [--skip-enum]

Sections
  A. HMM, K=10 Gaussian emissions, T=10^4: evidence value+grad.
     - raw:       value_and_grad of log p(y | P, mu, sigma) w.r.t. (P, mu, sigma)
                  markovppl HMM.log_prob (sequential / parallel backward filter),
                  markovppl HMM.filter (forward), dynamax hmm_filter.
     - potential: value_and_grad of NumPyro's potential_fn (from initialize_model) for the
                  same model written with markovppl's HMM vs NumPyro's `scan` + enumeration
                  (the numpyro examples/hmm_enum.py model_1 pattern).
  B. LGSSM log-evidence value, T=10^4, state dim 4 (obs 2) and 32 (obs 8), each markovppl
     variant on the fused and on the library linear-algebra path:
     markovppl log_prob (forward covariance-form Kalman filter, evidence only),
     markovppl filter (forward Kalman filter storing the moments),
     markovppl backward information filter (root-message evidence, messages not stored),
     markovppl log_prob parallel=True (state dim <= 8 unless --parallel-large),
     dynamax lgssm_filter.

Every callable is jitted; "first" is the first call (trace + compile + run), "median" the median
of --repeats further calls, all synchronised with block_until_ready. Ratios are peer_time / ours
(> 1 means markovppl is faster). Log-likelihoods are checked against a float64 NumPy reference.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import fmt_s, print_header, print_table, setup_jax, time_fn  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--x64", action="store_true", help="run in float64 (default float32)")
    p.add_argument("--repeats", type=int, default=20, help="timed calls per measurement (median)")
    p.add_argument("--T", type=int, default=10_000, help="sequence length")
    p.add_argument("--K", type=int, default=10, help="HMM states")
    p.add_argument("--dims", type=str, default="4:2,32:8", help="LGSSM state:obs dims, comma separated")
    p.add_argument("--skip-enum", action="store_true", help="skip the NumPyro enumeration baseline")
    p.add_argument("--skip-parallel", action="store_true", help="skip markovppl parallel=True variants")
    p.add_argument("--parallel-large", action="store_true",
                   help="also time the LGSSM parallel=True filter at state dims > 8 (very slow on CPU)")
    p.add_argument("--skip-hmm", action="store_true", help="only run the LGSSM section")
    p.add_argument("--json", type=str, default=None, help="write raw results to this JSON file")
    return p.parse_args(argv)


# --------------------------------------------------------------------------- float64 NumPy references
def np_hmm_loglik(pi0, P, mu, sigma, y):
    import numpy as np

    ll = -0.5 * ((y[:, None] - mu) / sigma) ** 2 - np.log(sigma) - 0.5 * math.log(2 * math.pi)
    total = 0.0
    alpha = pi0
    for t in range(len(y)):
        if t:
            alpha = alpha @ P
        m = ll[t].max()
        a = alpha * np.exp(ll[t] - m)
        s = a.sum()
        total += math.log(s) + m
        alpha = a / s
    return total


def np_kalman_loglik(m0, S0, A, Q, H, R, y):
    import numpy as np

    m, S = m0, S0
    total = 0.0
    for t in range(len(y)):
        if t:
            m = A @ m
            S = A @ S @ A.T + Q
        r = y[t] - H @ m
        Sy = H @ S @ H.T + R
        L = np.linalg.cholesky(Sy)
        w = np.linalg.solve(L, r)
        total += -0.5 * w @ w - np.log(np.diag(L)).sum() - 0.5 * len(r) * math.log(2 * math.pi)
        K = np.linalg.solve(Sy, H @ S).T
        m = m + K @ r
        S = S - K @ H @ S
        S = 0.5 * (S + S.T)
    return total


# --------------------------------------------------------------------------- HMM section
def hmm_data(K, T, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    P = np.full((K, K), 0.1 / (K - 1)) + np.eye(K) * (0.9 - 0.1 / (K - 1))
    mu = np.arange(K, dtype=float) * 1.5
    sigma = np.full(K, 1.0)
    pi0 = np.full(K, 1.0 / K)
    x = np.empty(T, dtype=int)
    x[0] = rng.choice(K, p=pi0)
    for t in range(1, T):
        x[t] = rng.choice(K, p=P[x[t - 1]])
    y = rng.normal(mu[x], sigma[x])
    return pi0, P, mu, sigma, y


def run_hmm(args, results):
    import jax
    import jax.numpy as jnp
    import numpy as np
    import numpyro
    import numpyro.distributions as dist
    from numpyro.contrib.control_flow import scan
    from numpyro.infer.util import initialize_model
    from numpyro.infer import init_to_value

    import markovppl as mp
    from dynamax.hidden_markov_model.inference import hmm_filter

    K, T, R = args.K, args.T, args.repeats
    pi0_np, P_np, mu_np, sigma_np, y_np = hmm_data(K, T)
    ref = np_hmm_loglik(pi0_np, P_np, mu_np, sigma_np, y_np)
    f = jnp.result_type(float)
    pi0, P, mu, sigma, y = (jnp.asarray(a, f) for a in (pi0_np, P_np, mu_np, sigma_np, y_np))

    print(f"## A. HMM evidence value+grad: K={K} Gaussian emissions, T={T}")
    print(f"float64 NumPy reference log-lik: {ref:.4f}\n")

    # ---- raw log-likelihood value+grad w.r.t. (P, mu, sigma); initial law = uniform for all
    def ll_mp_seq(P, mu, sigma, y):
        return mp.HMM(jnp.full(K, 1.0 / K, f), P, dist.Normal(mu, sigma), num_steps=T).log_prob(y)

    def ll_mp_par(P, mu, sigma, y):
        return mp.HMM(jnp.full(K, 1.0 / K, f), P, dist.Normal(mu, sigma), num_steps=T, parallel=True).log_prob(y)

    def ll_mp_fwd(P, mu, sigma, y):
        return mp.HMM(jnp.full(K, 1.0 / K, f), P, dist.Normal(mu, sigma), num_steps=T).filter(y).log_evidence

    def ll_dynamax(P, mu, sigma, y):
        lls = dist.Normal(mu, sigma).log_prob(y[:, None])
        return hmm_filter(jnp.full(K, 1.0 / K, f), P, lls).marginal_loglik

    variants = [
        ("markovppl HMM.log_prob (sequential backward)", ll_mp_seq),
        ("markovppl HMM.log_prob (parallel=True)", ll_mp_par),
        ("markovppl HMM.filter (forward)", ll_mp_fwd),
        ("dynamax hmm_filter", ll_dynamax),
    ]
    if args.skip_parallel:
        variants = [v for v in variants if "parallel" not in v[0]]
    raw = {}
    for name, fn in variants:
        vg = jax.jit(jax.value_and_grad(fn, argnums=(0, 1, 2)))
        v_only = jax.jit(fn)
        first, med, (val, grads) = time_fn(vg, P, mu, sigma, y, repeats=R)
        vfirst, vmed, _ = time_fn(v_only, P, mu, sigma, y, repeats=R)
        ok = all(bool(jnp.all(jnp.isfinite(g))) for g in grads)
        raw[name] = dict(first=first, median=med, value_first=vfirst, value_median=vmed,
                         loglik=float(val), err=abs(float(val) - ref), grads_finite=ok, grads=grads)
    base = raw["markovppl HMM.log_prob (sequential backward)"]
    dyn = raw["dynamax hmm_filter"]
    # gradient agreement vs dynamax
    for name, r in raw.items():
        r["grad_maxdiff_vs_dynamax"] = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(r["grads"], dyn["grads"]))
    rows = []
    for name, r in raw.items():
        rows.append([name, fmt_s(r["value_median"]), fmt_s(r["median"]), fmt_s(r["first"]),
                     f"{r['loglik']:.4f}", f"{r['err']:.2e}", f"{r['grad_maxdiff_vs_dynamax']:.1e}",
                     f"{dyn['median'] / r['median']:.2f}x"])
    print("Raw log-likelihood (value, and value+grad w.r.t. P, mu, sigma):")
    print_table(rows, ["implementation", "value median", "value+grad median", "value+grad first call",
                       "log-lik", "|err| vs f64 ref", "max|grad diff| vs dynamax", "dynamax v+g time / this"])

    # ---- potential_fn value+grad: markovppl model vs NumPyro enumeration model
    def prior():
        mu_ = numpyro.sample("mu", dist.Normal(0.0, 10.0).expand([K]).to_event(1))
        sigma_ = numpyro.sample("sigma", dist.HalfNormal(5.0).expand([K]).to_event(1))
        P_ = numpyro.sample("P", dist.Dirichlet(jnp.ones((K, K), f)).to_event(1))
        return mu_, sigma_, P_

    def model_mp(y):
        mu_, sigma_, P_ = prior()
        numpyro.sample("y", mp.HMM(jnp.full(K, 1.0 / K, f), P_, dist.Normal(mu_, sigma_), num_steps=T), obs=y)

    def model_enum(y):
        # numpyro examples/hmm_enum.py model_1 pattern; uniform first-state law via t == 0.
        mu_, sigma_, P_ = prior()
        uniform = jnp.full(K, 1.0 / K, f)

        def transition(carry, y_t):
            x_prev, t = carry
            probs = jnp.where(t == 0, uniform, P_[x_prev])
            x = numpyro.sample("x", dist.Categorical(probs), infer={"enumerate": "parallel"})
            numpyro.sample("y", dist.Normal(mu_[x], sigma_[x]), obs=y_t)
            return (x, t + 1), None

        scan(transition, (jnp.array(0), jnp.array(0)), y)

    init = init_to_value(values={"mu": mu, "sigma": sigma, "P": P})
    pot = {}
    models = [("markovppl HMM in a NumPyro model", model_mp)]
    if not args.skip_enum:
        models.append(("NumPyro scan + enumeration (hmm_enum model_1)", model_enum))
    for name, model in models:
        t0 = time.perf_counter()
        info = initialize_model(jax.random.PRNGKey(0), model, model_args=(y,), init_strategy=init,
                                dynamic_args=True)
        setup = time.perf_counter() - t0
        z = info.param_info.z
        potential = info.potential_fn(y)
        vg = jax.jit(jax.value_and_grad(potential))
        first, med, (val, _) = time_fn(vg, z, repeats=R)
        vfirst, vmed, _ = time_fn(jax.jit(potential), z, repeats=R)
        pot[name] = dict(setup=setup, first=first, median=med, value_first=vfirst, value_median=vmed,
                         potential=float(val))
    ours = pot["markovppl HMM in a NumPyro model"]
    rows = []
    for name, r in pot.items():
        rows.append([name, fmt_s(r["value_median"]), fmt_s(r["median"]), fmt_s(r["first"]), fmt_s(r["setup"]),
                     f"{r['potential']:.4f}", f"{r['median'] / ours['median']:.1f}x"])
    print("NumPyro potential_fn (same priors, same unconstrained point):")
    print_table(rows, ["model", "value median", "value+grad median", "value+grad first call",
                       "initialize_model", "potential", "this time / markovppl"])
    if "NumPyro scan + enumeration (hmm_enum model_1)" in pot:
        e = pot["NumPyro scan + enumeration (hmm_enum model_1)"]
        print(f"potential difference markovppl vs enumeration: {abs(e['potential'] - ours['potential']):.2e}")
        print(f"TARGET HMM value+grad >= 25x NumPyro enumeration (potential vs potential): "
              f"{e['median'] / ours['median']:.1f}x")
        print(f"        (enumeration potential v+g vs markovppl raw log-lik v+g: "
              f"{e['median'] / base['median']:.1f}x)")
    print(f"TARGET HMM value+grad faster than dynamax hmm_filter: dynamax/markovppl = "
          f"{dyn['median'] / base['median']:.2f}x (sequential backward), "
          f"{dyn['median'] / raw['markovppl HMM.filter (forward)']['median']:.2f}x (forward filter); "
          f"value only: {dyn['value_median'] / base['value_median']:.2f}x\n")
    for r in raw.values():
        r.pop("grads")
    results["hmm"] = dict(reference=ref, raw=raw, potential=pot)


# --------------------------------------------------------------------------- LGSSM section
def lgssm_data(d, m, T, seed=1):
    import numpy as np

    rng = np.random.default_rng(seed)
    Q_, _ = np.linalg.qr(rng.normal(size=(d, d)))
    A = 0.95 * Q_
    Qc = 0.1 * np.eye(d)
    H = rng.normal(size=(m, d)) / math.sqrt(d)
    Rc = 0.5 * np.eye(m)
    m0 = np.zeros(d)
    S0 = np.eye(d)
    x = rng.multivariate_normal(m0, S0)
    ys = np.empty((T, m))
    Lq, Lr = np.linalg.cholesky(Qc), np.linalg.cholesky(Rc)
    for t in range(T):
        if t:
            x = A @ x + Lq @ rng.normal(size=d)
        ys[t] = H @ x + Lr @ rng.normal(size=m)
    return m0, S0, A, Qc, H, Rc, ys


def run_lgssm(args, results):
    import jax
    import jax.numpy as jnp

    import markovppl as mp
    import markovppl._linalg as mpla
    from dynamax.linear_gaussian_ssm.inference import (
        ParamsLGSSM, ParamsLGSSMDynamics, ParamsLGSSMEmissions, ParamsLGSSMInitial, lgssm_filter)

    T, R = args.T, args.repeats
    f = jnp.result_type(float)
    default_fused_max = mpla.FUSED_MAX_DIM
    out = {}
    for spec in args.dims.split(","):
        d, m = (int(s) for s in spec.split(":"))
        data = lgssm_data(d, m, T)
        t0 = time.perf_counter()
        ref = np_kalman_loglik(*data)
        ref_s = time.perf_counter() - t0
        m0, S0, A, Qc, H, Rc, y = (jnp.asarray(a, f) for a in data)
        print(f"## B. LGSSM log-evidence value: state dim {d}, obs dim {m}, T={T}")
        print(f"float64 NumPy reference log-lik: {ref:.4f}  (NumPy loop {ref_s:.1f} s)\n")

        def make(parallel=False):
            return mp.LinearGaussianSSM(m0, S0, A, Qc, H, Rc, num_steps=T, parallel=parallel)

        def mk(kind, fused_max, parallel=False):
            # each variant is a fresh function so jit traces it anew under the chosen FUSED_MAX_DIM
            if kind == "log_prob":
                def fn(y):
                    return make(parallel).log_prob(y)
            elif kind == "filter":
                def fn(y):
                    return make().filter(y).log_evidence
            else:  # backward information filter, evidence = root message; raw (un-jitted) method
                def fn(y):
                    model = make()
                    return type(model)._backward.__wrapped__(model, y, store_messages=False).log_evidence
            return fn, fused_max

        def dyn_fn(y):
            params = ParamsLGSSM(
                initial=ParamsLGSSMInitial(mean=m0, cov=S0),
                dynamics=ParamsLGSSMDynamics(weights=A, bias=jnp.zeros(d, f), input_weights=jnp.zeros((d, 0), f), cov=Qc),
                emissions=ParamsLGSSMEmissions(weights=H, bias=jnp.zeros(m, f), input_weights=jnp.zeros((m, 0), f), cov=Rc),
            )
            return lgssm_filter(params, y).marginal_loglik

        fused_on, fused_off = max(d, default_fused_max), 0
        variants = [
            ("markovppl log_prob (Kalman, evidence only), fused", *mk("log_prob", fused_on)),
            ("markovppl log_prob (Kalman, evidence only), library", *mk("log_prob", fused_off)),
            ("markovppl filter (Kalman, stores moments), fused", *mk("filter", fused_on)),
            ("markovppl filter (Kalman, stores moments), library", *mk("filter", fused_off)),
            ("markovppl backward information filter evidence, fused", *mk("backward", fused_on)),
            ("markovppl backward information filter evidence, library", *mk("backward", fused_off)),
        ]
        if not args.skip_parallel and (d <= 8 or args.parallel_large):
            variants.append(("markovppl log_prob parallel=True (parallel backward, default path)", *mk("log_prob", default_fused_max, True)))
        variants.append(("dynamax lgssm_filter", dyn_fn, default_fused_max))
        res = {}
        for name, fn, fused_max in variants:
            # markovppl jits its methods internally and caches the trace; FUSED_MAX_DIM is read at trace
            # time, so clear JAX's caches or a later variant silently reuses the earlier path.
            jax.clear_caches()
            mpla.FUSED_MAX_DIM = fused_max
            try:
                jf = jax.jit(fn)
                first, med, val = time_fn(jf, y, repeats=R)
                res[name] = dict(first=first, median=med, loglik=float(val), err=abs(float(val) - ref))
            except Exception as exc:  # report, do not hide
                res[name] = dict(error=f"{type(exc).__name__}: {exc}")
                print(f"!! {name} failed: {type(exc).__name__}: {exc}")
            finally:
                mpla.FUSED_MAX_DIM = default_fused_max
        dyn = res["dynamax lgssm_filter"]
        default_tag = "fused" if d <= default_fused_max else "library"
        rows = []
        for name, r in res.items():
            if "error" in r:
                rows.append([name, "error", "", "", "", ""])
                continue
            tag = " (default)" if name.endswith(default_tag) else ""
            rows.append([name + tag, fmt_s(r["median"]), fmt_s(r["first"]), f"{r['loglik']:.4f}",
                         f"{r['err']:.2e}", f"{dyn['median'] / r['median']:.2f}x"])
        print_table(rows, ["implementation", "median", "first call", "log-lik", "|err| vs f64 ref",
                           "dynamax time / this"])
        ours = res[f"markovppl log_prob (Kalman, evidence only), {default_tag}"]
        fwd = res[f"markovppl filter (Kalman, stores moments), {default_tag}"]
        bwd = res[f"markovppl backward information filter evidence, {default_tag}"]
        want = "10x faster" if d <= 4 else "no slower"
        print(f"TARGET LGSSM d={d} ({want} than dynamax): dynamax/markovppl = "
              f"{dyn['median'] / ours['median']:.2f}x (log_prob, default path), "
              f"{dyn['median'] / fwd['median']:.2f}x (filter, default path), "
              f"{dyn['median'] / bwd['median']:.2f}x (backward evidence, default path)\n")
        out[f"d{d}_m{m}"] = dict(reference=ref, results=res)
    results["lgssm"] = out


def main(argv=None):
    args = parse_args(argv)
    setup_jax(args.x64)
    print_header("bench_filters", args.x64)
    results = {"x64": args.x64, "T": args.T, "repeats": args.repeats}
    t0 = time.perf_counter()
    if not args.skip_hmm:
        run_hmm(args, results)
    run_lgssm(args, results)
    print(f"total wall time {time.perf_counter() - t0:.1f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
