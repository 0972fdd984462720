"""Session 22 audit of ``count_sharing``'s API (a randomized differential search against the slow
twin, tests/test_count_fuzz_s22.py): each test is an input that was counted or reported wrongly
with no error (or refused with a misleading one), and now gives the twin's answer or one clear
line."""

from __future__ import annotations

import numpy as np
import pytest
from test_count_kernel import check

from pagecore.sharing import count_sharing
from pagecore.sharing.counts import T_KSM_ZERO


def test_uint64_salts_are_ranked_and_listed_as_given():
    """uint64 salts of 2**63 or more were cast to negative int64: the top contents listed salt
    2**63 + 5 as -9223372036854775803, and of two contents tied in copies the one under that salt
    was kept before the one under salt 3 (the twin, and the salts as given, rank 3 first). Salts
    of VMs (the common path) and of pages (the general one)."""
    big = 2**63 + 5
    h = np.array([7, 7, 9, 9, 11, 11], np.uint64)
    vm = np.array([0, 0, 1, 1, 2, 2], np.uint8)
    for salt in (np.array([big, big, 3, 3, 2**64 - 1, 2**64 - 1], np.uint64),  # salts of VMs
                 np.array([big, big, 3, 3, 2**64 - 1, 0], np.uint64)):  # fmt: skip
        got = check(h, None, vm, 3, salt=salt, top_n=1)
        assert got.top == [(9, 3, 2, 1, False)]
        got = check(h, None, vm, 3, salt=salt, top_n=3)
        want = [(7, big, 2, 1, False), (9, 3, 2, 1, False), (11, 2**64 - 1, 2, 1, False)]
        assert got.top == (want if salt[5] else want[:2])


def test_ksm_and_report_switches_must_be_switches():
    """``use_zero_pages="0"`` (a string, as read from sysfs or a config) was True: zero pages
    counted as ``ksm_zero_pages``; ``verified="no"`` was reported as verified; ``false_matches=-1``
    was reported; ``threads="2"`` was a TypeError from inside. 0/1 and NumPy bools still work."""
    h = np.array([0, 0, 0, 5, 5], np.uint64)
    z = h == 0
    for bad in ("0", "1", 2, None, 0.0):
        with pytest.raises(ValueError, match="use_zero_pages must be True or False"):
            count_sharing(h, z, None, ["a"], use_zero_pages=bad)
    for bad in ("no", 2, None):
        with pytest.raises(ValueError, match="verified must be True or False"):
            count_sharing(h, z, None, ["a"], verified=bad)
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(ValueError, match="false_matches must be a whole number >= 0"):
            count_sharing(h, z, None, ["a"], false_matches=bad)
    for bad in ("2", 2.5, True):
        with pytest.raises(ValueError, match="threads must be a whole number >= 0"):
            count_sharing(h, z, None, ["a"], threads=bad)
    on = [count_sharing(h, z, None, ["a"], use_zero_pages=x).t(T_KSM_ZERO) for x in (True, 1, np.bool_(True))]
    off = [count_sharing(h, z, None, ["a"], use_zero_pages=x).t(T_KSM_ZERO) for x in (False, 0, np.int64(0))]
    assert on == [3, 3, 3] and off == [0, 0, 0]
    assert count_sharing(h, z, None, ["a"], verified=np.bool_(True)).to_dict()["verified"] is True


def test_a_scalar_is_not_a_set_of_pages():
    """A scalar hash was counted as a set of one page (np.ascontiguousarray makes a 0-d array one
    of shape (1,)), and so were scalar zero, salt and eligibility flags for one page."""
    with pytest.raises(ValueError, match=r"hashes must be uint64\[n\], got uint64\(\)"):
        count_sharing(np.uint64(5), None, None, ["a"])
    one = np.array([5], np.uint64)
    with pytest.raises(ValueError, match=r"zero must have shape \(1,\), got \(\)"):
        count_sharing(one, True, None, ["a"])
    with pytest.raises(ValueError, match=r"salt must have shape \(1,\), got \(\)"):
        count_sharing(one, None, None, ["a"], salt=3)
    with pytest.raises(ValueError, match=r"eligible must have shape \(1,\), got \(\)"):
        count_sharing(one, None, None, ["a"], eligible=False)
    with pytest.raises(ValueError, match=r"vm must have shape \(1,\), got \(\)"):
        count_sharing(one, None, 0, ["a"])
    assert count_sharing(one, [True], [0], ["a"], salt=[3], eligible=[True]).to_dict()["zero_pages"] == 1


def test_a_bad_vm_index_is_named_as_given():
    """A uint64 VM index of 2**64 - 1 was named -1 in the refusal, and 1e19 (a float) was named
    -9223372036854775808: the values after a cast the user never made."""
    h = np.arange(3, dtype=np.uint64)
    with pytest.raises(ValueError, match=r"page 2 has 18446744073709551615$"):
        count_sharing(h, None, np.array([0, 1, 2**64 - 1], np.uint64), ["a", "b"])
    with pytest.raises(ValueError, match=r"page 1 has 1e\+19$"):
        count_sharing(h, None, np.array([0, 1e19, 1]), ["a", "b"], salt=np.arange(3))


def test_compact_vm_index_takes_whole_numbers_only():
    """``compact_vm_index`` (the dtype every caller hands ``count_sharing``) cast float indices
    0.5 and 1.7 to VMs 0 and 1, and strings were a NumPy UFuncTypeError; whole floats still work."""
    from pagecore.sharing.counts import compact_vm_index

    for bad in (np.array([0.5, 1.7]), np.array([0, np.nan]), np.array(["0", "1"]), np.array([True, False])):
        with pytest.raises(ValueError, match="VM indices must be whole numbers"):
            compact_vm_index(bad, 2)
    got = compact_vm_index(np.array([1.0, 0.0]), 2)
    assert got.tolist() == [1, 0] and got.dtype == np.uint8


def test_numpy_whole_numbers_give_a_json_report():
    """``top_n`` and ``hash_bits`` given as NumPy integers (read from an array or a DataFrame) were
    kept as such: ``json.dumps(counts.to_dict())`` (what ``share`` writes) was a TypeError."""
    import json

    c = count_sharing(np.array([1, 1, 2], np.uint64), None, None, ["a"], top_n=np.int64(3), hash_bits=np.uint8(32))
    d = json.loads(json.dumps(c.to_dict()))
    assert d["hash_bits"] == 32 and len(d["top_shared"]) == 1


def test_count_hashes_checks_as_count_sharing_does():
    """``count_hashes`` checked its input on its own: a scalar hash was a set of one page, and
    big-endian uint64 hashes (which ``count_sharing`` counts) were refused."""
    from pagecore.sharing.fastcount import count_hashes

    with pytest.raises(ValueError, match=r"hashes must be uint64\[n\]"):
        count_hashes(np.uint64(5))
    h = np.array([3, 3, 4], np.uint64)
    assert count_hashes(h.astype(">u8")) == count_hashes(h) == (2, 2, 1)


def test_counts_of_other_top_lengths_add_up_to_the_shorter():
    """Two parts counted with top 1 and top 3 summed to a top 3 that missed the first part's
    second content (4 copies) and listed the second part's 2-copy contents in its place: the sum
    keeps as many as both lists hold for sure."""
    a = count_sharing(np.array([1] * 5 + [2] * 4, np.uint64), None, None, ["a"], top_n=1)
    b = count_sharing(np.array([7, 7, 8, 8], np.uint64), None, None, ["a"], top_n=3)
    for s in (a + b, b + a):
        assert s.top == [(1, 0, 5, 1, False)] and s.top_n == 1
    whole = count_sharing(np.array([1] * 5 + [2] * 4 + [7, 7, 8, 8], np.uint64), None, None, ["a"], top_n=3)
    same = count_sharing(np.array([1] * 5 + [2] * 4, np.uint64), None, None, ["a"], top_n=3) + b
    assert same.top == whole.top and same.top_n == 3
