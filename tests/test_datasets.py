"""Tests for the bundled real data sets (markovppl.datasets)."""

from importlib import resources

import numpy as np
import pytest

from markovppl.datasets import (
    TimeSeriesData,
    load_earthquakes,
    load_gbp_usd,
    load_gnp_growth,
    load_nile,
    load_us_inflation,
    load_us_recessions,
)


@pytest.mark.smoke
def test_earthquakes_shape_dtype_and_sum():
    data = load_earthquakes()
    assert isinstance(data, TimeSeriesData)
    assert data.values.shape == (107,)
    assert data.values.dtype == np.int64
    assert data.time.dtype == np.int64
    assert int(data.values.sum()) == 2072
    assert data.values.min() >= 0
    assert data.values[:3].tolist() == [13, 14, 8]
    assert data.time[0] == 1900 and data.time[-1] == 2006


def test_nile_shape_dtype_and_moments():
    data = load_nile()
    assert isinstance(data, TimeSeriesData)
    assert data.values.shape == (100,)
    assert data.values.dtype == np.float64
    assert data.time.dtype == np.int64
    assert data.values[0] == 1120.0
    assert data.values.mean() == pytest.approx(919.35, abs=0.01)
    assert data.time[0] == 1871 and data.time[-1] == 1970


def test_gnp_growth_shape_dtype_values_and_sum():
    data = load_gnp_growth()  # Hamilton (1989), as in statsmodels' rgnp
    assert isinstance(data, TimeSeriesData)
    assert data.values.shape == data.time.shape == (135,)
    assert data.values.dtype == np.float64 and data.time.dtype == np.float64
    assert data.values[0] == 2.59316421 and data.values[-1] == 0.14802167
    assert data.values[9] == -0.46477833  # 1953Q3, the first quarter of the 1953-54 recession
    assert data.values.sum() == pytest.approx(100.52071286, abs=1e-7)
    assert data.time[0] == 1951.25 and data.time[-1] == 1984.75  # 1951Q2 .. 1984Q4


def test_us_inflation_shape_dtype_values_and_sum():
    data = load_us_inflation()
    assert isinstance(data, TimeSeriesData)
    assert data.values.shape == data.time.shape == (202,)
    assert data.values.dtype == np.float64 and data.time.dtype == np.float64
    assert data.values[0] == 2.34 and data.values.min() == -8.79  # 1959Q2; 2008Q4
    assert data.time[np.argmin(data.values)] == 2008.75
    assert data.values.sum() == pytest.approx(804.15, abs=1e-9)
    assert data.time[0] == 1959.25 and data.time[-1] == 2009.5  # 1959Q2 .. 2009Q3


def test_us_recessions_align_with_gnp_and_match_nber_turning_points():
    rec, gnp = load_us_recessions(), load_gnp_growth()
    np.testing.assert_array_equal(rec.time, gnp.time)
    assert rec.values.dtype == np.int64 and set(rec.values.tolist()) == {0, 1}
    # NBER quarterly peaks / troughs: recession = quarter after the peak .. the trough quarter
    turns = [(1953.25, 1954.25), (1957.5, 1958.25), (1960.25, 1961.0), (1969.75, 1970.75),
             (1973.75, 1975.0), (1980.0, 1980.5), (1981.5, 1982.75)]
    expected = np.zeros(135, int)
    for peak, trough in turns:
        expected[(rec.time > peak) & (rec.time <= trough)] = 1
    np.testing.assert_array_equal(rec.values, expected)
    # recessions have lower GNP growth on average (Hamilton's regimes)
    assert gnp.values[rec.values == 1].mean() < 0 < gnp.values[rec.values == 0].mean()


@pytest.mark.parametrize(("loader", "step"), [(load_gnp_growth, 0.25), (load_us_inflation, 0.25), (load_us_recessions, 0.25)])
def test_quarters_are_contiguous(loader, step):
    data = loader()
    np.testing.assert_allclose(np.diff(data.time), step, atol=1e-9)
    np.testing.assert_allclose(data.time * 4, np.round(data.time * 4), atol=1e-9)  # Y + (q - 1) / 4


@pytest.mark.parametrize("loader", [load_earthquakes, load_nile])
def test_years_are_contiguous(loader):
    data = loader()
    assert data.time.shape == data.values.shape
    np.testing.assert_array_equal(np.diff(data.time), 1)


@pytest.mark.parametrize("loader", [load_earthquakes, load_nile, load_gnp_growth, load_us_inflation, load_us_recessions])
def test_provenance_fields_are_filled(loader):
    data = loader()
    for field in ("name", "units", "source", "license", "citation"):
        value = getattr(data, field)
        assert isinstance(value, str) and value.strip(), field
    doc = loader.__doc__
    for section in ("Source:", "License:", "Citation:", ">>>"):
        assert section in doc


@pytest.mark.parametrize(
    ("loader", "filename", "header"),
    [(load_earthquakes, "earthquakes.csv", "year,count"), (load_nile, "nile.csv", "year,flow"),
     (load_gnp_growth, "gnp_growth.csv", "year,growth"), (load_us_inflation, "us_inflation.csv", "year,inflation")],
)
def test_data_read_from_package_resources(loader, filename, header):
    resource = resources.files("markovppl.datasets").joinpath("data", filename)
    assert resource.is_file()
    lines = resource.read_text(encoding="utf-8").splitlines()
    assert lines[0] == header
    rows = [line.split(",") for line in lines[1:] if line.strip()]
    data = loader()
    np.testing.assert_array_equal(data.time, [data.time.dtype.type(float(r[0])) for r in rows])
    np.testing.assert_array_equal(data.values, [float(r[1]) for r in rows])


def test_gbp_usd_returns_match_the_particles_preprocessing():
    # 100 * diff(log(rate)) of the 751 rates, as particles 0.4 computes them from its own copy of the file
    # (sum and first value derived with numpy from particles/datasets/GBP_vs_USD_9798.txt)
    data = load_gbp_usd()
    assert isinstance(data, TimeSeriesData)
    assert data.values.shape == data.time.shape == (750,)
    assert data.values[0] == pytest.approx(-0.23976373, abs=1e-8)
    assert data.values.sum() == pytest.approx(4.309140881587508, abs=1e-9)
    assert data.values.std() == pytest.approx(0.4668211073952862, abs=1e-9)
    assert np.all(np.diff(data.time) > 0) and np.all(np.diff(data.time) < 6 / 365)  # trading days, ordered
    assert 1997.0 < data.time[0] < 1997.01 and 1999.99 < data.time[-1] < 2000.0
    rows = resources.files("markovppl.datasets").joinpath("data", "gbp_usd.csv").read_text().splitlines()
    assert rows[0] == "date,gbp_per_usd" and rows[1] == "1997-01-02,0.59296" and len(rows) == 752
    for field in ("name", "units", "source", "license", "citation"):
        assert getattr(data, field).strip()
    for section in ("Source:", "License:", "Citation:", ">>>"):
        assert section in load_gbp_usd.__doc__
