"""Raw dump -> page table: streaming, read-only, atomic outputs, provenance, clear errors."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
from slow_twins import is_zero, pcx64

from pagecore.dumps import detect_format, open_dump
from pagecore.errors import InputError
from pagecore.pages.ingest import hash_dump
from pagecore.pages.tables import page_table_metadata, read_page_table


@pytest.fixture
def raw_dump(tmp_path, rng):
    pages = rng.integers(0, 256, size=(37, 4096), dtype=np.uint8)
    pages[3] = 0
    pages[10] = pages[11]
    path = tmp_path / "guest.raw"
    path.write_bytes(pages.tobytes())
    os.chmod(path, stat.S_IRUSR)  # read-only, as a user's dump may be
    return path, pages


def test_raw_reader_streams_every_page_in_chunks(raw_dump):
    path, pages = raw_dump
    with open_dump(path, chunk_pages=8) as r:
        chunks = list(r)
        assert r.stats.pages_read == 37
    assert [len(c) for c in chunks] == [8, 8, 8, 8, 5]
    gpfn = np.concatenate([c.gpfn for c in chunks])
    assert gpfn.tolist() == list(range(37))
    assert all(not c.pages.flags.writeable for c in chunks)  # zero-copy read-only views
    assert np.array_equal(np.vstack([c.pages for c in chunks]), pages)


def test_detect_format(raw_dump, tmp_path):
    assert detect_format(raw_dump[0]) == "raw"
    odd = tmp_path / "odd.bin"
    odd.write_bytes(b"x" * 5000)
    with pytest.raises(InputError, match=r"unrecognised memory dump format.*raw"):
        detect_format(odd)


def test_hash_dump_writes_page_table_with_provenance(raw_dump, tmp_path):
    path, pages = raw_dump
    before = path.read_bytes()
    out = tmp_path / "pages.parquet"
    meta = hash_dump(path, out, "guest", chunk_pages=5, show_progress=False)
    assert path.read_bytes() == before  # input untouched
    t = read_page_table(out).to_pandas()
    assert t["gpfn"].tolist() == list(range(37))
    assert set(t["vm"].astype(str)) == {"guest"}
    for i in (0, 3, 10, 36):
        assert int(t["hash"][i]) == pcx64(pages[i].tobytes())
        assert bool(t["zero"][i]) == is_zero(pages[i].tobytes())
    stored = page_table_metadata(out)
    for k in (
        "format",
        "source_size",
        "pages_read",
        "pages_skipped",
        "pages_excluded",
        "hash_algorithm",
        "hash_key_id",
    ):
        assert stored[k] == meta[k], k
    assert stored["format"] == "raw" and stored["pages_read"] == 37 and stored["hash_algorithm"] == "pcx64-v1"
    assert stored["verified"] is False and stored["hash_key_id"] == "none"


def test_threads_and_chunking_do_not_change_output(raw_dump, tmp_path):
    path, _ = raw_dump
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    hash_dump(path, a, "g", chunk_pages=3, threads=1, show_progress=False)
    hash_dump(path, b, "g", chunk_pages=64, threads=2, show_progress=False)
    ta, tb = read_page_table(a), read_page_table(b)
    assert ta.equals(tb)


@pytest.mark.parametrize(
    "content,match",
    [
        (b"", "file is empty"),
        (b"\x01" * 4097, "not a multiple of the 4096-byte page size"),
    ],
    ids=["empty", "partial-page"],
)
def test_bad_raw_input_errors_and_leaves_no_output(tmp_path, content, match):
    bad = tmp_path / "bad.raw"
    bad.write_bytes(content)
    out = tmp_path / "out.parquet"
    with pytest.raises(InputError, match=match) as ei:
        hash_dump(bad, out, "g", format="raw", show_progress=False)
    assert str(bad) in str(ei.value)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.parquet")]


def test_partial_page_error_names_offset_and_skip_flag_counts_it(tmp_path):
    bad = tmp_path / "bad.raw"
    bad.write_bytes(b"\x01" * (4096 * 2 + 100))
    with pytest.raises(InputError) as ei:
        hash_dump(bad, tmp_path / "o.parquet", "g", format="raw", show_progress=False)
    assert "8,192" in str(ei.value) and "--skip-bad-pages" in str(ei.value)
    meta = hash_dump(bad, tmp_path / "o.parquet", "g", format="raw", skip_bad_pages=True, show_progress=False)
    assert meta["pages_read"] == 2 and meta["pages_skipped"] == 1 and meta["bytes_skipped"] == 100


def test_directory_and_missing_path(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        open_dump(tmp_path)
    with pytest.raises(InputError, match="no such file"):
        open_dump(tmp_path / "nope.raw")


def test_unknown_format_name(raw_dump):
    with pytest.raises(InputError, match="unknown dump format 'vhdx'"):
        open_dump(raw_dump[0], format="vhdx")


def test_keyed_hash_is_recorded_by_id_only(raw_dump, tmp_path):
    from pagecore.pages.hashing import PageKey

    out = tmp_path / "k.parquet"
    hash_dump(raw_dump[0], out, "g", key=PageKey.from_secret(b"topsecret"), show_progress=False)
    assert b"topsecret" not in out.read_bytes()
    meta = page_table_metadata(out)
    assert meta["hash_key_id"] == PageKey.from_secret(b"topsecret").key_id


def test_read_page_table_rejects_wrong_files(tmp_path):
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet")
    with pytest.raises(InputError, match="not a readable Parquet page table"):
        read_page_table(junk)
    with pytest.raises(InputError, match="no such page table"):
        read_page_table(tmp_path / "missing.parquet")


def test_vm_index_equals_numpy_unique():
    """pages.tables.vm_index (Arrow dictionary encoding) gives numpy.unique's names and inverse,
    for plain and dictionary columns, several chunks, unused dictionary entries, no rows."""
    import pyarrow as pa

    from pagecore.pages.tables import vm_index

    rng = np.random.default_rng(1)
    pool = np.array(["b", "a", "vm10", "vm2", "é", "a b", ""])
    for trial in range(60):
        v = pool[rng.integers(0, int(rng.integers(1, len(pool) + 1)), size=int(rng.integers(0, 50)))]
        cut = len(v) // 2
        plain = pa.chunked_array([pa.array(v[:cut].tolist(), pa.string()), pa.array(v[cut:].tolist(), pa.string())])
        want_names, want_idx = np.unique(v.astype(str), return_inverse=True)
        names, idx = vm_index(plain)
        assert names == want_names.tolist() and np.array_equal(idx, want_idx.reshape(-1)), trial
        codes = rng.integers(0, 2, size=len(v)).astype(np.int32)  # 'x' is never used
        d = pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(["z", "y", "x"]))
        want_names, want_idx = np.unique(np.array(d.to_pylist(), dtype=str), return_inverse=True)
        names, idx = vm_index(d)
        assert names == want_names.tolist() and np.array_equal(idx, want_idx.reshape(-1)), trial


@pytest.mark.parametrize("fmt", ["raw", "elf", "lime", "kdump"])
@pytest.mark.parametrize("threads", [1, 2])
def test_hashed_chunks_overlapping_read_and_hash_match_the_twin(tmp_path, fmt, threads):
    """hashed_chunks hashes chunk i while the reader makes chunk i + 1 (two output buffers take
    turns, mapped chunks are released two requests later): every page's hash, checked against
    the twin while the following chunks are read."""
    from dumps_helpers import make_pages, write_dump

    from pagecore.pages.ingest import hashed_chunks

    pages = make_pages(23, seed=7)
    pages[4] = 0
    pfns = np.arange(23) if fmt != "kdump" else np.arange(23) * 2
    path = write_dump(fmt, tmp_path / f"g.{fmt}", pfns, pages)
    seen = {}
    with open_dump(path, chunk_pages=4) as r:
        held = []
        for chunk, h, z in hashed_chunks(r, threads=threads):
            held.append(chunk)  # the pages of earlier chunks must still read right
            for g, p, hh, zz in zip(chunk.gpfn.tolist(), chunk.pages, h.tolist(), z.tolist(), strict=True):
                seen[g] = (hh, zz)
                assert hh == pcx64(p.tobytes()) and zz == is_zero(p.tobytes())
        for chunk in held:  # never overwritten by later chunks
            for g, p in zip(chunk.gpfn.tolist(), chunk.pages, strict=True):
                assert seen[g][0] == pcx64(p.tobytes())
    assert sorted(seen) == sorted(pfns.tolist())
    for g, p in zip(pfns.tolist(), pages, strict=True):
        assert seen[g] == (pcx64(p.tobytes()), is_zero(p.tobytes()))


def test_hashed_chunks_left_early_waits_for_the_hash_in_flight(tmp_path):
    from dumps_helpers import make_pages, write_dump

    from pagecore.pages.ingest import hashed_chunks

    path = write_dump("raw", tmp_path / "g.raw", np.arange(40), make_pages(40, seed=3))
    with open_dump(path, chunk_pages=4) as r:
        gen = hashed_chunks(r, threads=2)
        chunk, h, _ = next(gen)
        assert h[0] == pcx64(chunk.pages[0].tobytes())
        gen.close()  # the next chunk's hash was started; closing waits for it
