"""Pytest configuration for the whole repository (tests/ and the doctests of src/markovppl).

XLA keeps every compiled executable alive, and each one holds memory mappings of its JIT-compiled code.
A test worker that runs half of the suite compiles thousands of functions and would reach the kernel's
limit on memory mappings (vm.max_map_count, 65530 by default), after which LLVM crashes with a
segmentation fault. Dropping JAX's caches after each module keeps the count bounded.
"""

import jax
import pytest


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_code():
    yield
    jax.clear_caches()
