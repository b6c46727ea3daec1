"""NUTS on a 3-state Poisson HMM: markovppl's HMM vs NumPyro's scan + enumeration model.

Run:  python benchmarks/bench_nuts.py [--x64] [--quick]

Data: T=500 draws from a 3-state Poisson HMM with rates (5, 15, 30) and diag(P)=0.9 (off-diagonal
0.05), uniform first-state law. Priors (identical in both models): ordered log-rates with an
independent Normal(log 15, 1.5) density on each (ImproperUniform(ordered_vector) + factor), and
sticky Dirichlet rows, concentration 1 + 9 I.

  markovppl:   numpyro.sample("y", mp.HMM(uniform, P, Poisson(rates), num_steps=T), obs=y)
  enumeration: numpyro.contrib.control_flow.scan over t with x_t ~ Categorical(P[x_{t-1}])
               marked enumerate="parallel" (numpyro examples/hmm_enum.py model_1 pattern).

Per variant: one MCMC object (1 chain, jit_model_args=True), run twice with different keys.
Run 1 includes tracing/compilation (and, for enumeration, the funsor set-up); run 2 reuses the
compiled sampler. The two runs form 2 chains for ArviZ ESS / R-hat.
ESS/s = min ESS_bulk / 2 chains / run-2 seconds  (i.e. per chain, compiled).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import print_header, print_table, setup_jax  # noqa: E402

RATES = (5.0, 15.0, 30.0)
STAY = 0.9


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--x64", action="store_true", help="run in float64 (default float32)")
    p.add_argument("--quick", action="store_true", help="T=200, 200 warmup + 200 samples (smoke run)")
    p.add_argument("--T", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--samples", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=str, default=None, help="write raw results to this JSON file")
    args = p.parse_args(argv)
    q = args.quick
    args.T = args.T or (200 if q else 500)
    args.warmup = args.warmup or (200 if q else 500)
    args.samples = args.samples or (200 if q else 500)
    return args


def simulate(T, seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    K = len(RATES)
    P = np.full((K, K), (1 - STAY) / (K - 1)) + np.eye(K) * (STAY - (1 - STAY) / (K - 1))
    x = np.empty(T, dtype=int)
    x[0] = rng.integers(K)
    for t in range(1, T):
        x[t] = rng.choice(K, p=P[x[t - 1]])
    return rng.poisson(np.asarray(RATES)[x]).astype(float)


def build_models(K):
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.contrib.control_flow import scan
    from numpyro.distributions import constraints

    import markovppl as mp

    def prior():
        log_rates = numpyro.sample("log_rates", dist.ImproperUniform(constraints.ordered_vector, (), (K,)))
        numpyro.factor("log_rates_prior", dist.Normal(jnp.log(15.0), 1.5).log_prob(log_rates).sum())
        P = numpyro.sample("P", dist.Dirichlet(jnp.ones((K, K)) + 9.0 * jnp.eye(K)).to_event(1))
        return jnp.exp(log_rates), P

    def model_markovppl(y):
        rates, P = prior()
        init = jnp.full(K, 1.0 / K, dtype=P.dtype)
        numpyro.sample("y", mp.HMM(init, P, dist.Poisson(rates), num_steps=y.shape[0]), obs=y)

    def model_enum(y):
        rates, P = prior()
        init = jnp.full(K, 1.0 / K, dtype=P.dtype)

        def transition(carry, y_t):
            x_prev, t = carry
            probs = jnp.where(t == 0, init, P[x_prev])
            x = numpyro.sample("x", dist.Categorical(probs), infer={"enumerate": "parallel"})
            numpyro.sample("y", dist.Poisson(rates[x]), obs=y_t)
            return (x, t + 1), None

        scan(transition, (jnp.array(0), jnp.array(0)), y)

    return {"markovppl HMM": model_markovppl, "NumPyro scan + enumeration": model_enum}


def run_variant(model, y, args):
    import jax
    import numpy as np
    from numpyro.infer import MCMC, NUTS

    mcmc = MCMC(NUTS(model), num_warmup=args.warmup, num_samples=args.samples, num_chains=1,
                jit_model_args=True, progress_bar=False)
    keys = jax.random.split(jax.random.PRNGKey(args.seed), 2)
    times, chains, steps, div = [], [], [], []
    for k in keys:
        t0 = time.perf_counter()
        mcmc.run(k, y, extra_fields=("num_steps", "diverging"))
        samples = jax.block_until_ready(mcmc.get_samples())
        times.append(time.perf_counter() - t0)
        chains.append({n: np.asarray(v) for n, v in samples.items()})
        ex = mcmc.get_extra_fields()
        steps.append(np.asarray(ex["num_steps"]))
        div.append(np.asarray(ex["diverging"]))
    return times, chains, np.concatenate(steps), np.concatenate(div)


def diagnostics(chains):
    import arviz as az
    import numpy as np

    post = {n: np.stack([c[n] for c in chains]) for n in chains[0]}  # (chain, draw, ...)
    idata = az.from_dict(posterior=post)
    ess_b = az.ess(idata, method="bulk")
    ess_t = az.ess(idata, method="tail")
    rhat = az.rhat(idata)
    mins = lambda ds: float(min(np.min(np.asarray(ds[v])) for v in post))
    maxs = lambda ds: float(max(np.max(np.asarray(ds[v])) for v in post))
    means = {n: np.round(v.reshape((-1,) + v.shape[2:]).mean(0), 3).tolist() for n, v in post.items()}
    means["rates"] = np.round(np.exp(post["log_rates"]).reshape(-1, post["log_rates"].shape[-1]).mean(0), 3).tolist()
    return mins(ess_b), mins(ess_t), maxs(rhat), means


def main(argv=None):
    args = parse_args(argv)
    setup_jax(args.x64)
    import jax.numpy as jnp

    print_header("bench_nuts", args.x64)
    print(f"3-state Poisson HMM, T={args.T}, rates={RATES}, diag(P)={STAY}; NUTS {args.warmup} warmup + "
          f"{args.samples} samples, 2 chains run sequentially\n")
    y = jnp.asarray(simulate(args.T, args.seed), dtype=jnp.result_type(float))
    models = build_models(len(RATES))
    res, rows = {}, []
    t_all = time.perf_counter()
    for name, model in models.items():
        times, chains, steps, div = run_variant(model, y, args)
        ess_b, ess_t, rhat, means = diagnostics(chains)
        ess_s = ess_b / 2 / times[1]
        # approximate: run-2 seconds / (run-2 sampling-phase leapfrog mean x all iterations incl. warmup)
        grad_ms = 1e3 * times[1] / (float(steps[len(steps) // 2:].mean()) * (args.warmup + args.samples))
        res[name] = dict(run1_s=times[0], run2_s=times[1], min_ess_bulk=ess_b, min_ess_tail=ess_t,
                         max_rhat=rhat, leapfrog_per_iter=float(steps.mean()), divergences=int(div.sum()),
                         ess_per_s=ess_s, ms_per_gradient=grad_ms, posterior_means=means)
        rows.append([name, f"{times[0]:.1f}", f"{times[1]:.1f}", f"{ess_b:.0f} / {ess_t:.0f}", f"{rhat:.3f}",
                     f"{steps.mean():.1f}", f"{grad_ms:.3f}", int(div.sum()), f"{ess_s:.1f}"])
    print_table(rows, ["marginalisation", "run1 s (incl. compile)", "run2 s", "min ESS bulk / tail",
                       "max R-hat", "leapfrog/iter", "≈ ms/gradient (run 2)", "divergences", "min ESS/s"])
    for name, r in res.items():
        print(f"{name}: posterior means rates={r['posterior_means']['rates']}, "
              f"diag(P)={[round(r['posterior_means']['P'][i][i], 3) for i in range(len(RATES))]}")
    ours, enum = res["markovppl HMM"], res["NumPyro scan + enumeration"]
    print(f"\nTARGET NUTS min-ESS/s >= 4x enumeration: {ours['ess_per_s'] / enum['ess_per_s']:.2f}x "
          f"(run-2 wall-time ratio {enum['run2_s'] / ours['run2_s']:.2f}x, "
          f"run-1 ratio {enum['run1_s'] / ours['run1_s']:.2f}x)")
    print(f"total wall time {time.perf_counter() - t_all:.1f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(args=vars(args), results=res), fh, indent=1, default=str)


if __name__ == "__main__":
    main()
