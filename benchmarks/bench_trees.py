"""Tree evidence benchmark: markovppl GaussianTree vs hyperiax 3 BFFG vs a dense multivariate normal.

Run:  python benchmarks/bench_trees.py [--x64] [--sizes 100,1000,10000] [--repeats 10] [--dense-max 2000]

Model (identical for every contender): a random rooted binary tree with n leaves (coalescent topology,
exponential branch lengths with mean 0.3; ``markovppl.graph.random_tree(n, seed=n)``), a univariate
Brownian-motion trait x_child | x_parent ~ N(x_parent, sigma2 * length), the root fixed at 0, each leaf
observed with noise y = x + N(0, tau2). Timed: ``jit(value_and_grad)`` of log p(y) with respect to
(sigma2, tau2).

* markovppl: ``GaussianTree(tree, BrownianMotion(...), 0, 0, tau2).log_prob`` (level-ordered backward
  filter, one ``lax.scan`` over the plan).
* hyperiax 3.0.0: ``discrete_bf_sweep`` on the same tree (BFS-ordered topology), the root evidence
  ``log_norm[0]``; its per-edge auxiliary functions only see ``(anchor, params)``, so each node's branch
  length is carried in its ``anchor`` field (the linear-Gaussian auxiliary ignores anchors otherwise).
* dense: ``jax.scipy.stats.multivariate_normal.logpdf`` with covariance sigma2 * S + tau2 * I,
  S = shared path lengths (built once outside the timed function), for n <= --dense-max.

"first" = first call (trace + compile + run); "median" = median of --repeats further calls. Ratios are
peer_time / markovppl_time (> 1: markovppl faster). Values are cross-checked (relative 1e-6 in x64).
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


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--x64", action="store_true")
    p.add_argument("--sizes", default="100,1000,10000")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--dense-max", type=int, default=2000)
    p.add_argument("--json", default=None, help="write the results to this file")
    return p.parse_args(argv)


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


def hyperiax_loglik(tree, y, dtype):
    """A jitted value_and_grad of the hyperiax root evidence, and its inputs."""
    import jax
    import jax.numpy as jnp
    from hyperiax.core import Tree as HTree
    from hyperiax.core import from_parents as h_from_parents
    from hyperiax.prebuilt.bffg import discrete_bf_sweep, discrete_schema, init_discrete_tree

    order = bfs_order(tree.parent)
    new = np.empty_like(order)
    new[order] = np.arange(len(order))
    parents = np.where(tree.parent[order] < 0, 0, new[np.maximum(tree.parent[order], 0)]).astype(np.int32)
    topo = h_from_parents(parents)
    assert np.all(topo.parents == parents), "hyperiax reordered the topology"
    lengths = jnp.asarray(tree.lengths[order], dtype)
    # leaf observations in hyperiax's leaf order (its node order = our BFS order)
    y_by_node = np.zeros(tree.num_nodes)
    y_by_node[tree.leaves] = np.asarray(y)
    leaf_obs = jnp.asarray(y_by_node[order][topo.is_leaf][:, None], dtype)
    empty = HTree.empty(topo, discrete_schema(1))
    bf = discrete_bf_sweep(
        lambda anchor, p: jnp.eye(1, dtype=dtype),
        lambda anchor, p: jnp.zeros(1, dtype=dtype),
        lambda anchor, p: (p["sigma2"] * anchor[0]) * jnp.eye(1, dtype=dtype),
    )

    def loglik(sigma2, tau2):
        t = init_discrete_tree(empty, leaf_obs, tau2, d=1, root_val=jnp.zeros(1, dtype))
        t = t.set(anchor=jnp.broadcast_to(lengths[:, None], (tree.num_nodes, 1)))
        t = bf(t, params={"sigma2": sigma2})
        return t.log_norm[0]

    return jax.jit(jax.value_and_grad(loglik, argnums=(0, 1)))


def main(argv=None):
    args = parse_args(argv)
    setup_jax(args.x64)
    import jax
    import jax.numpy as jnp

    import markovppl as mp
    from markovppl.kernels.continuous import BrownianMotion

    dtype = jnp.float64 if args.x64 else jnp.float32
    print_header("bench_trees", args.x64)
    try:
        from importlib.metadata import version

        print(f"hyperiax {version('hyperiax')}")
        have_hyperiax = True
    except Exception:
        print("hyperiax not installed: skipped")
        have_hyperiax = False

    sigma2, tau2 = jnp.asarray(0.7, dtype), jnp.asarray(0.1, dtype)
    rows, results = [], []
    for n in [int(s) for s in args.sizes.split(",")]:
        tree = mp.graph.random_tree(n, seed=n, mean_length=0.3)
        rng = np.random.default_rng(n)
        y = rng.normal(size=n)
        y_j = jnp.asarray(y[:, None], dtype)

        def ours(s2, t2):
            m = mp.GaussianTree(tree, BrownianMotion(jnp.reshape(s2, (1, 1))), jnp.zeros(1, dtype), jnp.zeros((1, 1), dtype),
                                jnp.reshape(t2, (1, 1)))
            return m.log_prob(y_j)

        f_ours = jax.jit(jax.value_and_grad(ours, argnums=(0, 1)))
        first, med, (val, grad) = time_fn(f_ours, sigma2, tau2, repeats=args.repeats)
        entry = {"n": n, "nodes": tree.num_nodes, "height": tree.height, "plan": list(tree.schedule().shape),
                 "markovppl": {"first_s": first, "median_s": med, "value": float(val)}}
        rows.append([f"{n}", "markovppl", fmt_s(first), fmt_s(med), "1.00", f"{float(val):.6f}"])
        if have_hyperiax:
            f_h = hyperiax_loglik(tree, y, dtype)
            h_first, h_med, (h_val, h_grad) = time_fn(f_h, sigma2, tau2, repeats=args.repeats)
            entry["hyperiax"] = {"first_s": h_first, "median_s": h_med, "value": float(h_val)}
            rows.append([f"{n}", "hyperiax", fmt_s(h_first), fmt_s(h_med), f"{h_med / med:.2f}", f"{float(h_val):.6f}"])
            if args.x64:
                assert abs(float(h_val) - float(val)) < 1e-6 * max(1.0, abs(float(val))), (float(h_val), float(val))
                assert np.allclose(np.asarray(h_grad), np.asarray(grad), rtol=1e-6), (h_grad, grad)
        if n <= args.dense_max:
            shared = tree.path_length_matrix(tree.leaves)
            s_j = jnp.asarray(shared, dtype)

            def dense(s2, t2):
                cov = s2 * s_j + t2 * jnp.eye(n, dtype=dtype)
                return jax.scipy.stats.multivariate_normal.logpdf(y_j[:, 0], jnp.zeros(n, dtype), cov)

            f_d = jax.jit(jax.value_and_grad(dense, argnums=(0, 1)))
            d_first, d_med, (d_val, _) = time_fn(f_d, sigma2, tau2, repeats=args.repeats)
            entry["dense"] = {"first_s": d_first, "median_s": d_med, "value": float(d_val)}
            rows.append([f"{n}", "dense MVN", fmt_s(d_first), fmt_s(d_med), f"{d_med / med:.2f}", f"{float(d_val):.6f}"])
            if args.x64:
                assert abs(float(d_val) - float(val)) < 1e-6 * max(1.0, abs(float(val)))
        results.append(entry)
    print_table(rows, ["leaves", "method", "first", "median", "peer/ours", "log p(y)"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
