"""Bootstrap particle filter: markovppl vs the JAX peers cuthbert 0.1.1 and smcjax 1.1.0, in one run.

Same model and data as D1 of `bench_particles.py`: scalar LGSSM x_0 ~ N(0, 1),
x_t = 0.9 x_{t-1} + N(0, 1), y_t = x_t + N(0, 0.5^2), y simulated with numpy seed 0, T in {100, 1000},
N in {100, 1000}; bootstrap filter with systematic resampling when ESS < N/2 in all three libraries.
markovppl runs `particle_filter(key, bootstrap_lgssm(LinearGaussianSSM), T, N)`.

Per library and size: compile time (`jit(...).lower(...).compile()`), the median of 10 jitted
single-filter calls, the per-filter time of one `jit(vmap)` over 64 seeds, and the mean and variance
of log Z_hat over those 64 seeds against the exact Kalman log-likelihood (`LinearGaussianSSM.log_prob`).
Ratios are peer time / markovppl time (> 1: markovppl faster).

The peers are not markovppl dependencies and smcjax pins jax < 0.7 (markovppl needs jax >= 0.10), so
each peer runs in its own virtual environment (created on first use: `python -m venv` + `pip install`)
as a subprocess of this same file (`--peer NAME IN OUT`) on the same data; a peer that fails to
install or import is skipped with a message. Model encodings (read from the peers' sources):

* cuthbert: `cuthbert.smc.particle_filter.build_filter(init_sample, propagate_sample, log_potential,
  N, ess_decorator(systematic.resampling, 0.5))` run by `cuthbert.filter`; its initial state carries
  no potential, so it starts from a dummy x_{-1} = 0 and the first `propagate_sample` draws
  x_0 ~ N(0, 1) (flagged in the model inputs); log Z_hat is the last `log_normalizing_constant`.
* smcjax: `smcjax.bootstrap_filter(key, initial_sampler, transition_sampler, log_observation_fn,
  y[:, None], N, resampling_fn=smcjax.systematic, resampling_threshold=0.5).marginal_loglik`.

    python benchmarks/bench_particles_jax_peers.py            # float64, about 2-3 min on 2 cores
    python benchmarks/bench_particles_jax_peers.py --x32      # float32 everywhere
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

HERE = Path(__file__).resolve()
PARAMS = {"rho": 0.9, "sx": 1.0, "sy": 0.5}
SEEDS = 64
SINGLE_REPS = 10
PEERS = {"cuthbert": ["cuthbert==0.1.1"], "smcjax": ["smcjax==1.1.0"]}


def simulate(num_steps: int, seed: int = 0):
    """Same data as bench_particles.simulate (numpy seed 0)."""
    rng = np.random.default_rng(seed)
    x = np.empty(num_steps)
    x[0] = rng.normal()
    for t in range(1, num_steps):
        x[t] = PARAMS["rho"] * x[t - 1] + PARAMS["sx"] * rng.normal()
    return x + PARAMS["sy"] * rng.normal(size=num_steps)


def measure(jax, make_filter, t, n):
    """Time `make_filter(key) -> log Z_hat` (compile, single median, vmap per filter) and collect log Z_hat."""
    keys = jax.random.split(jax.random.PRNGKey(0), SEEDS)
    c0 = time.perf_counter()
    one = jax.jit(make_filter).lower(keys[0]).compile()
    compile_s = time.perf_counter() - c0
    jax.block_until_ready(one(keys[0]))
    times = []
    for i in range(SINGLE_REPS):
        s0 = time.perf_counter()
        jax.block_until_ready(one(keys[i]))
        times.append(time.perf_counter() - s0)
    many = jax.jit(jax.vmap(make_filter)).lower(keys).compile()
    jax.block_until_ready(many(keys))
    s0 = time.perf_counter()
    lz = np.asarray(jax.block_until_ready(many(keys)), dtype=float)
    vmap_s = (time.perf_counter() - s0) / SEEDS
    return {"T": t, "N": n, "compile_s": compile_s, "single_s": float(np.median(times)),
            "vmap_per_filter_s": vmap_s, "log_z": lz.tolist()}


# --------------------------------------------------------------------------- peer workers (own venvs)
def peer_cuthbert(jax, jnp, y, n, dtype):
    from cuthbert import filter as cb_filter
    from cuthbert.smc.particle_filter import build_filter
    from cuthbertlib.resampling import ess_decorator, systematic

    rho, sx, sy = PARAMS["rho"], PARAMS["sx"], PARAMS["sy"]

    def init_sample(key):                       # dummy x_{-1}; x_0 is drawn by the first propagation
        return jnp.zeros((), dtype)

    def propagate_sample(key, x, inputs):
        _, first = inputs
        mean = jnp.where(first, 0.0, rho * x)
        sd = jnp.where(first, 1.0, sx)
        return (mean + sd * jax.random.normal(key, (), dtype)).astype(dtype)

    def log_potential(x_prev, x, inputs):
        yt, _ = inputs
        return -0.5 * (jnp.log(2 * jnp.pi * sy ** 2) + (yt - x) ** 2 / sy ** 2)

    pf = build_filter(init_sample, propagate_sample, log_potential, n, ess_decorator(systematic.resampling, 0.5))
    inputs = (jnp.asarray(y, dtype), jnp.arange(len(y)) == 0)

    def run(key):
        k0, k1 = jax.random.split(key)
        states = cb_filter(pf, inputs, pf.init_prepare(key=k0), key=k1)
        return states.log_normalizing_constant[-1]

    return run


def peer_smcjax(jax, jnp, y, n, dtype):
    import smcjax

    rho, sx, sy = PARAMS["rho"], PARAMS["sx"], PARAMS["sy"]
    emissions = jnp.asarray(y, dtype)[:, None]

    def initial_sampler(key, num):
        return jax.random.normal(key, (num, 1), dtype)

    def transition_sampler(key, z):
        return rho * z + sx * jax.random.normal(key, z.shape, dtype)

    def log_observation_fn(yt, z):
        return -0.5 * (jnp.log(2 * jnp.pi * sy ** 2) + jnp.sum((yt - z) ** 2) / sy ** 2)

    def run(key):
        return smcjax.bootstrap_filter(key, initial_sampler, transition_sampler, log_observation_fn, emissions, n,
                                       resampling_fn=smcjax.systematic, resampling_threshold=0.5).marginal_loglik

    return run


def peer_main(name: str, in_path: str, out_path: str) -> None:
    spec = json.loads(Path(in_path).read_text())
    import jax

    jax.config.update("jax_enable_x64", bool(spec["x64"]))
    import jax.numpy as jnp
    from importlib.metadata import version

    dtype = jnp.float64 if spec["x64"] else jnp.float32
    builder = {"cuthbert": peer_cuthbert, "smcjax": peer_smcjax}[name]
    results = []
    for t, n in spec["sizes"]:
        results.append(measure(jax, builder(jax, jnp, spec["data"][str(t)], n, dtype), t, n))
    vers = {name: version(name), "jax": jax.__version__, "jaxlib": version("jaxlib")}
    Path(out_path).write_text(json.dumps({"versions": vers, "results": results}))


# --------------------------------------------------------------------------- driver (markovppl env)
def ensure_venv(name: str, root: Path) -> Path | None:
    path = root / f"venv-jaxpeers-{name}"
    python = path / "bin" / "python"
    if not python.exists() or subprocess.run([str(python), "-c", f"import {name}"], capture_output=True).returncode:
        print(f"creating {path} for {' '.join(PEERS[name])} ...", flush=True)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q", *PEERS[name]], check=True)
            subprocess.run([str(python), "-c", f"import {name}"], check=True)
        except (subprocess.CalledProcessError, OSError) as err:
            print(f"SKIP {name}: could not install/import it in {path} ({err})")
            return None
    return python


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--x32", action="store_true", help="float32 everywhere (default float64)")
    ap.add_argument("--venv-root", default=os.environ.get("MARKOVPPL_JAXPEERS_VENV_ROOT", "/tmp"),
                    help="where the peer venvs venv-jaxpeers-{cuthbert,smcjax} live / are created")
    ap.add_argument("--peers", default="cuthbert,smcjax")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    x64 = not args.x32
    sys.path.insert(0, str(HERE.parent))
    from _common import fmt_s, print_header, print_table, setup_jax

    setup_jax(x64)
    import jax
    import jax.numpy as jnp

    import markovppl as mp
    from markovppl import particles as pt

    print_header("bootstrap particle filter: markovppl vs cuthbert, smcjax", x64)
    sizes = [(t, n) for t in (100, 1000) for n in (100, 1000)]
    data = {t: simulate(t) for t in (100, 1000)}
    dtype = jnp.float64 if x64 else jnp.float32
    spec = {"x64": x64, "sizes": sizes, "data": {str(t): y.tolist() for t, y in data.items()}}

    peers = {}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "in.json").write_text(json.dumps(spec))
        for name in [p for p in args.peers.split(",") if p]:
            python = ensure_venv(name, Path(args.venv_root))
            if python is None:
                continue
            out = Path(tmp) / f"{name}.json"
            t0 = time.perf_counter()
            proc = subprocess.run([str(python), str(HERE), "--peer", name, str(Path(tmp) / "in.json"), str(out)])
            if proc.returncode or not out.exists():
                print(f"SKIP {name}: its worker failed (exit {proc.returncode})")
                continue
            peers[name] = json.loads(out.read_text())
            print(f"{name} side: {time.perf_counter() - t0:.1f} s wall; "
                  + ", ".join(f"{k} {v}" for k, v in peers[name]["versions"].items()), flush=True)

    e = jnp.eye(1, dtype=dtype)
    ssm = mp.LinearGaussianSSM(jnp.zeros(1, dtype), e, PARAMS["rho"] * e, PARAMS["sx"] ** 2 * e, e,
                               PARAMS["sy"] ** 2 * e)
    ours, exact = [], {}
    for t, n in sizes:
        y = jnp.asarray(data[t][:, None], dtype)
        fk = pt.bootstrap_lgssm(ssm, y)
        exact[t] = float(ssm.log_prob(y))
        ours.append(measure(jax, lambda k, fk=fk, t=t, n=n: pt.particle_filter(k, fk, t, n).log_evidence, t, n))

    rows, raw = [], {"exact": exact, "markovppl": ours, "peers": peers}
    for i, (t, n) in enumerate(sizes):
        libs = [("markovppl", ours[i])] + [(name, p["results"][i]) for name, p in peers.items()]
        for name, r in libs:
            lz = np.asarray(r["log_z"])
            ratio = "" if name == "markovppl" else (f"{r['single_s'] / ours[i]['single_s']:.2f}x / "
                                                   f"{r['vmap_per_filter_s'] / ours[i]['vmap_per_filter_s']:.2f}x")
            rows.append([t, n, name, fmt_s(r["compile_s"]), fmt_s(r["single_s"]), fmt_s(r["vmap_per_filter_s"]),
                         ratio, f"{lz.mean() - exact[t]:+.3f}", f"{lz.var():.3f}"])
    print("\nexact Kalman log Z: " + ", ".join(f"T={t}: {v:.3f}" for t, v in exact.items()) + "\n")
    print_table(rows, ["T", "N", "library", "compile", "single (median of 10)", f"vmap({SEEDS}) / filter",
                       "ratio peer/ours (single / vmap)", f"mean log Z_hat - log Z ({SEEDS} seeds)",
                       "Var log Z_hat"])
    if args.json:
        Path(args.json).write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--peer":
        peer_main(*sys.argv[2:])
    else:
        main()
