"""Audit of ``pagecore compress``: impossible sampled estimates and unchecked sized page tables.

Each test is a case that once gave a report with exit 0 that could not be true (a compressed
size twice the guest, negative bytes, ``same_pages [0, 0]`` where the guest has 35) or a
traceback; each builds its inputs in ``tmp_path``.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dumps_helpers import make_pages

from pagecore.cli import main
from pagecore.errors import ConfigError
from pagecore.pages import hash_dump
from pagecore.pages.compress import sample_mask, size_bound
from pagecore.sharing.compress import (
    MIN_SAMPLE_PAGES,
    RELIABLE_SAMPLE_PAGES,
    estimate_zram,
    zram_mm_stat,
    zsmalloc_classes,
)

PS = 4096
COUNTS = ("same_pages", "huge_pages")
BYTES = ("compr_data_size", "mem_used_total")


@pytest.fixture(scope="module")
def guest(tmp_path_factory):
    """A 400-page raw dump (a fifth zero pages, the rest compressible or random) and its page
    table hashed with ``--compress lz4``."""
    d = tmp_path_factory.mktemp("guest")
    pages = make_pages(400, 7)
    dump = d / "g.raw"
    dump.write_bytes(pages.tobytes())
    table = d / "g.parquet"
    hash_dump(dump, table, "g", compress=("lz4",), show_progress=False)
    return dump, table


def refused(argv, capsys, *, out=None) -> str:
    """Run ``pagecore`` in-process; assert exit 1, one ``pagecore: error:`` line, no output file."""
    argv = list(argv) + (["-o", str(out)] if out is not None else [])
    capsys.readouterr()
    assert main(argv) == 1
    cap = capsys.readouterr()
    lines = [line for line in cap.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("pagecore: error: "), cap.err
    assert not cap.out
    if out is not None:
        assert not out.exists()
        assert not list(out.parent.glob(f"*{out.name}*"))  # no temporary left either
    return lines[0]


# ------------------------------------------------------------------ sampled estimates
@pytest.mark.parametrize("sample", ["1e-9", "1", "3"])
def test_a_sample_too_small_to_estimate_from_is_refused(guest, capsys, tmp_path, sample):
    """`--sample 1e-9` gave compr_data_size 4,096,000,000,000 for a 512-page guest and `--sample
    1` a compressed size twice the original, both exit 0."""
    _, table = guest
    line = refused(["compress", str(table), "--algorithm", "lz4", "--sample", sample], capsys, out=tmp_path / "r.json")
    assert "--sample" in line and f"fewer than {MIN_SAMPLE_PAGES}" in line
    assert "larger --sample" in line and "without --sample" in line


def _estimates_within_bounds(z: dict, pages: int) -> None:
    for k in COUNTS:
        assert 0 <= z[k]["low"] <= z[k]["estimate"] <= z[k]["high"] <= pages, (k, z[k])
    assert 0 <= z["compr_data_size"]["low"] <= z["compr_data_size"]["estimate"]
    assert z["compr_data_size"]["high"] <= pages * PS, z["compr_data_size"]
    assert 0 <= z["mem_used_total"]["low"] <= z["mem_used_total"]["estimate"] <= z["mem_used_total"]["high"]
    assert z["orig_data_size"]["low"] == z["orig_data_size"]["high"] == pages * PS


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("sample", ["0.02", "8", "0.1", "0.5"])
def test_cli_estimates_and_bounds_are_possible(guest, capsys, sample, seed):
    _, table = guest
    capsys.readouterr()
    argv = ["compress", str(table), "--algorithm", "lz4", "--format", "json", "--sample", sample, "--seed", str(seed)]
    assert main(argv) == 0
    rep = json.loads(capsys.readouterr().out)
    assert not rep["exact"] and rep["pages"] == 400
    _estimates_within_bounds(rep["zram_estimate"], 400)
    assert "normal" not in rep["note"]


def test_huge_scaling_from_few_pages_stays_within_the_guest():
    """Horvitz-Thompson (sum / fraction) scaled 5 huge pages drawn at 1e-9 to 5e9 huge pages."""
    cs = np.full(5, 4100)
    z = estimate_zram(cs, np.zeros(5, bool), 1e-9, 512)
    _estimates_within_bounds(z, 512)
    assert z["huge_pages"]["estimate"] == 512 and z["compr_data_size"]["estimate"] == 512 * PS
    # the sample says nothing sure about the 507 pages it missed: not a point interval
    assert z["huge_pages"]["low"] < 500 and z["compr_data_size"]["low"] < 500 * PS
    # a sample of 2 pages from a 512-page guest cannot give twice its size
    z = estimate_zram(np.array([4100, 4000]), np.zeros(2, bool), 1.0, 2)  # every page: exact
    assert z["compr_data_size"]["estimate"] == 2 * PS


def test_fewer_than_the_minimum_pages_are_refused_by_the_library():
    cs, same = np.full(MIN_SAMPLE_PAGES - 1, 100), np.zeros(MIN_SAMPLE_PAGES - 1, bool)
    with pytest.raises(ConfigError, match="--sample"):
        estimate_zram(cs, same, 0.01, 1000)
    with pytest.raises(ConfigError, match="--sample"):
        estimate_zram(cs[:0], same[:0], 0.01, 1000)
    # every page of a small guest sampled: the exact counters, whatever their number
    z = estimate_zram(cs, same, 0.9, len(cs))
    st = zram_mm_stat(cs, same)
    assert all(z[k]["low"] == z[k]["estimate"] == z[k]["high"] == st[k] for k in COUNTS + BYTES)


def test_missed_rare_pages_do_not_give_a_certain_zero():
    """The normal interval said same_pages 0, 95 % CI [0, 0] when the sample held none of 35."""
    n, big_n = 200, 10_000
    z = estimate_zram(np.full(n, 900), np.zeros(n, bool), n / big_n, big_n)
    s = z["same_pages"]
    assert s["estimate"] == 0 and s["low"] == 0
    assert s["high"] >= 0.9 * 3 * big_n / n  # at least about the rule of three
    h = estimate_zram(np.full(n, 4100), np.zeros(n, bool), n / big_n, big_n)["huge_pages"]
    assert h["high"] == big_n and h["low"] <= big_n - 0.9 * 3 * big_n / n  # every sampled page huge


def _population(big_n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Page sizes like a guest's: 3 % same-filled, 8 % huge, the rest spread over the classes."""
    cs = rng.integers(40, 3000, big_n)
    same = rng.random(big_n) < 0.03
    huge = rng.random(big_n) < 0.08
    cs[huge] = rng.integers(3625, 4200, int(huge.sum()))
    cs[same] = 30
    return cs, same


@pytest.mark.parametrize("n_mean", [30, 150, 600])
def test_intervals_cover_the_exact_counters(n_mean):
    """Over 300 seeded samples each interval holds the exact mm_stat counter at least about
    as often as it claims (95 %), also for the rare same-filled pages."""
    rng = np.random.default_rng(11)
    big_n = 6000
    cs, same = _population(big_n, rng)
    exact = zram_mm_stat(cs, same)
    frac = n_mean / big_n
    hits = dict.fromkeys(COUNTS + BYTES, 0)
    runs = 0
    for seed in range(300):
        m = sample_mask(big_n, 0, frac, seed)
        if m.sum() < MIN_SAMPLE_PAGES:
            continue
        runs += 1
        z = estimate_zram(cs[m], same[m], frac, big_n)
        _estimates_within_bounds(z, big_n)
        for k in hits:
            hits[k] += z[k]["low"] <= exact[k] <= z[k]["high"]
    assert runs >= 290
    for k, h in hits.items():
        assert h / runs >= 0.92, (k, h, runs)


def test_a_small_sample_is_flagged_unreliable(guest, capsys):
    _, table = guest
    capsys.readouterr()
    argv = ["compress", str(table), "--algorithm", "lz4", "--sample", "30"]
    assert main([*argv, "--format", "json"]) == 0
    cap = capsys.readouterr()
    rep = json.loads(cap.out)
    assert MIN_SAMPLE_PAGES <= rep["pages_examined"] < RELIABLE_SAMPLE_PAGES
    assert "UNRELIABLE" in rep["warning"] and "pagecore: warning: UNRELIABLE" in cap.err
    assert main(argv) == 0
    assert "UNRELIABLE" in capsys.readouterr().out
    # a sample of enough pages carries no warning
    assert main([*argv[:-1], "0.5", "--format", "json"]) == 0
    cap = capsys.readouterr()
    assert "warning" not in json.loads(cap.out) and not cap.err


def test_page_zero_is_not_in_every_sample():
    """The sample hash mapped (page 0, seed 0) to 0, so page 0 was sampled at any fraction."""
    assert not sample_mask(1, 0, 1e-9, 0)[0]
    picked = sum(bool(sample_mask(1, 0, 0.1, seed)[0]) for seed in range(2000))
    assert 120 <= picked <= 280  # Binomial(2000, 0.1): mean 200, sd 13.4


# ------------------------------------------------------------------ page tables with sizes
def _rewrite(table, out, edit, *, meta=None):
    t = pq.read_table(table)
    md = t.schema.metadata
    if meta is not None:
        m = json.loads(md[b"pagecore"])
        m.update(meta)
        md = {**md, b"pagecore": json.dumps(m).encode()}
    pq.write_table(edit(t).replace_schema_metadata(md), out)
    return out


def _set(name, values, typ):
    def edit(t):
        return t.set_column(t.schema.get_field_index(name), name, pa.array(values(t), typ))

    return edit


def _csize(t):
    return t.column("csize_lz4").to_numpy().astype(np.int64)


def _first_nonzero_dup(t):
    """Two rows (i, j) of one non-zero content."""
    h = t.column("hash").to_numpy()
    z = t.column("zero").to_numpy(zero_copy_only=False)
    for i in np.flatnonzero(~z):
        j = np.flatnonzero(h == h[i])
        if len(j) > 1:
            return int(j[0]), int(j[1])
    raise AssertionError("no duplicated non-zero page")


def _two_sizes(t):
    i, j = _first_nonzero_dup(t)
    cs = _csize(t)
    cs[j] = cs[i] + 1
    return cs


def _zero_not_same(t):
    s = t.column("same_filled").to_numpy(zero_copy_only=False).copy()
    s[int(np.argmax(t.column("zero").to_numpy(zero_copy_only=False)))] = False
    return s


def _dup_frame(t):
    g = t.column("gpfn").to_numpy().copy()
    g[1] = g[0]
    return g


HOSTILE = {
    # name: (edit of the table, metadata changes, words the one-line error must hold)
    "cut": (lambda t: t.slice(0, 100), None, "metadata records 400 pages"),
    "negative": (_set("csize_lz4", lambda t: np.full(t.num_rows, -5), pa.int64()), None, "impossible sizes"),
    "zero size": (_set("csize_lz4", lambda t: np.zeros(t.num_rows), pa.uint16()), None, "impossible sizes"),
    "above the bound": (
        _set("csize_lz4", lambda t: np.where(np.arange(t.num_rows) == 3, 5000, _csize(t)), pa.uint16()),
        None,
        "impossible sizes (row 3: 5,000 bytes)",
    ),
    "null size": (
        _set("csize_lz4", lambda t: [None] + [100] * (t.num_rows - 1), pa.uint16()),
        None,
        "'csize_lz4' has 1 null",
    ),
    "float sizes": (_set("csize_lz4", lambda t: _csize(t) + 0.5, pa.float64()), None, "'csize_lz4' has type double"),
    "null same_filled": (
        _set("same_filled", lambda t: [None] + [False] * (t.num_rows - 1), pa.bool_()),
        None,
        "'same_filled' has 1 null",
    ),
    "int same_filled": (
        _set("same_filled", lambda t: np.zeros(t.num_rows, np.int8), pa.int8()),
        None,
        "'same_filled' has type int8",
    ),
    "zero not same-filled": (_set("same_filled", _zero_not_same, pa.bool_()), None, "not marked same_filled"),
    "one content two sizes": (_set("csize_lz4", _two_sizes, pa.uint16()), None, "one content two sizes"),
    "no zero column": (lambda t: t.drop_columns(["zero"]), None, "missing column 'zero'"),
    "2 MiB pages": (lambda t: t, {"page_size": 2097152}, "page_size 2097152"),
    "frame twice": (_set("gpfn", _dup_frame, pa.uint64()), None, "occurs more than once"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_sized_table_is_refused(guest, tmp_path, capsys, case):
    _, table = guest
    edit, meta, words = HOSTILE[case]
    bad = _rewrite(table, tmp_path / "bad.parquet", edit, meta=meta)
    line = refused(["compress", str(bad), "--algorithm", "lz4", "--format", "json"], capsys, out=tmp_path / "r.json")
    assert str(bad) in line and words in line, line


@pytest.mark.parametrize("sample", [None, "0.5"])
def test_the_hashed_table_itself_is_accepted(guest, tmp_path, capsys, sample):
    """The baseline of the cases above: the untouched table (rewritten the same way) passes and
    gives what the dump gives."""
    dump, table = guest
    same = _rewrite(table, tmp_path / "same.parquet", lambda t: t)
    opts = ["--algorithm", "lz4", "--format", "json"] + (["--sample", sample] if sample else [])
    capsys.readouterr()
    assert main(["compress", str(same), *opts]) == 0
    from_table = json.loads(capsys.readouterr().out)
    assert main(["compress", str(dump), *opts]) == 0
    from_dump = json.loads(capsys.readouterr().out)
    key = "zram_estimate" if sample else "zram"
    assert from_table[key] == from_dump[key]


def test_size_bounds_hold_for_incompressible_pages():
    """The bound each check uses is no lower than what the compressors give a random page."""
    from pagecore.pages.compress import compressed_sizes

    pages = np.random.default_rng(3).integers(0, 256, (8, PS), dtype=np.uint8)
    for alg in ("lz4", "lzo", "lzo-rle", "zstd"):
        got = compressed_sizes(pages, alg)
        assert (got > PS).all() and (got <= size_bound(alg)).all(), (alg, got.max(), size_bound(alg))
    assert zsmalloc_classes().huge_class_size < PS


def test_the_help_states_the_sample_thresholds(capsys):
    with pytest.raises(SystemExit):
        main(["compress", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"fewer than {MIN_SAMPLE_PAGES} sampled pages are refused" in text
    assert f"fewer than {RELIABLE_SAMPLE_PAGES} flagged unreliable" in text


def test_two_tables_of_one_vm_name_are_refused(guest, tmp_path, capsys):
    """Two dumps hashed under one VM name were counted as one VM: their common pages as intra-VM
    sharing, exit 0 (``share`` refuses them too)."""
    dump, _ = guest
    other = tmp_path / "other.raw"
    other.write_bytes(make_pages(64, 8).tobytes())
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    hash_dump(dump, a, "same", show_progress=False)
    hash_dump(other, b, "same", show_progress=False)
    line = refused(["compress", str(a), str(b)], capsys, out=tmp_path / "r.json")
    assert "VM 'same' is also in" in line and "--vm NAME" in line
    hash_dump(other, b, "other", show_progress=False)
    capsys.readouterr()
    assert main(["compress", str(a), str(b), "--format", "json"]) == 0
