r"""Diagnostics: ArviZ conversion (both ArviZ generations) and plots."""

from ._arviz_compat import (
    ARVIZ_GENERATION,
    LooResult,
    add_group,
    divergences,
    from_dict,
    from_netcdf,
    get_group,
    group_names,
    loo,
    plot_trace,
    summary,
    to_netcdf,
)
from .inference_data import to_inference_data

__all__ = [
    "ARVIZ_GENERATION", "LooResult", "add_group", "divergences", "from_dict", "from_netcdf", "get_group", "group_names", "loo",
    "plot_trace", "summary", "to_inference_data", "to_netcdf",
]
