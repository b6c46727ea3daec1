"""Test configuration: float64 everywhere (float32 is exercised explicitly), oracles importable."""

import os
import sys

import jax

jax.config.update("jax_enable_x64", True)
sys.path.insert(0, os.path.dirname(__file__))
