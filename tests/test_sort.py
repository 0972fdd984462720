"""pagecore._sort.stable_argsort against its slow twin, NumPy's own stable argsort."""

from __future__ import annotations

import numpy as np
import pytest

from pagecore._sort import stable_argsort


@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.int32, np.uint8])
@pytest.mark.parametrize("distinct", [1, 3, 50, 10**9])
def test_same_indices_as_numpy_stable_argsort(dtype, distinct):
    rng = np.random.default_rng(distinct)
    for n in (0, 1, 2, 17, 5000):
        a = rng.integers(0, min(distinct, np.iinfo(dtype).max if dtype != np.float64 else distinct), n).astype(dtype)
        got = stable_argsort(a)
        np.testing.assert_array_equal(got, np.argsort(a, kind="stable"))
        assert got.dtype == np.argsort(a).dtype


def test_times_with_ties_as_in_a_trace_chunk():
    """Float times where several VMs touch pages at the same instants (equal boot sweeps), the
    rest unordered: the ties keep their input order."""
    rng = np.random.default_rng(1)
    sweep = 0.5 + np.arange(1000) / 37.0
    t = np.concatenate([rng.random(3000) * 30, sweep, rng.random(2000) * 30, sweep, sweep[::-1], [0.0, -0.0, 0.0]])
    np.testing.assert_array_equal(stable_argsort(t), np.argsort(t, kind="stable"))


def test_refuses_more_than_one_dimension():
    with pytest.raises(ValueError, match="1-d"):
        stable_argsort(np.zeros((2, 2)))
