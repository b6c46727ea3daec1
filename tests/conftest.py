"""Test configuration: float64 everywhere (float32 is exercised explicitly), oracles importable."""

import os
import sys

# Small NumPy/SciPy oracle factorisations: one BLAS thread, so OpenBLAS does not spin against XLA's threads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
sys.path.insert(0, os.path.dirname(__file__))
