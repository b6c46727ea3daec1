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

__all__ = ["TimeSeriesData", "load_earthquakes", "load_gbp_usd", "load_gnp_growth", "load_nile", "load_us_inflation",
           "load_us_recessions"]


class TimeSeriesData(NamedTuple):
    """A univariate, regularly spaced time series with provenance.

    Attributes:
        time: Time of each observation in calendar years, shape ``(T,)``: ``int64`` years for
            annual series, ``float64`` fractional years for sub-annual ones (quarter ``q`` of year
            ``Y`` is ``Y + (q - 1) / 4``, so 1951Q2 is ``1951.25``).
        values: Observed values, shape ``(T,)``.
        name: Short name of the data set.
        units: Units of ``values``.
        source: Where the numbers were taken from.
        license: Licence / copyright status of the numbers.
        citation: Reference to cite when using the data.

    Examples:
        >>> data = load_earthquakes()
        >>> data.name, data.time.shape, int(data.time[0]), int(data.values.sum())
        ('earthquakes', (107,), 1900, 2072)
    """

    time: np.ndarray
    values: np.ndarray
    name: str
    units: str
    source: str
    license: str
    citation: str


def _read_csv(filename: str, value_dtype: type, time_dtype: type = np.int64) -> tuple[np.ndarray, np.ndarray]:
    """Read a ``year,<value>`` CSV file from the package data directory."""
    text = resources.files(__name__).joinpath("data", filename).read_text(encoding="utf-8")
    table = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    time = table[:, 0].astype(time_dtype)
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

    Examples:
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

    Examples:
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


def load_gnp_growth() -> TimeSeriesData:
    """Quarterly growth of US real GNP, 1951Q2-1984Q4 (Hamilton, 1989).

    135 quarterly values of 100 times the first difference of log real GNP
    (percent per quarter), the data of Hamilton's (1989) regime-switching
    model of the business cycle. Published maximum-likelihood fit of the
    two-regime Markov-switching AR(4) (statsmodels test oracle, from
    E-views): log-likelihood -181.26339, regime means -0.3588 (recession)
    and 1.1635 (expansion), p_00 = 0.7547, p_10 = 0.0959, sigma^2 = 0.5914.

    Source:
        Hamilton (1989); numbers as shipped in the ``statsmodels`` package
        (``statsmodels/tsa/regime_switching/tests/test_markov_autoregression.py``,
        ``rgnp``; statsmodels 0.15.0).

    License:
        Factual data (U.S. national accounts, a U.S. government work);
        redistributed here from statsmodels, which is released under the BSD
        3-clause licence.

    Citation:
        Hamilton, J. D. (1989). A new approach to the economic analysis of
        nonstationary time series and the business cycle. *Econometrica*
        57(2), 357-384.

    Returns:
        TimeSeriesData: ``time`` holds fractional years (``float64``; quarter
        ``q`` of year ``Y`` is ``Y + (q - 1) / 4``, so 1951.25 to 1984.75) and
        ``values`` the growth rates (``float64``).

    Examples:
        >>> data = load_gnp_growth()
        >>> data.values.shape
        (135,)
        >>> float(data.time[0]), float(data.time[-1]), round(float(data.values[0]), 4)
        (1951.25, 1984.75, 2.5932)
    """
    time, values = _read_csv("gnp_growth.csv", np.float64, np.float64)
    return TimeSeriesData(
        time=time,
        values=values,
        name="gnp_growth",
        units="percent per quarter (100 x change in log real GNP)",
        source=(
            "Hamilton (1989); numbers as shipped in statsmodels 0.15.0 "
            "(statsmodels/tsa/regime_switching/tests/test_markov_autoregression.py, rgnp)"
        ),
        license="factual data (U.S. government national accounts); redistributed from statsmodels (BSD-3-Clause)",
        citation=(
            "Hamilton, J. D. (1989). A new approach to the economic analysis of nonstationary "
            "time series and the business cycle. Econometrica 57(2), 357-384."
        ),
    )


def load_us_recessions() -> TimeSeriesData:
    """NBER recession indicator for the quarters of ``load_gnp_growth``, 1951Q2-1984Q4.

    135 quarterly 0/1 values: 1 if the quarter lies in a recession of the NBER
    business-cycle chronology, 0 in an expansion. Recession quarters run from
    the quarter after a peak through the quarter of the trough (the
    convention of FRED's ``USRECQ``). Peaks / troughs (quarterly): 1953Q2 /
    1954Q2, 1957Q3 / 1958Q2, 1960Q2 / 1961Q1, 1969Q4 / 1970Q4, 1973Q4 /
    1975Q1, 1980Q1 / 1980Q3, 1981Q3 / 1982Q4 (26 recession quarters). Paired
    with ``load_gnp_growth`` (same ``time`` axis) it gives a series whose
    hidden regime X (recession) and observation Y (GNP growth) are both
    recorded, e.g. for conformal prediction of the regime
    (``markovppl.conformal``).

    Source:
        National Bureau of Economic Research, "US Business Cycle Expansions
        and Contractions" (https://www.nber.org/research/business-cycle-dating),
        quarterly peak and trough dates; the 0/1 indicator was derived from
        those dates for this package.

    License:
        Factual dates (not subject to copyright); the derived indicator is
        distributed with markovppl under its MIT licence.

    Citation:
        National Bureau of Economic Research (2023). US Business Cycle
        Expansions and Contractions. Cambridge, MA: NBER.

    Returns:
        TimeSeriesData: ``time`` holds fractional years (``float64``, as in
        ``load_gnp_growth``) and ``values`` the indicator (``int64``).

    Examples:
        >>> data = load_us_recessions()
        >>> data.values.shape, int(data.values.sum())
        ((135,), 26)
        >>> data.time[data.values == 1][:4].tolist()    # 1953Q3 .. 1954Q2
        [1953.5, 1953.75, 1954.0, 1954.25]
    """
    time, values = _read_csv("us_recessions.csv", np.int64, np.float64)
    return TimeSeriesData(
        time=time,
        values=values,
        name="us_recessions",
        units="1 = recession quarter, 0 = expansion (NBER chronology)",
        source=(
            "NBER business-cycle reference dates (US Business Cycle Expansions and Contractions, "
            "quarterly peaks and troughs); indicator derived for markovppl"
        ),
        license="factual dates (not copyrightable); derived indicator under the markovppl MIT licence",
        citation=(
            "National Bureau of Economic Research (2023). US Business Cycle Expansions and Contractions. "
            "Cambridge, MA: NBER. https://www.nber.org/research/business-cycle-dating"
        ),
    )


def load_us_inflation() -> TimeSeriesData:
    """Quarterly US CPI inflation, 1959Q2-2009Q3.

    202 quarterly values of ``400 * ln(cpi_t / cpi_{t-1})`` (annualised
    percent; CPI for all urban consumers, end of quarter, seasonally
    adjusted), rounded to two decimals. Persistent with visible
    quarter-to-quarter noise (lag-1 and lag-2 autocorrelations 0.64 and
    0.60), the textbook case for a latent AR(1) plus measurement noise.
    1959Q1 is left out: the source has no previous quarter for it.

    Source:
        FRED, Federal Reserve Bank of St. Louis (accessed December 2009);
        numbers as shipped in the ``statsmodels`` package
        (``statsmodels/datasets/macrodata/macrodata.csv``, column ``infl``;
        statsmodels 0.15.0).

    License:
        Public domain (as stated by statsmodels, which is itself released
        under the BSD 3-clause licence).

    Citation:
        U.S. Bureau of Labor Statistics, Consumer Price Index for All Urban
        Consumers: All Items (CPIAUCSL), retrieved from FRED, Federal Reserve
        Bank of St. Louis; compiled by S. Seabold for statsmodels
        (``statsmodels.datasets.macrodata``).

    Returns:
        TimeSeriesData: ``time`` holds fractional years (``float64``; quarter
        ``q`` of year ``Y`` is ``Y + (q - 1) / 4``, so 1959.25 to 2009.5) and
        ``values`` the inflation rates (``float64``).

    Examples:
        >>> data = load_us_inflation()
        >>> data.values.shape
        (202,)
        >>> float(data.time[0]), float(data.time[-1]), float(data.values[0])
        (1959.25, 2009.5, 2.34)
    """
    time, values = _read_csv("us_inflation.csv", np.float64, np.float64)
    return TimeSeriesData(
        time=time,
        values=values,
        name="us_inflation",
        units="percent per year (annualised quarterly log change of the CPI)",
        source=(
            "FRED (Federal Reserve Bank of St. Louis), CPI for all urban consumers; numbers as shipped in "
            "statsmodels 0.15.0 (statsmodels/datasets/macrodata/macrodata.csv, infl)"
        ),
        license="public domain (per statsmodels, BSD-3-Clause)",
        citation=(
            "U.S. Bureau of Labor Statistics, Consumer Price Index for All Urban Consumers (CPIAUCSL), "
            "via FRED, Federal Reserve Bank of St. Louis; compiled by S. Seabold for statsmodels.datasets.macrodata."
        ),
    )


def load_gbp_usd() -> TimeSeriesData:
    """Daily log-returns of the GBP/USD exchange rate, 1997-01-03 to 1999-12-31.

    750 values of ``100 * ln(r_t / r_{t-1})`` (percent), computed from 751
    daily noon rates ``r_t`` in pounds sterling per US dollar (trading days
    from 1997-01-02), as the ``particles`` package preprocesses its
    ``GBP_vs_USD_9798`` data set for its stochastic-volatility examples
    (despite the name, the file covers 1997-1999). The raw rates ship in
    ``markovppl/datasets/data/gbp_usd.csv`` (columns ``date,gbp_per_usd``).

    Source:
        PACIFIC Exchange Rate Service (W. Antweiler, Sauder School of
        Business, University of British Columbia); numbers as shipped in
        the ``particles`` package 0.4 (``particles/datasets/GBP_vs_USD_9798.txt``).

    License:
        Redistributed from ``particles`` 0.4, released under the MIT licence
        (Copyright (c) 2018-2020 Nicolas Chopin). The original file carries
        the notice "(C) 2015 by Prof. Werner Antweiler, University of British
        Columbia, Vancouver BC, Canada"; exchange rates are factual data.

    Citation:
        Antweiler, W. PACIFIC Exchange Rate Service, Sauder School of
        Business, University of British Columbia. Chopin, N. and
        Papaspiliopoulos, O. (2020). *An Introduction to Sequential Monte
        Carlo*. Springer (the ``particles`` package).

    Returns:
        TimeSeriesData: ``time`` holds fractional years (``float64``; day
        ``d`` of year ``Y`` is ``Y + (d - 1) / days_in_Y``) of the second day
        of each return and ``values`` the returns (``float64``).

    Examples:
        >>> data = load_gbp_usd()
        >>> data.values.shape, round(float(data.values[0]), 4)
        ((750,), -0.2398)
        >>> round(float(data.time[0]), 4), round(float(data.time[-1]), 4)
        (1997.0055, 1999.9973)
    """
    text = resources.files(__name__).joinpath("data", "gbp_usd.csv").read_text(encoding="utf-8")
    rows = [line.split(",") for line in text.splitlines()[1:] if line.strip()]
    dates = np.array([r[0] for r in rows], dtype="datetime64[D]")
    rates = np.array([float(r[1]) for r in rows], dtype=np.float64)
    years = dates.astype("datetime64[Y]")
    start = years.astype("datetime64[D]")
    length = (years + 1).astype("datetime64[D]") - start
    time = years.astype(np.int64) + 1970 + (dates - start).astype(np.float64) / length.astype(np.float64)
    return TimeSeriesData(
        time=time[1:],
        values=100.0 * np.diff(np.log(rates)),
        name="gbp_usd",
        units="percent per trading day (100 x change in log GBP per USD)",
        source=(
            "PACIFIC Exchange Rate Service (W. Antweiler, UBC); numbers as shipped in particles 0.4 "
            "(particles/datasets/GBP_vs_USD_9798.txt)"
        ),
        license=(
            "redistributed from particles 0.4 (MIT licence, (c) 2018-2020 Nicolas Chopin); source file notice "
            "'(C) 2015 by Prof. Werner Antweiler, University of British Columbia'; factual data"
        ),
        citation=(
            "Antweiler, W. PACIFIC Exchange Rate Service, Sauder School of Business, University of British Columbia. "
            "Chopin, N. and Papaspiliopoulos, O. (2020). An Introduction to Sequential Monte Carlo. Springer."
        ),
    )
