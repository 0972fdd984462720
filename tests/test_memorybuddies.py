"""Memory Buddies importer: header detection, 32-bit hashes, hash-only flags, clear errors.

No real trace is available offline, so files are written here in the layout the trace
repository's readme describes (a text header, then consecutive 32-bit hashes, sometimes a
trailing Bloom filter)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from pagecore.errors import InputError, PagecoreError
from pagecore.experiments.analyze import analyze_page_tables
from pagecore.pages.tables import page_table_metadata, read_page_table
from pagecore.synth.memorybuddies import expected_false_matches, import_trace, split_header

HEADER = b"Darwin 9.4.0 i386\nPROCESSES:\n  1 launchd\n  42 WindowServer\n"


def write_trace(path, hashes, header=HEADER, tail=b""):
    path.write_bytes(header + np.asarray(hashes, "<u4").tobytes() + tail)
    return path


def test_header_split_and_hashes(tmp_path, rng):
    h = rng.integers(0, 2**32, size=1000, dtype=np.uint64)
    h[10:20] = h[0]
    p = write_trace(tmp_path / "mac1.dat", h)
    assert split_header(p.read_bytes()) == len(HEADER)
    meta = import_trace(p, tmp_path / "mac1.parquet")
    assert meta["pages_read"] == 1000 and meta["header_bytes"] == len(HEADER)
    t = read_page_table(tmp_path / "mac1.parquet").to_pandas()
    assert t["hash"].to_numpy().tolist() == h.tolist() and not t["zero"].any()
    stored = page_table_metadata(tmp_path / "mac1.parquet")
    assert stored["hash_bits"] == 32 and stored["hash_only"] is True and stored["zero_known"] is False


def test_analysis_is_unverified_with_32_bit_false_match_estimate(tmp_path, rng):
    h = rng.integers(0, 2**32, size=5000, dtype=np.uint64)
    p = write_trace(tmp_path / "srv.dat", h)
    import_trace(p, tmp_path / "srv.parquet")
    rep = analyze_page_tables([tmp_path / "srv.parquet"])
    assert rep["verified"] is False and rep["hash_bits"] == 32
    assert rep["expected_false_matches"] == pytest.approx(expected_false_matches(rep["distinct_pages"], 32))
    assert rep["expected_false_matches"] > 1e-3  # 32 bits: collisions are a real concern
    with pytest.raises(PagecoreError, match=r"cannot verify: .*hash-only"):
        analyze_page_tables([tmp_path / "srv.parquet"], verify="yes")


def test_bloom_filter_tail_needs_max_pages(tmp_path, rng):
    h = rng.integers(0, 2**32, size=100, dtype=np.uint64)
    p = write_trace(tmp_path / "t.dat", h, tail=b"\x01\x02\x03")  # not whole 32-bit values
    with pytest.raises(InputError, match="not whole 32-bit hashes") as ei:
        import_trace(p, tmp_path / "t.parquet")
    assert "--max-pages" in str(ei.value)
    meta = import_trace(p, tmp_path / "t.parquet", max_pages=100)
    assert meta["pages_read"] == 100 and meta["bytes_skipped"] == 3


def test_page_count_from_header(tmp_path, rng):
    h = rng.integers(0, 2**32, size=64, dtype=np.uint64)
    p = write_trace(tmp_path / "t.dat", h, header=HEADER + b"pages: 50\n", tail=b"BLOOMFILTER....")
    assert import_trace(p, tmp_path / "t.parquet")["pages_read"] == 50


@pytest.mark.parametrize("content,match", [(b"", "empty"), (HEADER, "no page hashes")])
def test_bad_files(tmp_path, content, match):
    p = tmp_path / "bad.dat"
    p.write_bytes(content)
    with pytest.raises(InputError, match=match):
        import_trace(p, tmp_path / "bad.parquet")
    assert not (tmp_path / "bad.parquet").exists()


def test_cli_import(tmp_path, rng):
    p = write_trace(tmp_path / "m.dat", rng.integers(0, 2**32, size=300, dtype=np.uint64))
    out = tmp_path / "m.parquet"
    proc = subprocess.run(
        [sys.executable, "-m", "pagecore", "import", "memorybuddies", str(p), "-o", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(
        subprocess.run(
            [sys.executable, "-m", "pagecore", "share", str(out), "--format", "json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert rep["total_pages"] == 300 and rep["hash_bits"] == 32
