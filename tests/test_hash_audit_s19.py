"""Session 19's audit of `pagecore hash` and the pages package behind it (page tables, their
metadata, keyed hashing, hash-then-verify) as a careless or hostile user runs them: each test is
a case that once gave a misleading error, a lost file or a wrong-looking report, built from the
command line that showed it.
"""

from __future__ import annotations

import numpy as np
import pytest
from cli_helpers import one_line_error_text
from cli_helpers import tag_page as _page

from pagecore.cli import main


@pytest.fixture
def guest(tmp_path):
    """A raw dump of pages A A B 0 C A, its unkeyed and keyed tables, and two keys."""
    raw = tmp_path / "g.raw"
    raw.write_bytes(b"".join(_page(t) for t in (1, 1, 2, 0, 3, 1)))
    keys = []
    for name, seed in (("k1", 11), ("k2", 12)):
        k = tmp_path / name
        k.write_bytes(np.random.default_rng(seed).integers(65, 91, 32, dtype=np.uint8).tobytes())
        keys.append(str(k))
    unkeyed, keyed = tmp_path / "u.parquet", tmp_path / "k.parquet"
    assert main(["hash", "-q", str(raw), "-o", str(unkeyed)]) == 0
    assert main(["hash", "-q", str(raw), "-o", str(keyed), "--key-file", keys[0]]) == 0
    return raw, str(unkeyed), str(keyed), keys


# ------------------------------------------------------------------------------ keys and verification
def test_a_key_for_an_unkeyed_table_is_not_a_changed_dump(guest, capsys):
    """`share unkeyed.parquet --key-file K --verify` said "dump changed since hashing ... (sample
    digest)": the sample digest was taken with the key given although the table is unkeyed. The
    dump did not change; the key is the mistake, and the line says so."""
    raw, unkeyed, _, keys = guest
    before = raw.read_bytes()
    assert main(["share", unkeyed, "--key-file", keys[0], "--verify"]) == 1
    line = one_line_error_text(capsys)
    assert "dump changed" not in line and "unkeyed" in line and "without --key-env/--key-file" in line
    assert raw.read_bytes() == before
    # without --verify the report is unverified, with the same reason (not "dump changed")
    import json

    assert main(["share", unkeyed, "--key-file", keys[0], "--format", "json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["verification"]["verified"] is False and "unkeyed" in rep["verification"]["reason"]


def test_a_wrong_key_for_a_keyed_table_is_named_as_such(guest, capsys):
    """`share keyed.parquet --key-file OTHER --verify` said "pass its key (--key-env/--key-file)"
    although a key was passed: the line now says the key given is not the one it was hashed with."""
    _, _, keyed, keys = guest
    assert main(["share", keyed, "--key-file", keys[1], "--verify"]) == 1
    line = one_line_error_text(capsys)
    assert "dump changed" not in line and "not the key" in line
    assert main(["share", keyed, "--verify"]) == 1  # no key at all: ask for it
    assert "pass its key" in one_line_error_text(capsys)
    assert main(["share", keyed, "--key-file", keys[0], "--verify"]) == 0  # its own key verifies


def test_locate_dump_never_blames_the_dump_for_a_wrong_key(guest):
    """The library: `locate_dump(table, meta, key=K)` of an unkeyed table (or of a keyed table and
    another key) took the sample digest with K and raised DumpChanged for an unchanged dump."""
    from pagecore.pages.hashing import PageKey
    from pagecore.pages.provenance import locate_dump
    from pagecore.pages.tables import page_table_metadata

    raw, unkeyed, keyed, keys = guest
    k1, k2 = PageKey.from_file(keys[0]), PageKey.from_file(keys[1])
    assert locate_dump(unkeyed, page_table_metadata(unkeyed), key=k1) == raw
    assert locate_dump(keyed, page_table_metadata(keyed), key=k2) == raw
    assert locate_dump(keyed, page_table_metadata(keyed), key=k1) == raw


# ------------------------------------------------------------------------------ outputs
def _old_table(tmp_path, monkeypatch):
    """d/g.raw and d/g.parquet recording ``source_path`` "g.raw" (relative), as tables of older
    versions did when hashed in the dump's directory; the current directory is then tmp_path."""
    from pagecore.pages.ingest import hash_dump
    from pagecore.pages.tables import PageTableWriter, page_table_metadata, read_page_table

    d = tmp_path / "d"
    d.mkdir()
    raw = d / "g.raw"
    raw.write_bytes(b"".join(_page(t) for t in (1, 1, 2, 0)))
    new = tmp_path / "new.parquet"
    hash_dump(raw, new, "g", show_progress=False)
    meta = {k: v for k, v in page_table_metadata(new).items() if k not in ("vm", "pagecore_version")}
    meta["source_path"] = "g.raw"
    t = read_page_table(new)
    with PageTableWriter(d / "g.parquet", "g", meta) as w:
        w.write(t["gpfn"].to_numpy(), t["hash"].to_numpy(), t["zero"].to_numpy())
    new.unlink()
    monkeypatch.chdir(tmp_path)
    return raw


@pytest.mark.parametrize("cmd", ["share", "ksm"])
def test_the_relative_dump_of_an_old_table_is_never_an_output(tmp_path, monkeypatch, capsys, cmd):
    """A table of an older version records its dump as "g.raw", relative to where it was hashed:
    from another directory `share d/g.parquet --format json -o d/g.raw` did not see the dump as an
    input (it looked for ./g.raw) and replaced it with the report, exit 0."""
    raw = _old_table(tmp_path, monkeypatch)
    before = raw.read_bytes()
    assert main([cmd, "d/g.parquet", "--format", "json", "-o", "d/g.raw"]) == 1
    assert "inputs are never overwritten" in one_line_error_text(capsys)
    assert raw.read_bytes() == before


# ------------------------------------------------------------------------------ VM names
@pytest.mark.parametrize("vm", ["a\nall", "web\t1", "x\x1b[31m", "web1 ", " web1", "a\u200bb"])
def test_unprintable_or_padded_vm_names_are_refused(tmp_path, capsys, vm):
    """`hash g.raw --vm $'a\\nall'` wrote the table (exit 0), and `share --by vm` then printed a
    row "all alone" that was no set; "web1 " and "web1" were two VMs that read the same."""
    raw = tmp_path / "g.raw"
    raw.write_bytes(_page(1) + _page(0))
    out = tmp_path / "g.parquet"
    assert main(["hash", "-q", str(raw), "-o", str(out), "--vm", vm]) == 1
    assert "vm: " in one_line_error_text(capsys)
    assert not out.exists()


def test_a_dump_named_with_a_line_break_needs_vm(tmp_path, capsys):
    """The default VM name is the file stem: the same check, and --vm names it instead."""
    raw = tmp_path / "a\nb.raw"
    raw.write_bytes(_page(1))
    out = tmp_path / "g.parquet"
    assert main(["hash", "-q", str(raw), "-o", str(out)]) == 1
    assert "--vm NAME" in one_line_error_text(capsys)
    assert main(["hash", "-q", str(raw), "-o", str(out), "--vm", "ab"]) == 0


# ------------------------------------------------------------------------------ --compress
def test_an_algorithm_named_twice_gives_one_column(tmp_path):
    """`hash g.raw --compress lz4 --compress lz4` wrote two csize_lz4 columns (exit 0): a table
    that `page_table_frame` and pandas refuse ("Multiple matches for FieldRef.Name(csize_lz4)")."""
    import pyarrow.parquet as pq

    from pagecore.pages.tables import page_table_frame, page_table_metadata

    raw = tmp_path / "g.raw"
    raw.write_bytes(_page(1) + _page(0) + _page(1))
    out = tmp_path / "g.parquet"
    assert main(["hash", "-q", str(raw), "-o", str(out), "--compress", "lz4", "--compress", "zstd",
                 "--compress", "lz4"]) == 0  # fmt: skip
    assert pq.read_schema(out).names == ["vm", "gpfn", "hash", "zero", "csize_lz4", "csize_zstd", "same_filled"]
    assert page_table_metadata(out)["compress_algorithms"] == ["lz4", "zstd"]
    assert len(page_table_frame(out)) == 3


# ------------------------------------------------------------------------------ a dump that changes
@pytest.mark.parametrize("how", ["write", "replace"])
def test_a_dump_written_while_it_is_hashed_is_refused(tmp_path, monkeypatch, how):
    """A dump written in place (same size: the readers' size check passes) or renamed over while it
    was hashed gave a table of pages from two states of the file, exit 0, recording the size and
    sample digest of the last state. Now refused; no table is written."""
    import os

    from pagecore.errors import InputError
    from pagecore.pages import ingest

    raw = tmp_path / "g.raw"
    raw.write_bytes(b"".join(_page(t) for t in (1, 2, 3, 4, 5, 6)))
    real = ingest.hashed_chunks

    def changing(reader, key=None, threads=None, **kw):
        for i, item in enumerate(real(reader, key, threads, **kw)):
            yield item
            if i == 0:  # page 0 is hashed: change it under the reader
                st = raw.stat()
                if how == "write":
                    with open(raw, "r+b") as fh:
                        fh.write(_page(9))
                else:
                    other = tmp_path / "new.raw"
                    other.write_bytes(_page(9) + raw.read_bytes()[4096:])
                    os.replace(other, raw)
                os.utime(raw, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # past a coarse clock's tick

    monkeypatch.setattr(ingest, "hashed_chunks", changing)
    out = tmp_path / "g.parquet"
    with pytest.raises(InputError, match="written or replaced while it was hashed"):
        ingest.hash_dump(raw, out, "g", chunk_pages=2, show_progress=False)
    assert not out.exists()
    monkeypatch.setattr(ingest, "hashed_chunks", real)
    ingest.hash_dump(raw, out, "g", chunk_pages=2, show_progress=False)  # left alone: hashed
    assert out.exists()


@pytest.mark.parametrize("name", ["g.pq", "g.table", "g"])
def test_the_dump_of_a_table_not_named_parquet_is_never_an_output(tmp_path, monkeypatch, capsys, name):
    """`hash g.raw -o g.pq` is accepted, but outputs were checked against the dumps of inputs named
    *.parquet only: `share g.pq --format json -o g.raw` replaced the dump with the report, exit 0."""
    monkeypatch.chdir(tmp_path)
    raw = tmp_path / "g.raw"
    raw.write_bytes(b"".join(_page(t) for t in (1, 1, 2, 0)))
    before = raw.read_bytes()
    assert main(["hash", "-q", "g.raw", "-o", name]) == 0
    assert main(["share", name, "--format", "json", "-o", "g.raw"]) == 1
    assert "inputs are never overwritten" in one_line_error_text(capsys)
    assert raw.read_bytes() == before


def test_a_page_table_is_not_hashed_as_a_raw_dump(tmp_path, capsys):
    """`hash t.parquet -o x.parquet` of a Parquet file whose size is a whole number of pages (a
    page table given by mistake) hashed it as a raw guest, exit 0."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq_file = tmp_path / "t.parquet"

    def write(n: int) -> int:
        pq.write_table(pa.table({"a": np.zeros(n, np.uint8)}), pq_file, compression="none", use_dictionary=False)
        return pq_file.stat().st_size

    n = 4000 + (-write(4000)) % 4096  # one byte a row: a Parquet file of a whole number of 4 KiB pages
    while write(n) % 4096:
        n += 1
    assert pq_file.stat().st_size % 4096 == 0
    out = tmp_path / "x.parquet"
    assert main(["hash", "-q", str(pq_file), "-o", str(out)]) == 1
    assert "magic bytes of a Parquet file (a page table?), not a memory dump" in one_line_error_text(capsys)
    assert not out.exists()


# ------------------------------------------------------------------------------ determinism
def test_the_table_does_not_depend_on_chunk_pages_or_threads(tmp_path, monkeypatch):
    """Each chunk was written as its own row group: `hash --chunk-pages 1` of a 128 MiB dump wrote
    a 23 MB table (400 KB with the default) that `share` took 48 s to read, and tables of one
    dump differed byte for byte with the chunk size. Rows now go in row groups of ROW_GROUP rows
    (small here, so groups span chunks and chunks span groups), the same bytes for every chunk
    size and thread count, and every row is the page's hash (the hashing buffers are reused
    between chunks: rows kept for a later row group must be copies)."""
    import pyarrow.parquet as pq

    from pagecore.pages.hashing import hash_pages
    from pagecore.pages.tables import PageTableWriter

    monkeypatch.setattr(PageTableWriter, "ROW_GROUP", 5)
    pages = np.frombuffer(b"".join(_page(t % 7) for t in range(23)), np.uint8).reshape(23, 4096)
    raw = tmp_path / "g.raw"
    raw.write_bytes(pages.tobytes())
    outs = []
    for chunk, threads in ((1, 1), (3, 2), (7, 1), (23, 2), (64, 1)):
        out = tmp_path / f"g{chunk}.parquet"
        assert main(["hash", "-q", str(raw), "-o", str(out), "--vm", "g", "--chunk-pages", str(chunk),
                     "--threads", str(threads), "--compress", "lz4"]) == 0  # fmt: skip
        outs.append(out.read_bytes())
        f = pq.ParquetFile(out)
        assert [f.metadata.row_group(i).num_rows for i in range(f.metadata.num_row_groups)] == [5, 5, 5, 5, 3]
    assert all(o == outs[0] for o in outs[1:])
    t = pq.read_table(tmp_path / "g1.parquet")
    h, z = hash_pages(pages)
    assert t["gpfn"].to_pylist() == list(range(23))
    assert t["hash"].to_numpy().tolist() == h.tolist() and t["zero"].to_pylist() == z.tolist()


@pytest.mark.parametrize("dump", [".", "/"])
def test_a_directory_as_the_dump_is_named_as_such(tmp_path, monkeypatch, capsys, dump):
    """`hash . -o t.parquet` said "vm: expected a VM name (non-blank text), got ''" (the default
    VM name is the file stem, and "." has none) instead of what is wrong: the dump is a directory."""
    monkeypatch.chdir(tmp_path)
    assert main(["hash", "-q", dump, "-o", "t.parquet"]) == 1
    assert "is a directory, not a memory dump" in one_line_error_text(capsys)


def test_compress_and_host_know_a_page_table_by_its_content(guest, tmp_path, capsys):
    """`compress` and `host` told page tables from dumps by the `.parquet` name: a table written as
    `-o g.pq` was read as a dump (refused as a Parquet file, or, before that, hashed as raw guest
    pages). They now look at the file's magic, as `share` does (session 19)."""
    import json
    import shutil

    _, unkeyed, _, _ = guest
    pq_named = tmp_path / "u.pq"
    shutil.copy(unkeyed, pq_named)
    got = {}
    for path in (unkeyed, str(pq_named)):
        assert main(["compress", path, "--format", "json"]) == 0, capsys.readouterr().err
        rep = json.loads(capsys.readouterr().out)
        rep.pop("inputs", None)
        rep.pop("timing", None)
        got[path] = rep
    assert got[unkeyed] == got[str(pq_named)]
    rows = {}
    for path in (unkeyed, str(pq_named)):
        assert main(["host", path, "--memory", "64M", "--policy", "esx2002", "--format", "json"]) == 0
        rows[path] = json.loads(capsys.readouterr().out)["rows"]
    assert rows[unkeyed] == rows[str(pq_named)]
