r"""Model files: a Python file that defines a model, its default data and its plots.

``markovppl fit MODEL_FILE`` runs any file that follows this protocol; the bundled gallery lives in
``models/``. A model file is ordinary Python and is executed with your rights, like any script you run:
only run model files you trust.

Required names:

* module docstring — its first line is the one-line description shown by ``markovppl models``;
* ``model(y=None, **kwargs)`` — the NumPyro model; ``y`` is the observation array, time on the
  leading axis (``(T,)`` for one column, ``(T, m)`` for several);
* ``load_data() -> dict`` — the bundled data: ``{"y": array, "time": array, "columns": [names]}``.

Optional names:

* ``DATA_COLUMNS`` — CSV columns used for ``y`` when ``--data`` is given without ``--columns``;
* ``TIME_COLUMN`` — CSV column used for the time coordinate (default: none, steps are 0..T-1);
* ``VAR_NAMES`` — parameters to summarise and trace-plot (default: every posterior variable);
* ``plots(idata, data, out_dir) -> list[str]`` — write model-specific PNG plots, return their paths;
* ``NUTS_OPTIONS`` — keyword arguments for ``numpyro.infer.NUTS`` (e.g. ``{"target_accept_prob": 0.95}``);
* ``PARTICLE_GIBBS`` — for models without an exact likelihood whose latent path is a sample site from
  ``StateSpaceModel.path_prior`` (see [`markovppl.infer.particle_gibbs`][markovppl.infer.particle_gibbs]):
  ``{"site": "x", "num_particles": 64}`` fits by NUTS on the parameters and conditional SMC on the path;
* ``PCN`` — for non-exact BFFG models written with innovation sites (standard-normal or uniform priors)
  and a guided log-likelihood factor (see [`markovppl.infer.pcn`][markovppl.infer.pcn]):
  ``{"sites": ["z"], "latent": ["x"], "parameters": "nuts"}`` fits by pCN moves on the innovations and
  NUTS (or ``"random_walk"``) on the parameters; other keys (``rho``, ``segments``, ``target_accept``,
  ``scale``, ``dims``) are passed on.
"""

from __future__ import annotations

import csv
import importlib.util
import os
from pathlib import Path
from types import ModuleType
from typing import Callable, NamedTuple

import numpy as np

__all__ = ["ModelSpec", "ModelFileError", "DataError", "load_model_file", "read_csv_columns", "bundled_models",
           "find_model_file", "describe"]

REQUIRED = ("model", "load_data")


class ModelFileError(ValueError):
    """A model file that cannot be loaded or lacks a required name.

    Examples:
        >>> try:
        ...     find_model_file("no_such_model")
        ... except ModelFileError as err:
        ...     print(err)
        no model file 'no_such_model' (bundled models: ...)
    """


class DataError(ValueError):
    r"""A data file that cannot be read as the model needs it.

    Examples:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "flow.csv")
        >>> _ = open(path, "w").write("year,flow\n1871,1120\n")
        >>> try:
        ...     read_csv_columns(path, ["rain"])
        ... except DataError as err:
        ...     print(err)
        column(s) 'rain' not in ... (columns: year, flow)
    """


class ModelSpec(NamedTuple):
    """What a model file provides (see the module docstring for the protocol); made by
    [`load_model_file`][markovppl.modelfile.load_model_file], whose example shows one.

    Examples:
        >>> ModelSpec._fields[:4]
        ('path', 'description', 'model', 'load_data')
    """

    path: Path
    description: str
    model: Callable
    load_data: Callable[[], dict]
    data_columns: list | None
    time_column: str | None
    var_names: list | None
    plots: Callable | None
    nuts_options: dict
    module: ModuleType
    particle_gibbs: dict | None = None
    pcn: dict | None = None


def load_model_file(path: str | os.PathLike) -> ModelSpec:
    """Import a model file and check that it defines the required names.

    Raises:
        ModelFileError: the file does not exist, fails to import, or lacks ``model``/``load_data``.

    Examples:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "coin.py")
        >>> _ = open(path, "w").write('''"Beta-Bernoulli coin."
        ... import numpy as np, numpyro, numpyro.distributions as dist
        ... def model(y=None):
        ...     p = numpyro.sample("p", dist.Beta(1.0, 1.0))
        ...     numpyro.sample("y", dist.Bernoulli(p).expand([3]), obs=y)
        ... def load_data():
        ...     return {"y": np.array([1, 0, 1]), "time": np.arange(3), "columns": ["heads"]}
        ... ''')
        >>> spec = load_model_file(path)
        >>> spec.description, spec.load_data()["y"].tolist(), callable(spec.model)
        ('Beta-Bernoulli coin.', [1, 0, 1], True)
        >>> spec.var_names, spec.plots, spec.nuts_options          # optional names not defined
        (None, None, {})
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"markovppl_model_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # the user's file: report what went wrong where
        raise ModelFileError(f"model file {path} failed to import: {type(err).__name__}: {err}") from err
    missing = [name for name in REQUIRED if not callable(getattr(module, name, None))]
    if missing:
        raise ModelFileError(
            f"model file {path} does not define {', '.join(missing)} "
            f"(a model file needs the functions {', '.join(REQUIRED)}; see `markovppl fit --help`)"
        )
    plots = getattr(module, "plots", None)
    return ModelSpec(
        path, describe(path), module.model, module.load_data, getattr(module, "DATA_COLUMNS", None),
        getattr(module, "TIME_COLUMN", None), getattr(module, "VAR_NAMES", None), plots if callable(plots) else None,
        dict(getattr(module, "NUTS_OPTIONS", None) or {}), module,
        dict(module.PARTICLE_GIBBS) if getattr(module, "PARTICLE_GIBBS", None) else None,
        dict(module.PCN) if getattr(module, "PCN", None) else None,
    )


def read_csv_columns(path: str | os.PathLike, columns: list[str], time_column: str | None = None) -> dict:
    r"""Read numeric columns of a CSV file with a header row; empty cells become NaN (missing).

    Returns ``{"y": (T,) or (T, m) float array, "time": (T,) array, "columns": columns}``.

    Raises:
        DataError: unreadable file, no header, a requested column that is absent, a non-numeric cell,
            or no data rows.

    Examples:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "flow.csv")
    >>> _ = open(path, "w").write("year,flow\n1871,1120\n1872,\n")
    >>> read_csv_columns(path, ["flow"], "year")["y"]
    array([1120.,   nan])
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"cannot read {path} as CSV: {err}") from err
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise DataError(f"{path} has no header row")
    header = [cell.strip() for cell in rows[0]]
    wanted = list(columns) + ([time_column] if time_column else [])
    absent = [c for c in wanted if c not in header]
    if absent:
        raise DataError(f"column(s) {', '.join(map(repr, absent))} not in {path} (columns: {', '.join(header)})")
    body = [r for r in rows[1:] if any(cell.strip() for cell in r)]
    if not body:
        raise DataError(f"{path} has a header but no data rows")

    def column(name: str) -> np.ndarray:
        j = header.index(name)
        out = np.empty(len(body))
        for i, row in enumerate(body):
            if len(row) != len(header):
                raise DataError(f"{path}, line {i + 2}: expected {len(header)} fields, found {len(row)}")
            cell = row[j].strip()
            try:
                out[i] = float(cell) if cell and cell.upper() != "NA" else np.nan
            except ValueError:
                raise DataError(f"{path}, line {i + 2}, column {name!r}: cannot parse {cell!r} as a number") from None
        return out

    y = np.stack([column(c) for c in columns], -1)
    time = column(time_column) if time_column else np.arange(len(body), dtype=float)
    if time_column and np.any(np.isnan(time)):
        raise DataError(f"{path}: time column {time_column!r} has empty cells")
    if time_column and np.any(np.diff(time) <= 0):
        raise DataError(f"{path}: time column {time_column!r} is not strictly increasing")
    return {"y": y[:, 0] if len(columns) == 1 else y, "time": time, "columns": list(columns)}


def _model_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("MARKOVPPL_MODELS"):
        dirs.append(Path(os.environ["MARKOVPPL_MODELS"]))
    dirs.append(Path(__file__).resolve().parents[2] / "models")  # source checkout / editable install
    dirs.append(Path.cwd() / "models")
    return [d for d in dict.fromkeys(dirs) if d.is_dir()]


def describe(path: str | os.PathLike) -> str:
    """First line of a model file's docstring, read without executing the file.

    Examples:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "m.py")
        >>> _ = open(path, "w").write('"Local level model."\\nraise SystemExit\\n')
        >>> describe(path)                     # the file would exit if it were run
        'Local level model.'
    """
    import ast

    try:
        doc = ast.get_docstring(ast.parse(Path(path).read_text(encoding="utf-8"))) or ""
    except (OSError, SyntaxError, UnicodeDecodeError) as err:
        raise ModelFileError(f"cannot read {path}: {err}") from err
    return doc.strip().splitlines()[0].strip() if doc.strip() else ""


def bundled_models() -> dict[str, Path]:
    """The gallery: ``{name: path}`` of ``models/*.py`` (``$MARKOVPPL_MODELS``, the source checkout, ``./models``).

    Examples:
        >>> gallery = bundled_models()
        >>> "poisson_hmm" in gallery, gallery["poisson_hmm"].suffix
        (True, '.py')
    """
    found = {}
    for d in _model_dirs():
        for p in sorted(d.glob("*.py")):
            if not p.name.startswith("_"):
                found.setdefault(p.stem, p)
    return found


def find_model_file(name_or_path: str) -> Path:
    """A path as given, or the bundled model of that name (``poisson_hmm`` or ``poisson_hmm.py``).

    Examples:
        >>> find_model_file("poisson_hmm") == find_model_file("poisson_hmm.py") == bundled_models()["poisson_hmm"]
        True
        >>> describe(find_model_file("poisson_hmm"))
        'Poisson HMM with 3 ordered states for the annual counts of major earthquakes (1900-2006).'
    """
    p = Path(name_or_path)
    if p.is_file():
        return p
    gallery = bundled_models()
    key = p.stem if p.suffix == ".py" else p.name
    if key in gallery and (p.parent == Path(".") or not p.parent.exists()):
        return gallery[key]
    known = ", ".join(sorted(gallery)) or "none found"
    raise ModelFileError(f"no model file {name_or_path!r} (bundled models: {known})")
