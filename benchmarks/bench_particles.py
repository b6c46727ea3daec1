"""Particle methods: markovppl vs `particles` 0.4 (Chopin), side by side in one run, on the same data.

* D1 particle filter: time per filter and the spread of log Z_hat (Var, mean error vs the exact Kalman
  log-likelihood), bootstrap filter, systematic resampling when ESS < N/2, on a scalar LGSSM
  (rho 0.9, sx 1, sy 0.5), T in {100, 1000}, N in {100, 1000}; markovppl's model built two ways
  (`bootstrap_lgssm` of a LinearGaussianSSM, and a StateSpaceModel of NumPyro Normals).
* D2 particle Gibbs at fixed parameters: conditional SMC + backward sampling sweeps per second and the
  ESS per sweep / per second of x_0, x_{T/2}, x_{T-1} and sum_t x_t (ArviZ bulk ESS after 10% burn-in),
  markovppl `particle_gibbs_step` vs particles' `ParticleGibbs(backward_step=True)` with the parameter
  update switched off (each of its iterations is `CSMC` + `backward_sampling_ON2(1)`).
* D3 PaRIS (K = 2 backward draws, hybrid rejection sampler, multinomial resampling at every step):
  RMSE of the smoothed sum_t x_t (exact value from the RTS smoother) against time per run, markovppl
  `paris_smoother` vs particles' `collectors.Paris(Nparis=2)` (hybrid, max_trials = N), T = 100.

`particles` 0.4 pins numpy < 2, so it runs in its own virtual environment (created on first use, see
--particles-venv) as a subprocess (`_particles_peer.py`) on the same arrays. markovppl is timed jitted,
compile time (`jit(...).lower(...).compile()`) reported separately; ratios are peer time / markovppl time (> 1: markovppl faster).

    python benchmarks/bench_particles.py                 # about 5 min on 2 cores
    python benchmarks/bench_particles.py --quick         # T=100 only, fewer sweeps
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _common import fmt_s, print_header, print_table, setup_jax  # noqa: E402

HERE = Path(__file__).resolve().parent
PARAMS = {"rho": 0.9, "sx": 1.0, "sy": 0.5}


def ensure_peer_venv(path: Path) -> Path:
    python = path / "bin" / "python"
    if not python.exists():
        print(f"creating {path} for particles 0.4 (numpy < 2) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "particles==0.4", "numpy<2"], check=True)
    return python


def simulate(num_steps: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = np.empty(num_steps)
    x[0] = rng.normal()
    for t in range(1, num_steps):
        x[t] = PARAMS["rho"] * x[t - 1] + PARAMS["sx"] * rng.normal()
    return x + PARAMS["sy"] * rng.normal(size=num_steps)


def kalman_log_z(y):
    m, p, ll = 0.0, 1.0, 0.0
    for t, yt in enumerate(y):
        if t:
            m, p = PARAMS["rho"] * m, PARAMS["rho"] ** 2 * p + PARAMS["sx"] ** 2
        s = p + PARAMS["sy"] ** 2
        ll += -0.5 * (np.log(2 * np.pi * s) + (yt - m) ** 2 / s)
        k = p / s
        m, p = m + k * (yt - m), (1 - k) * p
    return ll


def ess(chain):
    import arviz as az

    c = np.asarray(chain, dtype=float)
    c = c[len(c) // 10:]
    return float(az.ess(c[None, :]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--x32", action="store_true", help="markovppl in float32 (default float64, like numpy)")
    ap.add_argument("--particles-venv", default=os.environ.get("MARKOVPPL_PARTICLES_VENV", str(HERE / ".venv-particles")))
    ap.add_argument("--sections", default="d1,d2,d3", help="comma-separated subset of d1,d2,d3")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    x64 = not args.x32
    setup_jax(x64)
    import jax
    import jax.numpy as jnp

    import markovppl as mp
    from markovppl import particles as pt

    print_header("particle methods: markovppl vs particles 0.4", x64)
    peer_python = ensure_peer_venv(Path(args.particles_venv))
    lengths = [100] if args.quick else [100, 1000]
    data = {t: simulate(t) for t in lengths}
    dtype = jnp.float64 if x64 else jnp.float32

    def ssm():
        e = jnp.eye(1, dtype=dtype)
        return mp.LinearGaussianSSM(jnp.zeros(1, dtype), e, PARAMS["rho"] * e, PARAMS["sx"] ** 2 * e, e,
                                    PARAMS["sy"] ** 2 * e)

    sections = set(args.sections.lower().split(","))
    pf_cfg = [(t, n) for t in lengths for n in (100, 1000)] if "d1" in sections else []
    pg_cfg = ([(100, 50, 2000, 500)] + ([] if args.quick else [(1000, 256, 1000, 150)])   # T, N, sweeps ours, peer
              if "d2" in sections else [])
    peer_reps = lambda t, n: 50 if t * n <= 1e5 else 15
    tasks = [{"kind": "pf", "T": t, "N": n, "reps": peer_reps(t, n)} for t, n in pf_cfg]
    tasks += [{"kind": "pg", "T": t, "N": n, "sweeps": sp} for t, n, _, sp in pg_cfg]
    paris_cfg = [(100, 25), (400, 25), (1600, 25)] if "d3" in sections else []   # ours: N, replicates (x4 vmapped)
    peer_paris = ([(100, 10)] if args.quick else [(100, 10), (400, 3)]) if "d3" in sections else []
    tasks += [{"kind": "paris", "T": 100, "N": n, "reps": r} for n, r in peer_paris]

    with tempfile.TemporaryDirectory() as tmp:
        spec = {"params": PARAMS, "data": {str(t): y.tolist() for t, y in data.items()}, "tasks": tasks}
        (Path(tmp) / "in.json").write_text(json.dumps(spec))
        t0 = time.perf_counter()
        subprocess.run([str(peer_python), str(HERE / "_particles_peer.py"), str(Path(tmp) / "in.json"),
                        str(Path(tmp) / "out.json")], check=True)
        print(f"particles side: {time.perf_counter() - t0:.1f} s wall")
        peer = json.loads((Path(tmp) / "out.json").read_text())
    print("peer versions: " + ", ".join(f"{k} {v}" for k, v in peer["versions"].items()) + "\n")

    # ---------------------------------------------------------------- D1 particle filter
    rows, raw = [], {"pf": [], "pg": []}
    import numpyro.distributions as dist

    generic = pt.StateSpaceModel(dist.Normal(jnp.zeros((), dtype), 1.0),
                                 lambda t, x: dist.Normal(PARAMS["rho"] * x, PARAMS["sx"]),
                                 lambda t, x: dist.Normal(x, PARAMS["sy"]))
    variants = [("bootstrap_lgssm", lambda t: pt.bootstrap_lgssm(ssm(), jnp.asarray(data[t][:, None], dtype))),
                ("StateSpaceModel", lambda t: generic.bootstrap(jnp.asarray(data[t], dtype)))]
    for ((t, n), pr), (fk_name, make) in [(c, v) for c in zip(pf_cfg, peer.get("pf", [])) for v in variants]:
        fk = make(t)
        reps = 64
        keys = jax.random.split(jax.random.PRNGKey(0), reps)
        c0 = time.perf_counter()
        one = jax.jit(lambda k: pt.particle_filter(k, fk, t, n).log_evidence).lower(keys[0]).compile()
        compile_s = time.perf_counter() - c0
        many = jax.jit(jax.vmap(lambda k: pt.particle_filter(k, fk, t, n).log_evidence))
        times = []
        for i in range(10):
            s0 = time.perf_counter()
            jax.block_until_ready(one(keys[i]))
            times.append(time.perf_counter() - s0)
        ours_one = float(np.median(times))
        jax.block_until_ready(many(keys))
        s0 = time.perf_counter()
        lz = np.asarray(jax.block_until_ready(many(keys)))
        ours_batch = (time.perf_counter() - s0) / reps
        exact = kalman_log_z(data[t])
        peer_t = float(np.median(pr["times"][1:]))
        plz = np.asarray(pr["log_z"])
        rows.append([t, n, fk_name, fmt_s(compile_s), fmt_s(ours_one), fmt_s(ours_batch), fmt_s(peer_t),
                     f"{peer_t / ours_one:.1f}x", f"{peer_t / ours_batch:.1f}x",
                     f"{lz.var():.3f} / {plz.var():.3f}", f"{lz.mean() - exact:+.3f} / {plz.mean() - exact:+.3f}"])
        raw["pf"].append({"T": t, "N": n, "fk": fk_name, "ours_one_s": ours_one, "ours_vmap_per_filter_s": ours_batch,
                          "peer_s": peer_t, "var_ours": float(lz.var()), "var_peer": float(plz.var()),
                          "bias_ours": float(lz.mean() - exact), "bias_peer": float(plz.mean() - exact)})
    if rows:
        print("## D1 particle filter (bootstrap, systematic, ESS < N/2)\n")
        print_table(rows, ["T", "N", "markovppl model", "compile", "ours / filter", "ours vmap(64) / filter", "particles / filter",
                       "ratio (single)", "ratio (vmap)", "Var log Z_hat (ours / particles)",
                       "mean log Z_hat - log Z (ours / particles)"])

    # ---------------------------------------------------------------- D2 particle Gibbs sweeps and ESS
    rows = []
    for (t, n, sweeps, _), pr in zip(pg_cfg, peer.get("pg", [])):
        y = jnp.asarray(data[t][:, None], dtype)
        fk = pt.bootstrap_lgssm(ssm(), y)

        def run(key, path0):
            def body(state, k):
                state, info = pt.particle_gibbs_step(k, state, fk, n, path_sampling="backward")
                x = state.path[:, 0]
                return state, jnp.stack([x[0], x[t // 2], x[-1], jnp.sum(x)])
            return jax.lax.scan(body, pt.particle_gibbs_init(path0), jax.random.split(key, sweeps))[1]

        path0 = jnp.zeros((t, 1), dtype)
        c0 = time.perf_counter()
        runj = jax.jit(run).lower(jax.random.PRNGKey(1), path0).compile()      # compile only
        compile_s = time.perf_counter() - c0
        s0 = time.perf_counter()
        chains = np.asarray(jax.block_until_ready(runj(jax.random.PRNGKey(2), path0)))
        ours_s = (time.perf_counter() - s0) / sweeps
        peer_s = pr["seconds"] / pr["sweeps"]
        names = ["x0", "xmid", "xlast", "xsum"]
        e_ours = [ess(chains[:, i]) / (sweeps * 0.9) for i in range(4)]
        e_peer = [ess(pr[k]) / (pr["sweeps"] * 0.9) for k in names]
        ratio_ess_s = [(eo / ours_s) / (ep / peer_s) for eo, ep in zip(e_ours, e_peer)]
        rows.append([t, n, f"{sweeps} / {pr['sweeps']}", fmt_s(compile_s), fmt_s(ours_s), fmt_s(peer_s),
                     f"{peer_s / ours_s:.1f}x",
                     " ".join(f"{e:.2f}" for e in e_ours), " ".join(f"{e:.2f}" for e in e_peer),
                     " ".join(f"{r:.0f}x" for r in ratio_ess_s)])
        raw["pg"].append({"T": t, "N": n, "ours_s_per_sweep": ours_s, "peer_s_per_sweep": peer_s,
                          "ess_per_sweep_ours": e_ours, "ess_per_sweep_peer": e_peer, "ess_per_s_ratio": ratio_ess_s})
    if rows:
        print("## D2 particle Gibbs at fixed parameters (CSMC + backward sampling)\n")
        print("ESS per sweep of x_0, x_{T/2}, x_{T-1}, sum_t x_t (bulk ESS after 10% burn-in / kept sweeps)\n")
        print_table(rows, ["T", "N", "sweeps (ours / particles)", "compile", "ours / sweep", "particles / sweep",
                       "speed-up", "ESS/sweep ours", "ESS/sweep particles", "ESS/s ratio"])
    # ---------------------------------------------------------------- D3 PaRIS accuracy vs time
    y = jnp.asarray(data[100][:, None], dtype)
    fk = pt.bootstrap_lgssm(ssm(), y)
    exact = float(ssm().smooth(y).smoothed_means.sum())
    rows = []
    for n, reps in paris_cfg:
        run = jax.jit(jax.vmap(lambda k: pt.paris_smoother(k, fk, lambda t, xp, x: x[:, 0], 100, n,
                                                           backward_sampler="hybrid").estimate))
        keys = jax.random.split(jax.random.PRNGKey(5), 4 * reps)
        c0 = time.perf_counter()
        run = run.lower(keys[:4]).compile()
        compile_s = time.perf_counter() - c0
        s0 = time.perf_counter()
        est = np.concatenate([np.asarray(jax.block_until_ready(run(keys[4 * i:4 * i + 4]))) for i in range(reps)])
        per_run = (time.perf_counter() - s0) / (4 * reps)
        rmse = float(np.sqrt(np.mean((est - exact) ** 2)))
        rows.append(["markovppl", n, 4 * reps, fmt_s(compile_s), fmt_s(per_run), f"{rmse:.3f}",
                     f"{est.mean() - exact:+.3f} +- {est.std() / np.sqrt(est.size):.3f}"])
        raw.setdefault("paris", []).append({"lib": "markovppl", "N": n, "s_per_run": per_run, "rmse": rmse})
    for pr in peer.get("paris", []):
        est = np.asarray(pr["estimates"])
        per_run = float(np.median(pr["times"]))
        rmse = float(np.sqrt(np.mean((est - exact) ** 2)))
        rows.append(["particles", pr["N"], len(est), "-", fmt_s(per_run), f"{rmse:.3f}",
                     f"{est.mean() - exact:+.3f} +- {est.std() / np.sqrt(est.size):.3f}"])
        raw.setdefault("paris", []).append({"lib": "particles", "N": pr["N"], "s_per_run": per_run, "rmse": rmse})
    if rows:
        print("## D3 PaRIS (K = 2, hybrid) on sum_t x_t, T = 100 (vmapped 4 at a time on our side)\n")
        print_table(rows, ["library", "N", "runs", "compile", "time / run", "RMSE", "bias +- se"])
    if args.json:
        Path(args.json).write_text(json.dumps({"peer_versions": peer["versions"], **raw}, indent=1))


if __name__ == "__main__":
    main()
