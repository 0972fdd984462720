"""Shared test configuration.

Kernel tests also run with ``NUMBA_DISABLE_JIT=1`` (see test_kernels_without_jit in
test_hashing.py), so sizes shrink when the JIT is off: pure-Python kernels are slow.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

# Tests draw figures off screen; the library itself never picks a backend (Jupyter needs inline).
os.environ.setdefault("MPLBACKEND", "Agg")

JIT_DISABLED = os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0")


def scaled(n: int, small: int) -> int:
    """``n`` normally, ``small`` when the JIT is disabled."""
    return small if JIT_DISABLED else n


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
