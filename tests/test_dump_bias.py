"""Filtered kdumps (makedumpfile -d) are flagged: the page classes they miss, and that sharing is underestimated."""

from __future__ import annotations

import json

import pytest
from dumps_helpers import FIXTURE_ARCHIVE, unpack_fixture
from test_cli import run

from pagecore.dumps.dumplevel import bias_of, excluded_classes


@pytest.mark.parametrize(
    "level,classes",
    [
        (0, []),
        (1, ["zero pages"]),
        (16, ["free pages"]),
        (8 | 2, ["cache pages without private data", "user process data pages"]),
        (
            31,
            [
                "zero pages",
                "cache pages without private data",
                "cache pages with private data",
                "user process data pages",
                "free pages",
            ],
        ),
        (33, ["zero pages", "unknown dump_level bits 0x20"]),
    ],
)
def test_dump_level_bits_name_the_missing_classes(level, classes):
    assert excluded_classes(level) == classes
    b = bias_of({"vm": "v", "dump_level": level, "pages_excluded": 7})
    assert (b is None) == (level == 0)
    if b:
        assert b["missing_classes"] == classes and "sharing is underestimated" in b["message"]


def test_tables_without_dump_level_are_not_flagged():
    assert bias_of({"vm": "v", "format": "elf", "pages_excluded": 0}) is None


def test_a_dump_that_left_nothing_out_is_not_flagged():
    """QEMU writes dump_level 1 in its kdump header but keeps every page."""
    assert bias_of({"vm": "q", "dump_level": 1, "pages_excluded": 0}) is None
    b = bias_of({"vm": "q", "dump_level": 17, "pages_excluded": 3}, zero_pages=5)
    assert b["missing_classes"] == ["zero pages", "free pages"] and "holds 5 all-zero pages" in b["message"]


@pytest.mark.skipif(not FIXTURE_ARCHIVE.exists(), reason="no real fixture archive")
def test_real_d31_dump_is_flagged_in_hash_share_json_and_fig05(tmp_path):
    from pagecore.sharing.tables import fig05_table

    d, _ = unpack_fixture(tmp_path)
    full = tmp_path / "full.parquet"
    d31 = tmp_path / "d31.parquet"
    run("hash", str(d / "guest.kdump-zlib.kdump"), "-o", str(full), "--vm", "full")
    err = run("hash", str(d / "guest.d31-zlib.kdump"), "-o", str(d31), "--vm", "filtered", "-q").stderr
    assert "dump_level 31" in err and "zero pages" in err and "free pages" in err and "underestimated" in err
    table = run("share", str(full), str(d31), "--no-verify").stdout
    assert "WARNING: filtered: kdump dump_level 31" in table
    proc = run("share", str(full), str(d31), "--no-verify", "--format", "json")
    rep = json.loads(proc.stdout)
    assert rep["sharing_underestimated"] is True and "underestimated" in proc.stderr
    # the cropped QEMU kdump (dump_level 1, frames outside the fixture's windows excluded) is flagged too
    b = next(b for b in rep["biased_inputs"] if b["vm"] == "filtered")
    assert b["vm"] == "filtered" and b["dump_level"] == 31 and b["pages_excluded"] > 0
    assert len(b["missing_classes"]) == 5
    rows = fig05_table({"mixed": rep, "clean": {**rep, "biased_inputs": [], "sharing_underestimated": False}})
    assert rows["biased_vms"].tolist()[1] == "" and "filtered" in rows["biased_vms"].tolist()[0]
    assert rows["sharing_underestimated"].tolist() == [True, False]
