"""Tests for the bundled real data sets (markovppl.datasets)."""

from importlib import resources

import numpy as np
import pytest

from markovppl.datasets import TimeSeriesData, load_earthquakes, load_nile


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


@pytest.mark.parametrize("loader", [load_earthquakes, load_nile])
def test_years_are_contiguous(loader):
    data = loader()
    assert data.time.shape == data.values.shape
    np.testing.assert_array_equal(np.diff(data.time), 1)


@pytest.mark.parametrize("loader", [load_earthquakes, load_nile])
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
    [(load_earthquakes, "earthquakes.csv", "year,count"), (load_nile, "nile.csv", "year,flow")],
)
def test_data_read_from_package_resources(loader, filename, header):
    resource = resources.files("markovppl.datasets").joinpath("data", filename)
    assert resource.is_file()
    lines = resource.read_text(encoding="utf-8").splitlines()
    assert lines[0] == header
    rows = [line.split(",") for line in lines[1:] if line.strip()]
    data = loader()
    np.testing.assert_array_equal(data.time, [int(r[0]) for r in rows])
    np.testing.assert_array_equal(data.values, [float(r[1]) for r in rows])
