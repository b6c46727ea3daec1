"""SIR contact process, 100 individuals on a line: guided pCN + random-walk Gibbs (script: `python models/sir_contact.py`, not for `markovppl fit`).

The example of bffg.md §1.9 row 2 (after fmeulen/GuidedDAGExamples.jl, ``src/sir``): 100 individuals
on a line, each connected to the individuals within distance 2; step tau = 0.1; true rates
(lambda, mu, nu) = (2.5, 0.6, 0.1); xi = 0.999; 7 individuals infected at time 0; 10 full-state
observations 50 steps apart (steps 0, 50, ..., 450). The data are **simulated** from the model with the
fixed seed ``SEED = 3`` (NumPy for the 7 initially infected, ``jax.random.PRNGKey(3)`` for the path).

Inference targets pi(theta) phi(z) exp(log_weight(theta, z)) (the innovation scheme; its theta-marginal
is the exact posterior): pCN moves on the standard-normal innovations z (one block per observation
interval and half of the individuals), and per rate a log-scale random walk with z held fixed
(non-centred; the auxiliary messages are recomputed at the proposed rates) and one with the path held
fixed (centred; z is then redrawn given the path). Priors: Exponential with scales (5, 5, 1), as in the Julia example.

Run ``python models/sir_contact.py --out figures`` (2000 Gibbs iterations; about 10 minutes for the
sampler and 5 for the ESS table on 2 shared CPU cores; ``--ess-samples 0`` skips the table). It prints
the guided-vs-unguided importance-sampling ESS table, posterior means and acceptance rates, and writes
``sir_paths.png`` and ``sir_trace.png`` (docs/interacting_particles.md shows both and the numbers).
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np

from markovppl import ips

SEED = 3
N_INDIVIDUALS, REACH = 100, 2
STEP, XI = 0.1, 0.999
TRUE_RATES = (2.5, 0.6, 0.1)
NUM_INFECTED = 7
OBS_EVERY, NUM_OBS = 50, 10
PRIOR_SCALES = (5.0, 5.0, 1.0)
INIT_RATES = (0.3, 2.0, 0.8)


def line_graph(n: int = N_INDIVIDUALS, reach: int = REACH) -> nx.Graph:
    """Individuals 0..n-1 on a line, connected when at most ``reach`` apart."""
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from((i, j) for i in range(n) for j in range(i + 1, min(n, i + reach + 1)))
    return g


def simulate_data(seed: int = SEED):
    """The true model, the simulated path ``(T+1, n)`` and the observations of every ``OBS_EVERY``-th step."""
    rng = np.random.default_rng(seed)
    x0 = np.zeros(N_INDIVIDUALS, int)
    x0[rng.choice(N_INDIVIDUALS, NUM_INFECTED, replace=False)] = ips.I
    graph = ips.contact_graph(line_graph())
    model = ips.contact_process(graph, *TRUE_RATES, initial_probs=np.eye(3)[x0], step=STEP, xi=XI)
    num_steps = OBS_EVERY * (NUM_OBS - 1)
    path = np.asarray(ips.simulate(jax.random.PRNGKey(seed), model, num_steps))
    times = np.arange(0, num_steps + 1, OBS_EVERY)
    return model, path, ips.observations(times, path[times], num_steps)


def gibbs(rng_key, model, data, num_iterations: int, *, rho: float = 0.99, rw_scale: float = 0.05,
          init=INIT_RATES, burn_in: int | None = None, groups: int = 2, target_accept: float = 0.3):
    """pCN + log random-walk Gibbs sampler on (rates, innovations); one ``lax.scan`` per phase.

    The innovations ``z`` ``(T+1, n)`` are split into blocks: one per observation interval and group of
    ``n / groups`` consecutive individuals. Each sweep makes one pCN move per block (the auxiliary
    messages are reused: they depend on the rates only), one log-scale random-walk move per rate
    with ``z`` fixed (non-centred; messages recomputed at the proposed rates), and one per rate with
    the *path* fixed (centred: target pi(theta) p_theta(x), then z redrawn from N(0, I) conditioned on
    the guided map reproducing x at the new rates, ``ips.innovations_for_path``). The two
    parametrisations are interleaved because each is slow where the other is fast. During burn-in (default: the first
    half) each block's rho and each rate's step size are adapted by Robbins-Monro towards
    ``target_accept``; afterwards they are frozen, so the second half is a plain Markov chain.

    Returns a dict with the rate draws ``(num_iterations, 3)``, acceptance rates of the second half,
    the posterior frequency of I per (step, individual) over the second half, and the final path.
    """
    shape = ips.noise_shape(model, data)
    burn_in = num_iterations // 2 if burn_in is None else burn_in
    # rows (t_k, t_{k+1}] of z draw the states between two observations (row 0 draws x_0)
    edges = np.unique(np.concatenate([[0, 1], np.asarray(data.times) + 1, [shape[0]]]))
    edges = edges[edges <= shape[0]]
    row, ind = np.arange(shape[0]), np.arange(shape[1])
    cuts = np.linspace(0, shape[1], groups + 1).round().astype(int)
    blocks = jnp.asarray(np.stack([((row >= a) & (row < b))[:, None] & ((ind >= c) & (ind < d))[None]
                                   for a, b in zip(edges[:-1], edges[1:]) for c, d in zip(cuts[:-1], cuts[1:])]))
    num_blocks = blocks.shape[0]
    scales = jnp.asarray(PRIOR_SCALES)

    def run(key, log_rates, z, model, data):  # model and data are arguments, not constants XLA would fold
        def with_rates(log_rates):
            r = jnp.exp(log_rates)
            return model._replace(infection=r[0], recovery=r[1], waning=r[2])

        def log_prior(log_rates):  # Exponential priors on the rates, plus the log-Jacobian of exp
            return jnp.sum(-jnp.exp(log_rates) / scales + log_rates)

        def sweep(carry, inp, adapt):
            log_rates, filt, z, lw, logit_rho, log_step, freq = carry
            key, it = inp
            k_pcn, k_rw = jax.random.split(key)
            m = with_rates(log_rates)

            def pcn(b, c):
                z, lw, acc = c
                kw, ku = jax.random.split(jax.random.fold_in(k_pcn, b))
                r = jax.nn.sigmoid(logit_rho[b])
                prop = jnp.where(blocks[b], r * z + jnp.sqrt(1 - r**2) * jax.random.normal(kw, shape), z)
                lw_prop = ips.guided_draw(m, filt, prop).log_weight
                a = jnp.minimum(1.0, jnp.exp(lw_prop - lw))
                ok = jax.random.uniform(ku) < a
                return jnp.where(ok, prop, z), jnp.where(ok, lw_prop, lw), acc.at[b].set(a)

            z, lw, acc_pcn = jax.lax.fori_loop(0, num_blocks, pcn, (z, lw, jnp.zeros(num_blocks)))

            def rw(j, c):
                log_rates, filt, lw, acc = c
                ke, ku = jax.random.split(jax.random.fold_in(k_rw, j))
                prop = log_rates.at[j].add(jnp.exp(log_step[j]) * jax.random.normal(ke, dtype=log_rates.dtype))
                filt_prop = ips.backward_filter(with_rates(prop), data)
                lw_prop = ips.guided_draw(with_rates(prop), filt_prop, z).log_weight
                a = jnp.minimum(1.0, jnp.exp(lw_prop + log_prior(prop) - lw - log_prior(log_rates)))
                ok = jax.random.uniform(ku) < a
                filt = jax.tree.map(lambda u, v: jnp.where(ok, u, v), filt_prop, filt)
                return jnp.where(ok, prop, log_rates), filt, jnp.where(ok, lw_prop, lw), acc.at[j].set(a)

            log_rates, filt, lw, acc_rw = jax.lax.fori_loop(0, 3, rw, (log_rates, filt, lw, jnp.zeros(3)))

            def centred(j, c):  # path held fixed, then z redrawn given the path at the new rates
                log_rates, filt, z, lw, acc = c
                ke, ku, kz = jax.random.split(jax.random.fold_in(k_rw, 3 + j), 3)
                x = ips.guided_draw(with_rates(log_rates), filt, z).path
                prop = log_rates.at[j].add(jnp.exp(log_step[3 + j]) * jax.random.normal(ke, dtype=log_rates.dtype))
                log_ratio = (ips.path_log_prob(with_rates(prop), x) + log_prior(prop)
                             - ips.path_log_prob(with_rates(log_rates), x) - log_prior(log_rates))
                filt_prop = ips.backward_filter(with_rates(prop), data)
                z_prop = ips.innovations_for_path(kz, with_rates(prop), filt_prop, x)
                draw = ips.guided_draw(with_rates(prop), filt_prop, z_prop)
                a = jnp.minimum(1.0, jnp.exp(log_ratio))
                ok = (jax.random.uniform(ku) < a) & jnp.all(draw.path == x)  # guard: float round trip
                filt = jax.tree.map(lambda u, v: jnp.where(ok, u, v), filt_prop, filt)
                return (jnp.where(ok, prop, log_rates), filt, jnp.where(ok, z_prop, z),
                        jnp.where(ok, draw.log_weight, lw), acc.at[j].set(a))

            log_rates, filt, z, lw, acc_c = jax.lax.fori_loop(0, 3, centred, (log_rates, filt, z, lw, jnp.zeros(3)))
            acc_rw = jnp.concatenate([acc_rw, acc_c])
            if adapt:  # Robbins-Monro, warm-up only
                gain = 1.0 / (it + 1.0) ** 0.6
                logit_rho = jnp.clip(logit_rho - gain * (acc_pcn - target_accept), 0.0, 9.2)
                log_step = log_step + gain * (acc_rw - target_accept)
            else:
                path = ips.guided_draw(with_rates(log_rates), filt, z).path
                freq = freq + (path == ips.I)
            carry = (log_rates, filt, z, lw, logit_rho, log_step, freq)
            return carry, (log_rates, acc_pcn, acc_rw, lw)

        filt = ips.backward_filter(with_rates(log_rates), data)
        lw = ips.guided_draw(with_rates(log_rates), filt, z).log_weight
        logit_rho = jnp.full(num_blocks, jnp.log(rho) - jnp.log1p(-rho))
        log_step = jnp.full(6, jnp.log(rw_scale))
        keys = jax.random.split(key, num_iterations)
        its = jnp.arange(num_iterations, dtype=z.dtype)
        carry = (log_rates, filt, z, lw, logit_rho, log_step, jnp.zeros(shape))
        carry, warm = jax.lax.scan(lambda c, x: sweep(c, x, True), carry, (keys[:burn_in], its[:burn_in]))
        carry, main = jax.lax.scan(lambda c, x: sweep(c, x, False), carry, (keys[burn_in:], its[burn_in:]))
        return carry, warm, main

    k_init, k_run = jax.random.split(rng_key)
    z0 = jax.random.normal(k_init, shape)
    carry, warm, main = jax.jit(run)(k_run, jnp.log(jnp.asarray(init)), z0, model, data)
    log_rates, filt, z, _, logit_rho, log_step, freq = carry
    r = jnp.exp(log_rates)
    path = ips.guided_draw(model._replace(infection=r[0], recovery=r[1], waning=r[2]), filt, z).path
    lr = np.concatenate([np.asarray(warm[0]), np.asarray(main[0])])
    return {
        "rates": np.exp(lr), "accept_pcn": np.asarray(main[1]).mean(0), "accept_rw": np.asarray(main[2]).mean(0),
        "rho": np.asarray(jax.nn.sigmoid(logit_rho)), "rw_step": np.exp(np.asarray(log_step)),
        "log_weights": np.concatenate([np.asarray(warm[3]), np.asarray(main[3])]),
        "infected_freq": np.asarray(freq) / max(num_iterations - burn_in, 1),
        "final_path": np.asarray(path), "burn_in": burn_in,
    }


def ess_comparison(model, data, num_samples: int = 1000, seed: int = 0):
    """Importance-sampling estimates with guided and unguided (forward-simulated) paths at the same rates."""
    key = jax.random.PRNGKey(seed)
    guided = ips.importance_evidence(key, model, data, num_samples)
    forward = ips.importance_evidence(key, model, data, num_samples, guided=False)
    return guided, forward


def ess_table(model, path, data, sizes=((5, 1), (10, 1), (10, 3), (30, 1), (30, 3), (100, 9)), num_samples=1000):
    """Guided vs unguided Kish ESS on sub-problems: the first ``n`` individuals and ``k`` observation intervals."""
    rows = []
    for n, k in sizes:
        sub_graph = ips.contact_graph(line_graph(n))
        init = model.initial_probs[:n]
        sub = ips.contact_process(sub_graph, *TRUE_RATES, initial_probs=init, step=STEP, xi=XI)
        times = np.asarray(data.times)[: k + 1]
        sub_data = ips.observations(times, path[times, :n], int(times[-1]))
        guided, forward = ess_comparison(sub, sub_data, num_samples)
        rows.append((n, k, float(guided.ess), float(np.std(guided.log_weights)), float(forward.ess)))
    return rows


def plot(result, path, data, out_dir: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    os.makedirs(out_dir, exist_ok=True)
    cmap = ListedColormap(["#4c9be8", "#d62728", "#7f7f7f"])  # S blue, I red, R grey
    times = np.asarray(data.times)
    fig, axes = plt.subplots(3, 1, figsize=(10, 8.5), sharex=True)
    for ax, img, title in [(axes[0], path, "simulated (true) path"),
                           (axes[1], result["final_path"], "guided path at the last Gibbs iteration")]:
        ax.imshow(img.T, aspect="auto", cmap=cmap, vmin=0, vmax=2, interpolation="nearest")
        ax.vlines(times, -0.5, img.shape[1] - 0.5, colors="k", linewidth=0.6)
        ax.set_ylabel("individual")
        ax.set_title(title + " (S blue, I red, R grey; black lines: full observations)")
    im = axes[2].imshow(result["infected_freq"].T, aspect="auto", cmap="Reds", vmin=0, vmax=1, interpolation="nearest")
    axes[2].vlines(times, -0.5, path.shape[1] - 0.5, colors="k", linewidth=0.6)
    axes[2].set_title("posterior probability of I (second half of the Gibbs run)")
    axes[2].set_ylabel("individual")
    axes[2].set_xlabel("step")
    fig.colorbar(im, ax=axes.tolist(), fraction=0.02)
    p1 = os.path.join(out_dir, "sir_paths.png")
    fig.savefig(p1, dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(11, 2.8))
    for ax, k, name, true in zip(axes, range(3), ("lambda", "mu", "nu"), TRUE_RATES):
        ax.plot(result["rates"][:, k], lw=0.6)
        ax.axhline(true, color="k", ls="--", lw=0.8)
        ax.axvline(result["burn_in"], color="grey", ls=":", lw=0.8)
        ax.set_title(f"{name} (true {true})")
        ax.set_xlabel("iteration")
    fig.tight_layout()
    p2 = os.path.join(out_dir, "sir_trace.png")
    fig.savefig(p2, dpi=110)
    plt.close(fig)
    return [p1, p2]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--rho", type=float, default=0.99)
    parser.add_argument("--ess-samples", type=int, default=1000, help="0 skips the ESS table")
    parser.add_argument("--out", default="sir_contact_output")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)

    model, path, data = simulate_data()
    print(f"infected at the observation times: {(path[np.asarray(data.times)] == ips.I).sum(1).tolist()}")
    if args.ess_samples > 0:
        t0 = time.time()
        print(f"importance sampling at the true rates, {args.ess_samples} paths each [Kish ESS]:")
        print("| individuals | observation intervals | guided ESS | sd of guided log-weights | unguided ESS |")
        print("|---|---|---|---|---|")
        for n, k, ess_g, sd_g, ess_f in ess_table(model, path, data, num_samples=args.ess_samples):
            print(f"| {n} | {k} | {ess_g:.1f} | {sd_g:.2f} | {ess_f:.1f} |")
        print(f"[{time.time() - t0:.0f} s]")
    t0 = time.time()
    result = gibbs(jax.random.PRNGKey(SEED), model, data, args.iterations, rho=args.rho)
    keep = result["rates"][result["burn_in"]:]
    print(f"Gibbs: {args.iterations} iterations in {time.time() - t0:.0f} s (adaptation frozen after {result['burn_in']})")
    print(f"  pCN: mean acceptance {result['accept_pcn'].mean():.2f} over {result['accept_pcn'].size} blocks "
          f"(range {result['accept_pcn'].min():.2f}-{result['accept_pcn'].max():.2f}), "
          f"rho range {result['rho'].min():.3f}-{result['rho'].max():.3f}")
    print(f"  random walk (lambda, mu, nu; non-centred then centred): acceptance "
          f"{np.round(result['accept_rw'], 2).tolist()}, log-scale steps {np.round(result['rw_step'], 3).tolist()}")
    for k, name in enumerate(("lambda", "mu", "nu")):
        print(f"  {name:6s} true {TRUE_RATES[k]:.2f}  posterior mean {keep[:, k].mean():.3f}  "
              f"sd {keep[:, k].std():.3f}  (second half of the run)")
    for p in plot(result, path, data, args.out):
        print("wrote", p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
