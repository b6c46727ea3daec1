r"""Drawing a tree (phylogram) with a value at every node, e.g. posterior node means."""

from __future__ import annotations

import numpy as np

from .topology import Tree

__all__ = ["tree_layout", "plot_tree"]


def tree_layout(tree: Tree, lengths=None) -> tuple[np.ndarray, np.ndarray]:
    r"""Coordinates of a phylogram: ``x`` = distance from the root, ``y`` = leaf rank (leaves 0, 1, ... in
    preorder), an internal node at the mean height of its children.

    Examples:
        >>> from markovppl.graph import from_newick
        >>> x, y = tree_layout(from_newick("((A:1,B:2):1,C:1);"))
        >>> x.tolist(), y.tolist()
        ([0.0, 1.0, 2.0, 3.0, 1.0], [1.25, 0.5, 0.0, 1.0, 2.0])
    """
    ell = np.nan_to_num(tree.lengths if lengths is None else np.concatenate([[0.0], np.asarray(lengths, float)]), nan=1.0)
    n = tree.num_nodes
    x = np.zeros(n)
    for v in range(1, n):
        x[v] = x[tree.parent[v]] + ell[v]
    y = np.zeros(n)
    y[tree.leaves] = np.arange(len(tree.leaves))
    total = np.zeros(n)
    for v in range(n - 1, 0, -1):  # children before parents (reverse preorder)
        if tree.num_children[v]:
            y[v] = total[v] / tree.num_children[v]
        total[tree.parent[v]] += y[v]
    y[0] = total[0] / max(tree.num_children[0], 1)
    return x, y


def plot_tree(tree: Tree, values, path: str, *, title: str = "", label: str = "value", observed=None,
              lengths=None, cmap: str = "viridis", leaf_labels: bool | None = None) -> str:
    r"""Save a phylogram whose nodes are coloured by ``values`` ``(num_nodes,)`` (preorder); observed
    nodes (indices) are drawn as squares. Returns ``path``.

    Examples:
        >>> import os, tempfile, numpy as np
        >>> from markovppl.graph import from_newick
        >>> t = from_newick("((A:1,B:2):1,C:1);")
        >>> out = plot_tree(t, np.arange(5.0), os.path.join(tempfile.mkdtemp(), "t.png"))
        >>> os.path.getsize(out) > 1000
        True
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = np.asarray(values, float)
    x, y = tree_layout(tree, lengths)
    n_leaves = len(tree.leaves)
    fig, ax = plt.subplots(figsize=(8, max(3.0, min(12.0, 0.22 * n_leaves + 1.5))))
    for v in range(1, tree.num_nodes):
        p = tree.parent[v]
        ax.plot([x[p], x[p]], [y[p], y[v]], color="0.6", lw=0.8, zorder=1)
        ax.plot([x[p], x[v]], [y[v], y[v]], color="0.6", lw=0.8, zorder=1)
    obs = np.zeros(tree.num_nodes, bool)
    if observed is not None:
        obs[np.asarray(observed, int)] = True
    vmin, vmax = np.nanmin(values), np.nanmax(values)
    sc = ax.scatter(x[~obs], y[~obs], c=values[~obs], cmap=cmap, vmin=vmin, vmax=vmax, s=36, zorder=3,
                    edgecolors="k", linewidths=0.4, label="latent (posterior)")
    if obs.any():
        ax.scatter(x[obs], y[obs], c=values[obs], cmap=cmap, vmin=vmin, vmax=vmax, s=36, marker="s", zorder=3,
                   edgecolors="k", linewidths=0.4, label="observed")
        ax.legend(loc="upper left", fontsize=8, frameon=False)
    if leaf_labels or (leaf_labels is None and n_leaves <= 40):
        for v in tree.leaves:
            ax.text(x[v] + 0.01 * max(x.max(), 1e-12), y[v], f" {tree.names[v]}", va="center", fontsize=7)
    fig.colorbar(sc, ax=ax, label=label, shrink=0.8)
    ax.set_xlabel("distance from the root")
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
