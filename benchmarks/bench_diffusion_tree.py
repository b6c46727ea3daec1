"""Branching-diffusion BFFG benchmark: markovppl DiffusionTree vs hyperiax 3 continuous-edge BFFG.

Run:  python benchmarks/bench_diffusion_tree.py [--x64] [--sizes 100,1000] [--steps 10] [--dim 2]
                                                 [--repeats 5] [--solvers auto,rk4] [--tau2 0.5] [--json out.json]

(hyperiax is in the ``bench`` extra: ``pip install -e ".[bench]"``; without it only markovppl is timed.)

Model (identical for both contenders): a random rooted binary tree with n leaves
(``markovppl.graph.random_tree(n, seed=n, mean_length=0.3)``), exported to hyperiax with the same topology
and branch lengths (BFS-renumbered, as in ``bench_trees.py``); along every edge the d-dimensional
Ornstein-Uhlenbeck SDE  dX = -theta B (X - mu) dt + S dW  (B non-diagonal, theta = 1 the drift parameter),
started from the parent's value; the root fixed at 0; every leaf observed as y = x + N(0, tau2 I) (``--tau2``, default 0.5). Each
edge is cut into ``--steps`` equal substeps (markovppl ``time_change=False``, hyperiax ``linspace``). The
auxiliary linear SDE is the true one on both sides (so all guiding weights vanish and the auxiliary
evidence is the exact evidence).

* markovppl: ``DiffusionTree(tree, Diffusion(drift, S, None, LinearSDE(-theta B, theta B mu, S),
  num_steps, time_change=False, params=theta, solver=s), 0, 0, tau2 I)`` for each s in ``--solvers``;
  ``backward(y).log_evidence`` (messages on every edge's grid: matrix exponentials for ``solver="auto"``
  / ``"exact"``, RK4 for ``"rk4"``; level-ordered fusion) and ``guided_log_likelihood(y, zr, ze)``
  (backward filter + one guided Euler pass down the tree with Girsanov log-weights).
* hyperiax 3.0.0: ``init_continuous_tree`` + ``continuous_bf_sweep(steps, B(.), beta(.), S(.))`` (RK4 on
  the Riccati/c ODEs along each edge, children fused by the up-sweep), evidence ``log_norm[0]`` (root
  pinned at 0); guided pass = the same + ``continuous_fg_sweep`` with ``zs`` = the same noise
  (permuted to the BFS order), value ``log_norm[0] + sum(log_corr)``. Anchors are irrelevant (the
  auxiliary's coefficients do not depend on them) and are left at their initial values.
* oracle: ``GaussianTree`` with ``OrnsteinUhlenbeck`` edge kernels (exact transition densities).

Timed (each jitted, one function per contender): (1) evidence = backward filter; (2) backward filter + one
guided forward pass; (3) d evidence / d theta (``jax.grad``). "first" = first call (trace + compile +
run); "median" = median of ``--repeats`` further calls. "ratio" = markovppl / hyperiax median (< 1:
markovppl faster). Values and gradients are printed against each other and the oracle: markovppl's exact
solver must match the oracle to rounding; RK4 (hyperiax, markovppl ``rk4``) carries an O(dt^4) error, and the
two RK4 implementations should agree with each other far more closely than with the oracle.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import deque

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import fmt_s, print_header, print_table, setup_jax, time_fn  # noqa: E402

B_2 = np.array([[1.0, 0.4], [-0.3, 0.8]])
MU_2 = np.array([0.5, -0.2])
S_2 = np.array([[0.9, 0.0], [0.3, 0.7]])


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--x64", action="store_true")
    p.add_argument("--sizes", default="100,1000", help="numbers of leaves, comma-separated")
    p.add_argument("--steps", type=int, default=10, help="substeps per edge (both sides)")
    p.add_argument("--dim", type=int, default=2, help="state dimension d")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--tau2", type=float, default=0.5,
                   help="leaf noise variance (hyperiax's explicit RK4 Riccati step is unstable once dt*|H a| > ~2.8, "
                        "H = 1/tau2 at a leaf: e.g. tau2=0.05 with 10 steps gives NaN)")
    p.add_argument("--solvers", default="auto,rk4",
                   help="markovppl edge solvers to time, comma-separated (auto/exact: matrix exponentials; rk4: as hyperiax)")
    p.add_argument("--json", default=None, help="write the results to this file")
    return p.parse_args(argv)


def coefficients(d: int):
    """OU drift matrix B, mean mu and diffusion S for dimension d (the fixed 2-d case, block-repeated)."""
    if d == 2:
        return B_2, MU_2, S_2
    B, S = np.zeros((d, d)), np.zeros((d, d))
    mu = np.resize(MU_2, d)
    for i in range(0, d - 1, 2):
        B[i:i + 2, i:i + 2], S[i:i + 2, i:i + 2] = B_2, S_2
    if d % 2:
        B[-1, -1], S[-1, -1] = 1.0, 0.8
    return B, mu, S


def bfs_order(parent):
    kids = [[] for _ in parent]
    for v in range(1, len(parent)):
        kids[parent[v]].append(v)
    order, queue = [], deque([0])
    while queue:
        v = queue.popleft()
        order.append(v)
        queue.extend(kids[v])
    return np.asarray(order)


def markovppl_functions(tree, y, d, steps, solver, tau2, dtype):
    import jax
    import jax.numpy as jnp

    from markovppl.families.diffusion_tree import DiffusionTree
    from markovppl.kernels.diffusion import Diffusion, LinearSDE

    B, mu, S = (jnp.asarray(a, dtype) for a in coefficients(d))
    y = jnp.asarray(y, dtype)

    def drift(t, x, theta):
        return -theta * (B @ (x - mu))

    def model(theta):
        aux = LinearSDE(-theta * B, theta * (B @ mu), S)
        k = Diffusion(drift, S, None, aux, num_steps=steps, time_change=False, params=theta, solver=solver)
        return DiffusionTree(tree, k, jnp.zeros(d, dtype), jnp.zeros((d, d), dtype), tau2 * jnp.eye(d, dtype=dtype))

    evidence = lambda theta: model(theta).backward(y).log_evidence
    guided = lambda theta, zr, ze: model(theta).guided_log_likelihood(y, zr, ze)
    return jax.jit(evidence), jax.jit(guided), jax.jit(jax.grad(evidence))


def hyperiax_functions(tree, y, d, steps, tau2, dtype):
    """Jitted evidence, guided pass and gradient for hyperiax, plus the BFS node order."""
    import jax
    import jax.numpy as jnp
    from hyperiax.core import Tree as HTree
    from hyperiax.core import from_parents as h_from_parents
    from hyperiax.prebuilt.bffg import continuous_bf_sweep, continuous_fg_sweep, continuous_schema, init_continuous_tree

    B, mu, S = (jnp.asarray(a, dtype) for a in coefficients(d))
    order = bfs_order(tree.parent)
    new = np.empty_like(order)
    new[order] = np.arange(len(order))
    parents = np.where(tree.parent[order] < 0, 0, new[np.maximum(tree.parent[order], 0)]).astype(np.int32)
    topo = h_from_parents(parents)
    assert np.all(topo.parents == parents), "hyperiax reordered the topology"
    y_by_node = np.zeros((tree.num_nodes, d))
    y_by_node[tree.leaves] = np.asarray(y)
    leaf_obs = jnp.asarray(y_by_node[order][np.asarray(topo.is_leaf)], dtype)
    empty = HTree.empty(topo, continuous_schema(d, steps)).set(edge_len=jnp.asarray(tree.lengths[order], dtype))

    scale = lambda t, anchor, theta: -theta * B
    shift = lambda t, anchor, theta: theta * (B @ mu)
    sigma = lambda t, anchor, theta: S
    drift = lambda t, x, theta: -theta * (B @ (x - mu))
    diffusion = lambda t, x, theta: S
    bf = continuous_bf_sweep(steps, scale, shift, sigma)
    fg = continuous_fg_sweep(steps, drift, diffusion, scale, shift, sigma)

    def filtered(theta):
        t = init_continuous_tree(empty, leaf_obs, tau2, d=d, n_steps=steps, root_val=jnp.zeros(d, dtype))
        return bf(t, params=theta)

    evidence = lambda theta: filtered(theta).log_norm[0]

    def guided(theta, zs):
        t = fg(filtered(theta).set(zs=zs), params=theta)
        return t.log_norm[0] + jnp.sum(t.log_corr[1:])

    return jax.jit(evidence), jax.jit(guided), jax.jit(jax.grad(evidence)), order


def main(argv=None):
    args = parse_args(argv)
    setup_jax(args.x64)
    import jax
    import jax.numpy as jnp

    import markovppl as mp
    from markovppl.kernels.continuous import OrnsteinUhlenbeck

    dtype = jnp.float64 if args.x64 else jnp.float32
    print_header("bench_diffusion_tree", args.x64)
    try:
        from importlib.metadata import version

        print(f"hyperiax {version('hyperiax')}")
        have_hyperiax = True
    except Exception:
        print("hyperiax not installed: skipped")
        have_hyperiax = False
    d, steps, tau2 = args.dim, args.steps, args.tau2
    solvers = [s.strip() for s in args.solvers.split(",")]
    print(f"d={d}, steps per edge={steps}, markovppl solvers={args.solvers}, tau2={tau2}, repeats={args.repeats}\n")
    B, mu, S = (jnp.asarray(a, dtype) for a in coefficients(d))
    theta = jnp.asarray(1.0, dtype)
    tol = 1e-6 if args.x64 else 2e-3

    rows, checks, results = [], [], []
    for n in [int(s) for s in args.sizes.split(",")]:
        tree = mp.graph.random_tree(n, seed=n, mean_length=0.3)

        def oracle(th):
            ou = OrnsteinUhlenbeck(th * B, mu, S @ S.T)
            return mp.GaussianTree(tree, ou, jnp.zeros(d, dtype), jnp.zeros((d, d), dtype), tau2 * jnp.eye(d, dtype=dtype))

        y = oracle(theta).sample(jax.random.PRNGKey(n))
        exact, exact_grad = jax.jit(jax.value_and_grad(lambda th: oracle(th).log_prob(y)))(theta)
        zr = jnp.zeros(d, dtype)                                     # the root is pinned: its noise is unused
        ze = jax.random.normal(jax.random.PRNGKey(n + 1), (tree.num_nodes, steps, d), dtype)

        entry = {"n": n, "nodes": tree.num_nodes, "height": tree.height, "exact": float(exact),
                 "exact_grad": float(exact_grad), "hyperiax": {}}
        theirs = {}
        if have_hyperiax:
            h_ev, h_gd, h_gr, order = hyperiax_functions(tree, y, d, steps, tau2, dtype)
            theirs = {"evidence": time_fn(h_ev, theta, repeats=args.repeats),
                      "bf + guided pass": time_fn(h_gd, theta, ze[order], repeats=args.repeats),
                      "d evidence / d theta": time_fn(h_gr, theta, repeats=args.repeats)}
            for task, (h_first, h_med, h_val) in theirs.items():
                entry["hyperiax"][task] = {"first_s": h_first, "median_s": h_med, "value": float(h_val)}
        for solver in solvers:
            ev, gd, gr = markovppl_functions(tree, y, d, steps, solver, tau2, dtype)
            ours = {"evidence": time_fn(ev, theta, repeats=args.repeats),
                    "bf + guided pass": time_fn(gd, theta, zr, ze, repeats=args.repeats),
                    "d evidence / d theta": time_fn(gr, theta, repeats=args.repeats)}
            entry[f"markovppl[{solver}]"] = {}
            for task, (first, med, val) in ours.items():
                entry[f"markovppl[{solver}]"][task] = {"first_s": first, "median_s": med, "value": float(val)}
                row = [f"{n}", task, solver, fmt_s(first), fmt_s(med)]
                if task in theirs:
                    h_first, h_med, h_val = theirs[task]
                    row += [fmt_s(h_first), fmt_s(h_med), f"{med / h_med:.2f}"]
                else:
                    row += ["-", "-", "-"]
                rows.append(row)
                ref = float(exact_grad) if task.startswith("d ") else float(exact)
                h_val = float(theirs[task][2]) if task in theirs else float("nan")
                checks.append([f"{n}", task, solver, f"{ref:.8g}", f"{float(val) - ref:.2e}", f"{h_val - ref:.2e}",
                               f"{float(val) - h_val:.2e}"])
                for name, value in (("markovppl", float(val)), ("hyperiax", h_val)):
                    if (name == "markovppl" or (task in theirs and solver == solvers[0])) and not abs(value - ref) < tol * max(1.0, abs(ref)):
                        print(f"NOTE n={n} {task}: {name} {value:.10g} vs exact {ref:.10g} (differ by more than {tol:g} relative)")
        results.append(entry)

    print_table(rows, ["leaves", "task", "mp solver", "markovppl first", "markovppl median", "hyperiax first", "hyperiax median",
                       "ratio mp/hyperiax"])
    print("Values against the exact GaussianTree (OU transition densities) evidence / gradient:")
    print_table(checks, ["leaves", "task", "mp solver", "exact", "markovppl - exact", "hyperiax - exact",
                         "markovppl - hyperiax"])
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"d": d, "steps": steps, "tau2": tau2, "solvers": solvers, "x64": args.x64, "results": results}, fh, indent=1)


if __name__ == "__main__":
    main()
