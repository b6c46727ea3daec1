"""Make ``docs/figures/concepts.png``: backward messages and guided forward paths of a small HMM.

Run from the repository root (needs only markovppl and matplotlib):

    python docs/figures/make_concepts_figure.py

A 2-state Poisson HMM is simulated; the backward filter (leaf rule, pullback, fusion) gives the messages
h_t(x) = p(y_{t:T-1} | x_t = x) and the evidence; forward guiding with those messages draws exact
posterior paths. Everything below uses the library's own rules, not a re-implementation.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpyro.distributions as dist  # noqa: E402

import markovppl as mp  # noqa: E402
from markovppl.kernels import Categorical, Emission  # noqa: E402
from markovppl.kernels.initial import CategoricalLaw  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "concepts.png")


def main(out: str = OUT) -> str:
    T, num_paths = 40, 40
    pi0 = jnp.array([0.5, 0.5])
    P = jnp.array([[0.92, 0.08], [0.12, 0.88]])
    emission = dist.Poisson(jnp.array([2.0, 7.0]))
    hmm = mp.HMM(pi0, P, emission, num_steps=T)
    x_true, y = hmm.sample_with_states(jax.random.PRNGKey(3))

    # Backward filter: leaf messages g_t, pulled back through P and fused, t = T-1, ..., 0.
    law, kernel = CategoricalLaw(jnp.log(pi0)), Categorical(P)
    leaves = mp.backward.leaf(Emission(emission), y, jnp.zeros(T, bool), 0)
    back = mp.backward_filter(law, kernel, leaves)
    h = jnp.exp(back.messages.log_h)                       # shape of h_t, (T, 2)
    h_state1 = h[:, 1] / h.sum(-1)                          # h_t(1) / (h_t(0) + h_t(1))
    smoothed = hmm.smooth(y).smoothed_probs[:, 1]           # p(x_t = 1 | y_{0:T-1})

    # Forward guiding: x_0 ~ pi0 h_0, x_t ~ P[x_{t-1}, .] h_t (normalised); exact draws, zero weights.
    noise = mp.guided.sample_noise(jax.random.PRNGKey(4), law, T, (num_paths,))
    guided = mp.forward_guide(law, kernel, back.messages, noise)
    paths = guided.path.T                                   # (num_paths, T)
    assert float(jnp.abs(guided.log_weights).max()) == 0.0

    t = jnp.arange(T)
    fig, axes = plt.subplots(3, 1, figsize=(9, 7), sharex=True, constrained_layout=True)
    ax = axes[0]
    for k in range(T):
        if int(x_true[k]) == 1:
            ax.axvspan(k - 0.5, k + 0.5, color="tab:orange", alpha=0.15, lw=0)
    ax.plot(t, y, "o-", color="k", ms=3.5, lw=0.8)
    ax.set_ylabel("count $y_t$")
    ax.set_title(r"(a) observations; shaded: true hidden state $x_t = 1$ (rates 2 and 7)", fontsize=10, loc="left")

    ax = axes[1]
    ax.plot(t, h_state1, "s-", color="tab:blue", ms=3, lw=1,
            label=r"backward message $h_t(1) / \sum_x h_t(x)$, $h_t(x) = p(y_{t:T-1} \mid x_t = x)$")
    ax.plot(t, smoothed, "-", color="tab:red", lw=1.6, label=r"smoothing $p(x_t = 1 \mid y_{0:T-1}) \propto$ filter $\times\, h_t$")
    ax.annotate("", xy=(2, 1.72), xytext=(T - 3, 1.72), arrowprops=dict(arrowstyle="->", color="tab:blue"),
                annotation_clip=False)
    ax.text(T / 2, 1.76, "backward filter: leaf $g_t$, pullback $P h_{t+1}$, fusion $g_t \\cdot P h_{t+1}$",
            ha="center", va="bottom", fontsize=8.5, color="tab:blue")
    ax.set_ylim(-0.05, 2.0)
    ax.set_yticks([0, 0.5, 1])
    ax.set_ylabel("state 1")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0.0, 0.85), ncol=2, framealpha=0.9)
    ax.set_title(f"(b) messages and smoothing; log evidence {float(back.log_evidence):.2f}", fontsize=10, loc="left")

    ax = axes[2]
    jitter = jax.random.uniform(jax.random.PRNGKey(5), (num_paths, 1), minval=-0.18, maxval=0.18)
    for path, j in zip(paths, jitter):
        ax.step(t, path + j, where="mid", color="tab:green", alpha=0.25, lw=0.9)
    ax.step(t, x_true, where="mid", color="k", lw=1.4, label="true path")
    ax.plot(t, paths.mean(0), color="tab:red", lw=1.2, ls="--", label="mean of guided paths")
    ax.annotate("", xy=(T - 3, 1.42), xytext=(2, 1.42), arrowprops=dict(arrowstyle="->", color="tab:green"),
                annotation_clip=False)
    ax.text(T / 2, 1.46, r"forward guiding: $x_t \sim \kappa^\circ(x_{t-1}, \cdot) \propto P[x_{t-1}, \cdot]\, h_t$",
            ha="center", va="bottom", fontsize=8.5, color="tab:green")
    ax.set_ylim(-0.35, 1.75)
    ax.set_yticks([0, 1])
    ax.set_ylabel("state $x_t$")
    ax.set_xlabel("time $t$")
    ax.legend(fontsize=8, loc="center right", framealpha=0.9)
    ax.set_title(f"(c) {num_paths} guided forward paths (exact posterior draws, all log-weights 0)",
                 fontsize=10, loc="left")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


if __name__ == "__main__":
    print(main())
