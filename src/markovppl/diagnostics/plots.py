"""Plots people would rather look at than read: observations with posterior hidden-state probabilities."""

from __future__ import annotations

import os

import numpy as np

__all__ = ["plot_state_probabilities"]


def plot_state_probabilities(time, obs, state_probs, path: str | os.PathLike, *, state_means=None,
                             ylabel: str = "observation", title: str | None = None,
                             state_labels: list[str] | None = None) -> str:
    r"""Two panels: the observed series (with posterior state means if given) and the posterior
    probabilities $p(x_t = k \mid y)$ stacked over time. Writes a PNG and returns its path.

    Args:
        time: ``(T,)`` time points.
        obs: ``(T,)`` observations.
        state_probs: ``(T, K)`` posterior state probabilities (e.g. averaged smoothed probabilities).
        path: output file.
        state_means: optional ``(T,)`` posterior mean of the emission mean, drawn over the data.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    time, obs, probs = np.asarray(time), np.asarray(obs), np.asarray(state_probs)
    k = probs.shape[-1]
    labels = state_labels or [f"state {i}" for i in range(k)]
    colors = plt.get_cmap("viridis")(np.linspace(0.1, 0.9, k))
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    ax1.plot(time, obs, "o-", color="0.3", ms=3, lw=0.8, label="observed")
    if state_means is not None:
        ax1.plot(time, np.asarray(state_means), color="C3", lw=1.8, label="posterior mean of state level")
    ax1.set_ylabel(ylabel)
    ax1.legend(loc="upper right", frameon=False)
    if title:
        ax1.set_title(title)
    ax2.stackplot(time, probs.T, colors=colors, labels=labels, step="mid")
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("P(state | data)")
    ax2.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=k, frameon=False, fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
