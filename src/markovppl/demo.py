r"""The main job: a 3-state Poisson HMM fitted to the annual counts of major earthquakes.

$$x_0 \sim \pi_0,\quad x_{t+1} \mid x_t \sim P[x_t, \cdot],\quad y_t \mid x_t \sim \mathrm{Poisson}(\lambda_{x_t}),$$

with ordered rates $\lambda_k = 20 e^{z_k}$, $z_0 < z_1 < z_2$ an ordered standard-normal vector (so chains
cannot swap labels), sticky Dirichlet rows for $P$ and a uniform $\pi_0$. NUTS samples the parameters; the hidden path is marginalised
exactly by the backward filter and recovered afterwards by forward guiding.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from . import diagnostics
from .datasets import load_earthquakes
from .diagnostics.plots import plot_state_probabilities
from .families import HMM
from .fit import FitResult, fit_model

__all__ = ["earthquake_model", "load_data", "plots", "run_demo"]


def earthquake_model(y=None, num_states: int = 3, num_steps: int | None = None):
    r"""NumPyro model: Poisson HMM with ordered rates $\lambda_k = 20 e^{z_k}$ (see module docstring).

    Examples:
        >>> from numpyro import handlers
        >>> trace = handlers.trace(handlers.seed(earthquake_model, 0)).get_trace(y=jnp.array([13, 14, 8, 10]))
        >>> trace["y"]["fn"].num_states, trace["P"]["value"].shape
        (3, (3, 3))
        >>> bool((jnp.diff(trace["rates"]["value"]) > 0).all())      # ordered rates: no label switching
        True
    """
    # ordered standard-normal vector z (z_0 < z_1 < ...); rates = 20 exp(z). The sample site lives in the
    # ordered space, so NUTS's unconstraining bijection matches the support and labels cannot switch.
    z = numpyro.sample(
        "log_rates_std",
        dist.TransformedDistribution(dist.Normal(0.0, 1.0).expand([num_states]).to_event(1), dist.transforms.OrderedTransform()),
    )
    rates = numpyro.deterministic("rates", 20.0 * jnp.exp(z))
    P = numpyro.sample("P", dist.Dirichlet(jnp.ones((num_states, num_states)) + 5 * jnp.eye(num_states)).to_event(1))
    steps = num_steps if y is None else None
    hmm = HMM(jnp.ones(num_states) / num_states, P, dist.Poisson(rates), num_steps=steps)
    numpyro.sample("y", hmm, obs=y)


def load_data() -> dict:
    """The bundled earthquake counts as ``{"y", "time", "columns"}``.

    Examples:
        >>> data = load_data()
        >>> data["y"].shape, int(data["time"][0]), data["columns"]
        ((107,), 1900, ['count'])
    """
    data = load_earthquakes()
    return {"y": data.values, "time": data.time, "columns": ["count"]}


def plots(idata, data, out_dir) -> list:
    r"""Counts with the posterior mean state level and the posterior hidden-state probabilities.

    For every posterior draw the smoothed probabilities $p(x_t = k \mid y, \theta)$ are computed exactly;
    the plot shows their average and the mean level $\sum_k p(x_t = k \mid y, \theta)\, \lambda_k$.

    Examples:
        Any ArviZ object whose ``posterior`` holds ``rates`` and ``P`` will do, e.g. the one
        [`run_demo`][markovppl.demo.run_demo] fits; here two hand-written draws in one chain:

        >>> import os, tempfile, xarray as xr
        >>> rates = np.array([[[15.0, 19.0, 31.0], [14.0, 20.0, 29.0]]])                       # (chain, draw, K)
        >>> P = np.broadcast_to(0.1 * np.ones((3, 3)) + 0.7 * np.eye(3), (1, 2, 3, 3))
        >>> out_dir = tempfile.mkdtemp()
        >>> xr.Dataset({"rates": (("chain", "draw", "k"), rates), "P": (("chain", "draw", "i", "j"), P)}).to_netcdf(
        ...     os.path.join(out_dir, "post.nc"), group="posterior", engine="h5netcdf")
        >>> idata = diagnostics.from_netcdf(os.path.join(out_dir, "post.nc"))
        >>> files = plots(idata, load_data(), out_dir)
        >>> [os.path.basename(f) for f in files]
        ['hidden_states.png']
    """
    post = diagnostics.get_group(idata, "posterior")
    rates = np.asarray(post["rates"]).reshape(-1, post["rates"].shape[-1])
    P = np.asarray(post["P"]).reshape((-1,) + post["P"].shape[-2:])
    y = jnp.asarray(data["y"])
    k = rates.shape[-1]
    smooth = jax.jit(jax.vmap(lambda r, P: HMM(jnp.ones(k) / k, P, dist.Poisson(r)).smooth(y).smoothed_probs))
    probs = np.asarray(smooth(rates, P))
    level = np.mean(np.einsum("dtk,dk->dt", probs, rates), 0)
    path = os.path.join(out_dir, "hidden_states.png")
    labels = ["low", "medium", "high"] if k == 3 else None
    plot_state_probabilities(data["time"], data["y"], probs.mean(0), path, state_means=level,
                             ylabel="major earthquakes per year", state_labels=labels,
                             title=f"Earthquake counts and posterior hidden-state probabilities ({k}-state Poisson HMM)")
    return [path]


def run_demo(out_dir: str = "results", *, num_warmup: int = 1000, num_samples: int = 1000, num_chains: int = 2,
             seed: int = 0, progress_bar: bool = True) -> FitResult:
    """Fit the earthquake model, write InferenceData, summary and plots to ``out_dir``.

    Examples:
        >>> import os, tempfile
        >>> res = run_demo(tempfile.mkdtemp(), num_warmup=20, num_samples=10, num_chains=1, progress_bar=False)
        >>> [os.path.basename(f) for f in res.files]
        ['earthquakes_idata.nc', 'summary.csv', 'trace.png', 'hidden_states.png']
        >>> res.summary.index.tolist()[:3]
        ['rates[0]', 'rates[1]', 'rates[2]']
    """
    return fit_model(earthquake_model, load_data(), out_dir, name="earthquakes", var_names=["rates", "P"],
                     plots=plots, num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains,
                     seed=seed, progress_bar=progress_bar)
