"""Pytest configuration for the whole repository (tests/ and the doctests of src/markovppl).

XLA keeps every compiled executable alive, and each one holds memory mappings of its JIT-compiled code.
A test worker that runs half of the suite compiles thousands of functions and would reach the kernel's
limit on memory mappings (vm.max_map_count, 65530 by default), after which LLVM crashes with a
segmentation fault. After each module, JAX's caches are dropped once the process holds more than
``MAX_MAPPINGS`` mappings (about a third of the limit), so the count stays bounded while modules that
run next to each other still share compiled code.
"""

import os

import jax
import pytest

MAX_MAPPINGS = int(os.environ.get("MARKOVPPL_TEST_MAX_MAPPINGS", "20000"))


def _num_mappings() -> int:
    try:
        with open("/proc/self/maps", "rb") as f:
            return sum(1 for _ in f)
    except OSError:  # not Linux: no way to count, so always release
        return MAX_MAPPINGS + 1


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_code():
    yield
    if _num_mappings() > MAX_MAPPINGS:
        jax.clear_caches()
