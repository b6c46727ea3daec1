"""Small real time series shipped with markovppl for examples and tests.

The data files live in ``markovppl/datasets/data/`` as plain two-column CSV
files and are read through :mod:`importlib.resources`, so the loaders work
from a source checkout, an editable install and an installed wheel alike.
Provenance (source, licence, citation) is recorded in each loader's
docstring and in the fields of the returned :class:`TimeSeriesData`.
"""

from __future__ import annotations

import io
from importlib import resources
from typing import NamedTuple

import numpy as np

__all__ = ["TimeSeriesData", "load_earthquakes", "load_nile"]


class TimeSeriesData(NamedTuple):
    """A univariate, regularly spaced (annual) time series with provenance.

    Attributes:
        time: Years of the observations, ``int64``, shape ``(T,)``.
        values: Observed values, shape ``(T,)``.
        name: Short name of the data set.
        units: Units of ``values``.
        source: Where the numbers were taken from.
        license: Licence / copyright status of the numbers.
        citation: Reference to cite when using the data.
    """

    time: np.ndarray
    values: np.ndarray
    name: str
    units: str
    source: str
    license: str
    citation: str


def _read_csv(filename: str, value_dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """Read a ``year,<value>`` CSV file from the package data directory."""
    text = resources.files(__name__).joinpath("data", filename).read_text(encoding="utf-8")
    table = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    time = table[:, 0].astype(np.int64)
    values = table[:, 1].astype(value_dtype)
    return time, values


def load_earthquakes() -> TimeSeriesData:
    """Annual counts of major earthquakes (magnitude 7 or greater), 1900-2006.

    107 yearly counts (total 2072), the standard example of a Poisson hidden
    Markov model in Zucchini, MacDonald & Langrock (2016). Published
    maximum-likelihood fits with a stationary initial distribution:
    negative log-likelihood 391.9189 (1 state), 342.3183 (2 states) and
    329.4603 (3 states).

    Source:
        Zucchini, MacDonald & Langrock (2016), as distributed in the
        ``dynamax`` package (``dynamax/hidden_markov_model/demos/
        poisson_hmm_earthquakes.py``, ``EARTHQUAKES``; dynamax 1.0.3).

    License:
        Factual counts; redistributed here from dynamax, which is released
        under the MIT licence.

    Citation:
        Zucchini, W., MacDonald, I. L. and Langrock, R. (2016). *Hidden Markov
        Models for Time Series: An Introduction Using R*, 2nd ed. Chapman &
        Hall/CRC.

    Returns:
        TimeSeriesData: ``time`` holds the years 1900-2006 (``int64``) and
        ``values`` the counts (``int64``).

    Example:
        >>> data = load_earthquakes()
        >>> data.values.shape
        (107,)
        >>> int(data.values.sum()), int(data.time[0]), int(data.time[-1])
        (2072, 1900, 2006)
    """
    time, values = _read_csv("earthquakes.csv", np.int64)
    return TimeSeriesData(
        time=time,
        values=values,
        name="earthquakes",
        units="earthquakes of magnitude >= 7 per year",
        source=(
            "Zucchini, MacDonald & Langrock (2016); numbers as shipped in dynamax 1.0.3 "
            "(dynamax/hidden_markov_model/demos/poisson_hmm_earthquakes.py, EARTHQUAKES)"
        ),
        license="factual data; redistributed from dynamax (MIT licence)",
        citation=(
            "Zucchini, W., MacDonald, I. L. and Langrock, R. (2016). Hidden Markov Models "
            "for Time Series: An Introduction Using R, 2nd ed. Chapman & Hall/CRC."
        ),
    )


def load_nile() -> TimeSeriesData:
    """Annual flow volume of the river Nile at Aswan, 1871-1970.

    100 yearly measurements in units of 10^8 m^3, with an apparent
    change point near 1898. The classic example of the local level model
    in Durbin & Koopman (2012), whose maximum-likelihood estimates are
    sigma^2_epsilon = 15099 and sigma^2_eta = 1469.1.

    Source:
        Cobb (1978); numbers as distributed in the ``statsmodels`` package
        (``statsmodels/datasets/nile/nile.csv``).

    License:
        Public domain (as stated by statsmodels, which is itself released
        under the BSD 3-clause licence).

    Citation:
        Cobb, G. W. (1978). The problem of the Nile: conditional solution to
        a changepoint problem. *Biometrika* 65(2), 243-251.
        Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State
        Space Methods*, 2nd ed. Oxford University Press.

    Returns:
        TimeSeriesData: ``time`` holds the years 1871-1970 (``int64``) and
        ``values`` the flows (``float64``).

    Example:
        >>> data = load_nile()
        >>> data.values.shape
        (100,)
        >>> float(data.values[0]), int(data.time[0]), int(data.time[-1])
        (1120.0, 1871, 1970)
    """
    time, values = _read_csv("nile.csv", np.float64)
    return TimeSeriesData(
        time=time,
        values=values,
        name="nile",
        units="10^8 m^3 per year",
        source="Cobb (1978); numbers as shipped in statsmodels (statsmodels/datasets/nile/nile.csv)",
        license="public domain (per statsmodels, BSD-3-Clause)",
        citation=(
            "Cobb, G. W. (1978). The problem of the Nile: conditional solution to a "
            "changepoint problem. Biometrika 65(2), 243-251. Durbin, J. and Koopman, S. J. "
            "(2012). Time Series Analysis by State Space Methods, 2nd ed. Oxford University Press."
        ),
    )
