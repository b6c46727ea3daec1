"""Plots people would rather look at than read: observations with posterior hidden-state probabilities,
or with a posterior band for a continuous latent state."""

from __future__ import annotations

import os

import numpy as np

__all__ = ["plot_smoothing_band", "plot_state_probabilities"]


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

    Examples:
        >>> import os, tempfile
        >>> probs = np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.1, 0.9]])
        >>> path = plot_state_probabilities(np.arange(2000, 2004), np.array([1, 2, 9, 8]), probs,
        ...                                 os.path.join(tempfile.mkdtemp(), "states.png"), state_means=probs @ [1.0, 9.0])
        >>> os.path.basename(path), os.path.getsize(path) > 0
        ('states.png', True)
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


def plot_smoothing_band(time, obs, latent_draws, path: str | os.PathLike, *, mean=None, prob: float = 0.9,
                        ylabel: str = "observation", title: str | None = None,
                        label: str = "latent state", obs_label: str = "observed", xlabel: str | None = None) -> str:
    r"""The observed series with the posterior mean of a continuous latent state and a central
    posterior band. Writes a PNG and returns its path.

    Drawing the band from posterior draws of the latent path (one per parameter draw, as in the
    ``latent_posterior`` group) mixes parameter and state uncertainty.

    Args:
        time: ``(T,)`` time points.
        obs: ``(T,)`` observations (NaN entries are left out of the line).
        latent_draws: ``(S, T)`` posterior draws of the latent state (chains and draws flattened).
        path: output file.
        mean: optional ``(T,)`` curve to draw as the posterior mean (e.g. smoothed means averaged
            over parameter draws); default: the mean of ``latent_draws``.
        prob: mass of the central band (default 0.9: the 5%-95% quantiles).
        ylabel, xlabel, title, label, obs_label: axis labels, title, and the names of the latent
            state and of the observations in the legend.

    Examples:
        >>> import os, tempfile
        >>> draws = np.cumsum(np.random.default_rng(0).normal(size=(200, 30)), axis=1)   # (S, T)
        >>> path = plot_smoothing_band(np.arange(30), draws[0] + 0.5, draws,
        ...                            os.path.join(tempfile.mkdtemp(), "band.png"), prob=0.8)
        >>> os.path.basename(path), os.path.getsize(path) > 0
        ('band.png', True)
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not 0.0 < prob < 1.0:
        raise ValueError(f"prob must lie in (0, 1), got {prob}")
    time, obs, draws = np.asarray(time), np.asarray(obs, float), np.asarray(latent_draws, float)
    if draws.ndim != 2 or draws.shape[1] != time.shape[0]:
        raise ValueError(f"latent_draws must have shape (S, {time.shape[0]}), got {draws.shape}")
    lo, hi = np.quantile(draws, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
    centre = draws.mean(0) if mean is None else np.asarray(mean)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.fill_between(time, lo, hi, color="C0", alpha=0.25, lw=0, label=f"{round(100 * prob)}% posterior band")
    ax.plot(time, obs, "o-", color="0.3", ms=2.5, lw=0.7, label=obs_label)
    ax.plot(time, centre, color="C0", lw=2.0, label=f"posterior mean of {label}")
    ax.set_ylabel(ylabel)
    if xlabel:
        ax.set_xlabel(xlabel)
    ax.set_xlim(time[0], time[-1])
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False, fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
