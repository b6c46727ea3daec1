"""Bridge between ArviZ generations (0.x ``InferenceData`` and 1.x ``xarray.DataTree``).

This is the only module in markovppl that knows which ArviZ generation is installed.
The generation is detected once, at import time, from the ArviZ version number:

* ``ARVIZ_GENERATION == 0``: arviz 0.x (``arviz.InferenceData``; Python 3.11 installs).
* ``ARVIZ_GENERATION == 1``: arviz 1.x (arviz-base / arviz-stats / arviz-plots on
  ``xarray.DataTree``).

Every function accepts and returns the native object of the installed generation, so
callers never need to branch on the version themselves.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import xarray as xr

with warnings.catch_warnings():
    # arviz 0.23 announces the 1.x refactor with a FutureWarning on import.
    warnings.filterwarnings(
        "ignore", message=r"\s*ArviZ is undergoing a major refactor", category=FutureWarning
    )
    import arviz as az

__all__ = [
    "ARVIZ_GENERATION",
    "LooResult",
    "add_group",
    "divergences",
    "from_dict",
    "from_netcdf",
    "from_numpyro",
    "get_group",
    "group_names",
    "loo",
    "plot_trace",
    "summary",
    "to_netcdf",
]

# Note: ``hasattr(az, "InferenceData")`` is True on 1.x too (a module ``__getattr__``
# returns ``DataTree`` with a MigrationWarning), so detect by the version number.
ARVIZ_GENERATION: int = 0 if az.__version__.split(".")[0] == "0" else 1

_NETCDF_ENGINE = "h5netcdf"
_SUMMARY_COLUMNS = ("mean", "sd", "ess_bulk", "ess_tail", "r_hat")
_SUMMARY_RENAME = {"ess_mean": "ess_bulk", "rhat": "r_hat", "std": "sd"}


class LooResult(NamedTuple):
    """PSIS-LOO estimate, uniform across ArviZ generations.

    Attributes:
        elpd: Expected log pointwise predictive density (log scale, higher is better).
        se: Standard error of ``elpd``.
        p_loo: Effective number of parameters.
        pareto_k: Pareto shape diagnostic per observation, as a NumPy array.

    Examples:
        Returned by [`loo`][markovppl.diagnostics._arviz_compat.loo] (see there for a fit):

        >>> res = LooResult(elpd=-3.0, se=0.1, p_loo=0.4, pareto_k=np.zeros(3))
        >>> res.elpd, res.pareto_k.shape
        (-3.0, (3,))
    """

    elpd: float
    se: float
    p_loo: float
    pareto_k: np.ndarray


def from_numpyro(
    mcmc: Any,
    *,
    log_likelihood: bool = False,
    coords: dict[str, Any] | None = None,
    dims: dict[str, list[str]] | None = None,
) -> Any:
    """Convert a fitted ``numpyro.infer.MCMC`` object to ArviZ's native container.

    Args:
        mcmc: A NumPyro ``MCMC`` object after ``run``.
        log_likelihood: Whether ArviZ should compute the ``log_likelihood`` group from
            the observed sites. When False, no log-likelihood is computed at all.
        coords: Coordinate values keyed by dimension name.
        dims: Dimension names (excluding ``chain``/``draw``) keyed by variable name,
            e.g. ``{"z": ["time"]}``. Pass these explicitly; plate-based inference of
            dim names differs between generations.

    Returns:
        ``arviz.InferenceData`` (0.x) or ``xarray.DataTree`` (1.x).

    Examples:
        >>> import jax, jax.numpy as jnp, numpyro, numpyro.distributions as dist
        >>> from numpyro.infer import MCMC, NUTS
        >>> def model(y):
        ...     mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
        ...     numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)
        >>> mcmc = MCMC(NUTS(model), num_warmup=20, num_samples=10, progress_bar=False)
        >>> mcmc.run(jax.random.PRNGKey(0), y=jnp.array([0.1, -0.3, 0.4]))
        >>> idata = from_numpyro(mcmc)
        >>> get_group(idata, "posterior")["mu"].shape                    # (chain, draw)
        (1, 10)
    """
    return az.from_numpyro(mcmc, log_likelihood=bool(log_likelihood), coords=coords, dims=dims)


def from_dict(groups: dict[str, dict[str, Any]], *, coords: dict | None = None,
              dims: dict[str, list[str]] | None = None) -> Any:
    """Build ArviZ's native container from arrays: ``{group: {variable: array}}``.

    Arrays have leading ``(chain, draw)`` axes (``observed_data`` excepted). The standard groups
    (``posterior``, ``sample_stats``, ``log_likelihood``, ``posterior_predictive``, ``observed_data``,
    ...) are accepted by both ArviZ generations; add others with
    [`add_group`][markovppl.diagnostics._arviz_compat.add_group].

    Examples:
        >>> idata = from_dict({"posterior": {"mu": np.zeros((2, 50))}})
        >>> get_group(idata, "posterior")["mu"].shape
        (2, 50)
    """
    if ARVIZ_GENERATION == 0:
        return az.from_dict(**groups, coords=coords, dims=dims)
    return az.from_dict(groups, coords=coords, dims=dims)


def group_names(idata: Any) -> list[str]:
    """Return the names of the top-level groups (``posterior``, ``sample_stats``, ...).

    Examples:
        >>> idata = from_dict({"posterior": {"mu": np.random.default_rng(0).normal(size=(2, 50))}})
        >>> names = group_names(idata)
        >>> "posterior" in names, "log_likelihood" in names
        (True, False)
    """
    if ARVIZ_GENERATION == 0:
        return list(idata.groups())
    return list(idata.children)


def get_group(idata: Any, name: str) -> xr.Dataset:
    """Return one group as an ``xarray.Dataset``.

    Raises:
        KeyError: If the group does not exist.

    Examples:
        >>> idata = from_dict({"posterior": {"mu": np.random.default_rng(0).normal(size=(2, 50))}})
        >>> post = get_group(idata, "posterior")                          # an xarray.Dataset
        >>> post["mu"].dims, post["mu"].shape
        (('chain', 'draw'), (2, 50))
    """
    if name not in group_names(idata):
        raise KeyError(f"group {name!r} not found; available: {group_names(idata)}")
    if ARVIZ_GENERATION == 0:
        return idata[name]
    return idata[name].to_dataset()


def add_group(
    idata: Any,
    name: str,
    data_vars: dict[str, tuple[tuple[str, ...], np.ndarray]],
    coords: dict[str, Any] | None = None,
) -> Any:
    """Add a group (or replace an existing one) such as ``latent_posterior``.

    ``chain``/``draw`` coordinates are copied from the ``posterior`` group when the
    new variables use those dims and ``coords`` does not provide them.

    Args:
        idata: ``InferenceData`` or ``DataTree``; modified in place.
        name: Group name.
        data_vars: Mapping ``var_name -> (dims, values)``; values must have one axis
            per dim, e.g. ``(("chain", "draw", "time"), array)``.
        coords: Optional coordinate values keyed by dim; coords for dims not used by
            any variable are ignored.

    Returns:
        The updated object (the same one that was passed in).

    Examples:
        >>> idata = from_dict({"posterior": {"mu": np.random.default_rng(0).normal(size=(2, 50))}})
        >>> idata = add_group(idata, "extra", {"z": (("chain", "draw", "time"), np.zeros((2, 50, 3)))},
        ...                   coords={"time": [2000, 2001, 2002]})
        >>> get_group(idata, "extra")["z"].shape, get_group(idata, "extra")["time"].values.tolist()
        ((2, 50, 3), [2000, 2001, 2002])
    """
    variables = {k: (tuple(d), np.asarray(v)) for k, (d, v) in data_vars.items()}
    used = {dim for d, _ in variables.values() for dim in d}
    all_coords = dict(coords or {})
    if "posterior" in group_names(idata):
        post = get_group(idata, "posterior")
        for dim in ("chain", "draw"):
            if dim in used and dim not in all_coords and dim in post.coords:
                all_coords[dim] = post.coords[dim].values
    ds = xr.Dataset(variables, coords={k: v for k, v in all_coords.items() if k in used})
    if ARVIZ_GENERATION == 0:
        if name in idata.groups():
            delattr(idata, name)
        with warnings.catch_warnings():
            # 0.x warns that non-standard group names are outside its schema.
            warnings.filterwarnings("ignore", message=r".*not defined in the InferenceData scheme")
            idata.add_groups({name: ds})
    else:
        idata[name] = xr.DataTree(ds)
    return idata


def summary(idata: Any, var_names: list[str] | None = None) -> pd.DataFrame:
    """Posterior summary with unrounded numbers.

    Returns:
        DataFrame indexed by variable (and element) with at least the columns
        ``mean``, ``sd``, ``ess_bulk``, ``ess_tail``, ``r_hat`` (listed first); the
        interval columns keep each generation's own names (0.x HDI 94%, 1.x ETI 89%).

    Examples:
        >>> idata = from_dict({"posterior": {"mu": np.random.default_rng(0).normal(size=(2, 50))}})
        >>> table = summary(idata)
        >>> table.index.tolist(), table.columns[:5].tolist()
        (['mu'], ['mean', 'sd', 'ess_bulk', 'ess_tail', 'r_hat'])
    """
    df = pd.DataFrame(az.summary(idata, var_names=var_names, round_to="none"))
    df = df.rename(columns=_SUMMARY_RENAME)
    rest = [c for c in df.columns if c not in _SUMMARY_COLUMNS]
    return df[[*_SUMMARY_COLUMNS, *rest]]


def plot_trace(idata: Any, var_names: list[str] | None, path: str | os.PathLike) -> None:
    """Write a matplotlib trace plot (density + trace per variable) to ``path`` (PNG).

    Examples:
        >>> import os, tempfile
        >>> idata = from_dict({"posterior": {"mu": np.random.default_rng(0).normal(size=(2, 50))}})
        >>> path = os.path.join(tempfile.mkdtemp(), "trace.png")
        >>> plot_trace(idata, ["mu"], path)
        >>> os.path.getsize(path) > 0
        True
    """
    import matplotlib.pyplot as plt

    if ARVIZ_GENERATION == 0:
        with warnings.catch_warnings():
            # arviz 0.23 uses an API deprecated in matplotlib 3.11.
            warnings.filterwarnings("ignore", message=r".*alias_mapping to normalize_kwargs")
            axes = az.plot_trace(idata, var_names=var_names)
        fig = np.asarray(axes).ravel()[0].figure
    else:
        pc = az.plot_trace_dist(idata, var_names=var_names, backend="matplotlib")
        fig = pc.get_viz("figure")
        fig = getattr(fig, "item", lambda: fig)()
    try:
        fig.savefig(os.fspath(path), format="png")
    finally:
        plt.close(fig)


def to_netcdf(idata: Any, path: str | os.PathLike) -> str:
    """Save every group, custom ones included, to a NetCDF4 file (h5netcdf engine).

    Returns:
        The path written, as a string.

    Examples:
        >>> import os, tempfile
        >>> idata = from_dict({"posterior": {"mu": np.random.default_rng(0).normal(size=(2, 50))}})
        >>> path = to_netcdf(idata, os.path.join(tempfile.mkdtemp(), "fit.nc"))
        >>> os.path.basename(path), os.path.getsize(path) > 0
        ('fit.nc', True)
    """
    path = os.fspath(path)
    idata.to_netcdf(path, engine=_NETCDF_ENGINE)
    return path


def from_netcdf(path: str | os.PathLike) -> Any:
    """Load a file written by [`to_netcdf`][markovppl.diagnostics._arviz_compat.to_netcdf] fully into memory (file closed on return).

    Examples:
        >>> import os, tempfile
        >>> idata = from_dict({"posterior": {"mu": np.random.default_rng(0).normal(size=(2, 50))}})
        >>> back = from_netcdf(to_netcdf(idata, os.path.join(tempfile.mkdtemp(), "fit.nc")))
        >>> bool((get_group(back, "posterior")["mu"] == get_group(idata, "posterior")["mu"]).all())
        True
    """
    path = os.fspath(path)
    if ARVIZ_GENERATION == 0:
        with az.rc_context({"data.load": "eager"}):
            return az.from_netcdf(path, engine=_NETCDF_ENGINE)
    with xr.open_datatree(path, engine=_NETCDF_ENGINE) as tree:
        return tree.load()


def loo(idata: Any, var_name: str | None = None) -> LooResult:
    """PSIS leave-one-out cross-validation from the ``log_likelihood`` group.

    All non-``chain``/``draw`` dims of the chosen variable (e.g. ``time``) are treated
    as observations. ``var_name`` is required when the group holds several variables.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> mu = rng.normal(size=(2, 200)) * 0.3                    # draws of a mean, 3 observations y
        >>> y = np.array([0.1, -0.3, 0.4])
        >>> pointwise = -0.5 * (y - mu[..., None]) ** 2 - 0.5 * np.log(2 * np.pi)
        >>> res = loo(from_dict({"posterior": {"mu": mu}, "log_likelihood": {"y": pointwise}}))
        >>> type(res).__name__, res.pareto_k.shape                  # one k per observation
        ('LooResult', (3,))
    """
    res = az.loo(idata, var_name=var_name)
    if ARVIZ_GENERATION == 0:
        elpd, se, p_loo = res["elpd_loo"], res["se"], res["p_loo"]
    else:
        elpd, se, p_loo = res.elpd, res.se, res.p
    return LooResult(
        elpd=float(elpd), se=float(se), p_loo=float(p_loo), pareto_k=np.asarray(res.pareto_k)
    )


def divergences(idata: Any) -> int:
    """Total number of divergent transitions in ``sample_stats.diverging`` (0 if absent).

    Examples:
        >>> diverging = np.zeros((2, 50), bool)
        >>> diverging[1, [3, 17]] = True
        >>> idata = from_dict({"posterior": {"mu": np.zeros((2, 50))}, "sample_stats": {"diverging": diverging}})
        >>> divergences(idata)
        2
    """
    if "sample_stats" not in group_names(idata):
        return 0
    stats = get_group(idata, "sample_stats")
    if "diverging" not in stats:
        return 0
    return int(np.asarray(stats["diverging"]).sum())
