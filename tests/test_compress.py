"""Per-page compressed sizes and the zram / zswap / ESXi / ladder models (issue 16)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import lz4.block
import lzokay
import numpy as np
import pandas as pd
import pytest
import zstandard
from compress_reference import lz4_kernel_reference, lzo1x_1_reference
from dumps_helpers import make_pages

from pagecore.dumps.base import PageChunk
from pagecore.errors import ConfigError, InputError
from pagecore.pages.compress import (
    LZO_MAX_INPUT,
    ContentTable,
    compressed_sizes,
    lz4_kernel_compress,
    lz4_kernel_size,
    lzo1x_1_compress,
    new_content_facts,
    page_sizes,
    same_filled,
    sample_mask,
)
from pagecore.sharing.compress import (
    chain_size,
    estimate_zram,
    esxi_compression,
    reclamation_ladder,
    sorted_vm_codes,
    vm_codes_sorted,
    zram_mm_stat,
    zsmalloc_classes,
    zsmalloc_pages,
    zswap_pool,
)

PS = 4096


def mixed_pages(n: int, seed: int) -> np.ndarray:
    """make_pages plus same-filled, sparse, text-like and short-period pages."""
    rng = np.random.default_rng(seed)
    base = make_pages(n, seed)
    extra = np.zeros((n, PS), np.uint8)
    for i in range(n):
        k = i % 6
        if k == 0:
            extra[i] = np.frombuffer(np.full(PS // 8, rng.integers(0, 2**63), np.uint64).tobytes(), np.uint8)
        elif k == 1:
            extra[i, rng.integers(0, PS, 40)] = rng.integers(1, 256, 40)
        elif k == 2:
            extra[i] = rng.integers(0, 3, PS)
        elif k == 3:
            extra[i] = np.tile(rng.integers(0, 256, int(rng.integers(1, 300))), PS)[:PS]
        elif k == 4:
            extra[i] = (np.arange(PS) // int(rng.integers(1, 40))) % 256
        else:
            extra[i, : PS // 2] = rng.integers(0, 256, PS // 2)
    return np.ascontiguousarray(np.vstack([base, extra]))


# ------------------------------------------------------------------ same-filled
def slow_same_filled(page: np.ndarray) -> bool:
    words = [bytes(page[i : i + 8]) for i in range(0, PS, 8)]
    return all(w == words[0] for w in words)


@pytest.mark.parametrize("threads", [1, 2])
def test_same_filled_matches_slow_twin(threads):
    pages = mixed_pages(60, 3)
    same, value = same_filled(pages, threads=threads)
    assert same.tolist() == [slow_same_filled(p) for p in pages]
    assert (value == pages.view(np.uint64)[:, 0]).all()
    rows = np.arange(59, -1, -2)
    assert same_filled(pages, threads=threads, rows=rows)[0].tolist() == [slow_same_filled(pages[r]) for r in rows]


def test_same_filled_edge_cases():
    assert same_filled(np.zeros((0, PS), np.uint8))[0].shape == (0,)
    p = np.zeros((4, PS), np.uint8)
    p[1] = 7  # every byte 7: one repeated word
    p[2, :8] = np.arange(8)  # a word repeated... only the first: not same-filled
    p[3] = np.frombuffer(np.full(PS // 8, 0x0102030405060708, np.uint64).tobytes(), np.uint8)
    p[3, -1] ^= 1  # last byte differs
    assert same_filled(p)[0].tolist() == [True, True, False, False]
    # a 4-byte pattern repeated is same-filled in 8-byte words too; a 16-byte one is not
    q = np.tile(np.arange(16, dtype=np.uint8), (2, PS // 16))
    q[0] = np.tile(np.arange(4, dtype=np.uint8), PS // 4)
    assert same_filled(np.ascontiguousarray(q))[0].tolist() == [True, False]


# ------------------------------------------------------------------ LZO1X-1
def test_lzo_output_decompresses_to_the_input():
    """Plain LZO1X-1 output is a valid LZO1X stream: lzokay decompresses it back."""
    pages = mixed_pages(40, 5)
    for p in pages:
        for n in (0, 1, 5, 20, 21, 22, 100, 1000, PS):
            data = p[:n].tobytes()
            out = lzo1x_1_compress(data)
            assert lzokay.decompress(out, n) == data


def test_kernel_lz4_output_decompresses_to_the_input():
    """The kernel-LZ4 port writes valid LZ4 blocks: liblz4 (PyPI lz4) decompresses them."""
    for p in mixed_pages(40, 6):
        for n in (0, 1, 12, 13, 14, 100, 1000, PS):
            data = p[:n].tobytes()
            out = lz4_kernel_compress(data)
            assert lz4.block.decompress(out, uncompressed_size=n) == data
    # a zero page: token, 1 literal, offset, a match of 4096-1-5 bytes (length code 15 + 4071 in
    # 15 bytes of 255 and one of 246), then a last token and the 5 last literals
    assert len(lz4_kernel_compress(bytes(PS))) == 1 + 1 + 2 + (4071 // 255 + 1) + 1 + 5


def lz4_edge_inputs() -> list[bytes]:
    """Named edge cases of LZ4_compress_generic's control flow."""
    rng = np.random.default_rng(12)
    rand = rng.integers(0, 256, PS).astype(np.uint8)
    out = {
        "empty": b"",
        "below LZ4_minLength (12 bytes)": bytes(range(12)),
        "LZ4_minLength (13 bytes)": bytes(13),
        "zero page": bytes(PS),
        "0xff page": b"\xff" * PS,
        "random page (no match: all literals, > 15 + 255 of them)": rand.tobytes(),
        "random page whose first word recurs (a match at position 0 of the zeroed table)": (
            rand[:4].tobytes() + rand[4:2000].tobytes() + rand[:4].tobytes() + rand[2004:].tobytes()
        ),
        "match running into the last 5 bytes (matchlimit)": rand[:100].tobytes() * 2,
        "match ending exactly at mflimit": rand[:50].tobytes() + rand[:50].tobytes() + rand[:12].tobytes(),
        "long literal run then a long match (length bytes > 255)": rand[:700].tobytes() + bytes(PS - 700),
        "catch-up backwards over equal bytes": b"ab" * 7 + rand[:300].tobytes() + b"ab" * 7 + rand[:300].tobytes(),
        "half random, half zero": rand[: PS // 2].tobytes() + bytes(PS // 2),
        "64 KiB - 1 of text (16-bit positions near their limit)": (b"lorem ipsum dolor sit amet " * 2500)[:65535],
        "64 KiB + 10, the largest input that uses the 16-bit table": (
            np.random.default_rng(13).integers(0, 4, 65546).astype(np.uint8).tobytes()
        ),
    }
    for period in range(1, 9):
        out[f"period {period}"] = (rand[:period].tobytes() * PS)[:PS]
    return list(out.items())


@pytest.mark.parametrize(("name", "data"), lz4_edge_inputs(), ids=[n for n, _ in lz4_edge_inputs()])
def test_kernel_lz4_port_equals_the_python_transliteration_on_edge_cases(name, data):
    """The Numba port writes exactly the bytes of the kernel's LZ4_compress_generic (byU16),
    transliterated line by line into slow Python (tests/compress_reference.py)."""
    want = lz4_kernel_reference(data)
    assert lz4_kernel_compress(data) == want, name
    assert lz4_kernel_size(data) == len(want), name
    assert lz4.block.decompress(want, uncompressed_size=len(data)) == data


def test_kernel_lz4_port_equals_the_python_transliteration_on_random_pages():
    pages = mixed_pages(24, 21)
    rng = np.random.default_rng(4)
    want = []
    for p in pages:
        n = int(rng.choice([PS, PS, int(rng.integers(13, PS))]))
        data = p[:n].tobytes()
        ref = lz4_kernel_reference(data)
        assert lz4_kernel_compress(data) == ref
        assert lz4_kernel_size(data) == len(ref)
        want.append(len(lz4_kernel_reference(p.tobytes())))
    # the size-only fast path, serial and threaded, reading rows in place
    assert compressed_sizes(pages, "lz4", threads=1).tolist() == want
    assert compressed_sizes(pages, "lz4", threads=2).tolist() == want


def lzo_edge_inputs() -> list[tuple[str, bytes]]:
    """The LZ4 edge cases that fit one LZO1X-1 block, plus LZO's own: inputs around the 20-byte
    minimum, zero runs for lzo-rle (shorter than 4, at the run cap of 2051, reaching ip_end) and
    far matches (M4 distances > 16 KiB)."""
    rng = np.random.default_rng(15)
    rand = rng.integers(1, 256, 40000).astype(np.uint8).tobytes()
    out = [(n, d) for n, d in lz4_edge_inputs() if len(d) < LZO_MAX_INPUT]
    out += [
        ("20 bytes (no block)", rand[:20]),
        ("21 bytes (one block)", rand[:21]),
        ("zero runs of 1..5 bytes between random bytes", b"".join(rand[i : i + 7] + bytes(i % 6) for i in range(600))),
        ("a zero run longer than MAX_ZERO_RUN_LENGTH", rand[:50] + bytes(3000) + rand[50:1100]),
        ("a zero run reaching ip_end", rand[:100] + bytes(200)),
        ("M4 matches (distance > 16 KiB)", rand[:20000] + rand[:300] + rand[20300:20400]),
    ]
    # lzo-rle cuts an M4 match of 261..264 bytes at distance 0x4000 + 0x403f to 260 (ambiguous code);
    # a period-8 filler keeps the literal runs short so the second copy of A is probed where it starts
    pat = b"abcdefgh" * 6000
    for length in (260, 261, 262, 264, 265):
        a = b"Z" + rand[: length - 1]
        data = pat[:1000] + a + pat[: 0x803F - length] + a + b"z" + pat[:99]
        out.append((f"M4 match of {length} bytes at distance 0x803f", data))
    return out


@pytest.mark.parametrize(("name", "data"), lzo_edge_inputs(), ids=[n for n, _ in lzo_edge_inputs()])
def test_lzo_port_equals_the_python_transliteration_on_edge_cases(name, data):
    """The Numba LZO1X-1 / lzo-rle port writes exactly the bytes of the kernel's
    lzo1x_1_compress / lzorle1x_1_compress transliterated into slow Python."""
    want = {}
    for rle in (False, True):
        want[rle] = lzo1x_1_reference(data, int(rle))
        assert lzo1x_1_compress(data, rle=rle) == want[rle], (name, rle)
    if "0x803f" in name:  # the cut happens exactly for 261..264 bytes: the streams differ then
        cut = any(f" {n} bytes" in name for n in (261, 262, 263, 264))
        assert (want[True][2:] != want[False]) == cut


def test_lzo_port_equals_the_python_transliteration_on_random_pages():
    pages = mixed_pages(20, 22)
    for algorithm in ("lzo", "lzo-rle"):
        want = [len(lzo1x_1_reference(p.tobytes(), int(algorithm == "lzo-rle"))) for p in pages]
        assert compressed_sizes(pages, algorithm, threads=1).tolist() == want  # the size-only path
        assert compressed_sizes(pages, algorithm, threads=2).tolist() == want


@pytest.mark.parametrize("algorithm", [None, "lz4", "lzo", "lzo-rle"])
@pytest.mark.parametrize("threads", [1, 2])
def test_new_content_facts_match_slow_twins(algorithm, threads):
    """Same-filled flag and size in one pass, over more rows than one work block, in any order."""
    pages = mixed_pages(45, 8)  # 90 pages: several blocks of 32
    rows = np.random.default_rng(3).permutation(np.r_[np.arange(len(pages)), [5, 5, 89]])
    same, size = new_content_facts(pages, rows, algorithm, True, threads)
    assert same.tolist() == [slow_same_filled(pages[r]) for r in rows]
    if algorithm is None:
        assert size is None
        return
    if algorithm == "lz4":
        want = [len(lz4_kernel_reference(pages[r].tobytes())) for r in rows]
    else:
        want = [len(lzo1x_1_compress(pages[r].tobytes(), rle=algorithm == "lzo-rle")) for r in rows]
    assert size.tolist() == want
    no_same, size2 = new_content_facts(pages, rows, algorithm, False, threads)
    assert no_same is None and size2.tolist() == want


def test_lzo_rle_equals_lzo_plus_header_without_zero_runs():
    """Without 4 consecutive zero bytes the RLE path never triggers: same stream + 2-byte header."""
    rng = np.random.default_rng(9)
    for _ in range(30):
        p = rng.integers(1, 256, PS).astype(np.uint8)
        p[: int(rng.integers(0, PS))] = rng.integers(1, 4, 1)[0]  # compressible, never zero
        a, b = lzo1x_1_compress(p), lzo1x_1_compress(p, rle=True)
        assert b[:2] == bytes([17, 1])
        assert b[2:] == a
    z = np.zeros(PS, np.uint8)
    assert len(lzo1x_1_compress(z, rle=True)) < len(lzo1x_1_compress(z))


def test_lzo_rejects_oversized_input():
    with pytest.raises(ValueError):
        lzo1x_1_compress(bytes(60000))


@pytest.mark.parametrize("algorithm", ["lzo", "lzo-rle", "lz4", "zstd", "lz4-pypi"])
def test_sizes_match_per_page_slow_twin_and_thread_count(algorithm):
    pages = mixed_pages(30, 11)

    def slow(p):
        if algorithm == "lz4-pypi":
            return len(lz4.block.compress(p.tobytes(), store_size=False))
        if algorithm == "lz4":
            return len(lz4_kernel_compress(p.tobytes()))
        if algorithm == "zstd":
            return len(zstandard.ZstdCompressor(level=3).compress(p.tobytes()))
        return len(lzo1x_1_compress(p.tobytes(), rle=algorithm == "lzo-rle"))

    want = [slow(p) for p in pages]
    assert compressed_sizes(pages, algorithm, threads=1).tolist() == want
    assert compressed_sizes(pages, algorithm, threads=2).tolist() == want
    rows = np.array([3, 1, 1, 29, 0] * 5)  # read in place, repeated rows, any order
    assert compressed_sizes(pages, algorithm, threads=2, rows=rows).tolist() == [want[r] for r in rows]


# ------------------------------------------------------------------ dedup, streaming, sampling
def test_content_table_matches_dict():
    """Content ids from the open-addressing table against a dict, across calls and growth."""
    rng = np.random.default_rng(1)
    table, ref = ContentTable(capacity=4), {}
    for _ in range(12):
        h = rng.integers(0, 700, int(rng.integers(0, 120))).astype(np.uint64)
        h[: len(h) // 10] = 0  # hash 0 is a key like any other
        before = len(ref)
        ids, new = table.claim(h)
        want_new = []
        for i, x in enumerate(h.tolist()):
            if x not in ref:
                ref[x] = len(ref)
                want_new.append(i)
        assert ids.tolist() == [ref[x] for x in h.tolist()]
        assert new.tolist() == want_new  # first occurrence of each new content, in order
        assert ids[new].tolist() == list(range(before, len(ref)))
        assert len(table) == len(ref)
    assert table.claim(np.zeros(0, np.uint64))[0].shape == (0,)


def _chunks(pages, k):
    for a in range(0, len(pages), k):
        yield PageChunk(np.arange(a, min(a + k, len(pages)), dtype=np.uint64), pages[a : a + k])


@pytest.mark.parametrize("chunk", [7, 64])
def test_stream_sizes_equal_brute_force_without_dedup(chunk):
    pages = mixed_pages(40, 2)
    pages = np.ascontiguousarray(np.vstack([pages, pages[::3], np.zeros((5, PS), np.uint8)]))
    ps = page_sizes([("vm", _chunks(pages, chunk))], ["lz4", "lzo-rle"], threads=2)
    for a in ("lz4", "lzo-rle"):
        assert ps.frame[f"csize_{a}"].tolist() == compressed_sizes(pages, a).tolist()
        assert ps.stats.distinct_compressed[a] < len(pages)  # duplicates were not compressed again
    assert ps.frame["same_filled"].tolist() == [slow_same_filled(p) for p in pages]
    assert ps.stats.pages == len(pages)


@pytest.mark.parametrize("threads", [1, 2])
def test_sizer_slices_share_contents_across_threads(threads):
    """A chunk of many slices (worker threads take them as they come free): every page gets the
    size of its content, each content is compressed once, hashes are hash_pages' own."""
    from pagecore.pages.compress import ChunkSizer
    from pagecore.pages.hashing import hash_pages

    base = mixed_pages(60, 13)
    rng = np.random.default_rng(14)
    pages = np.ascontiguousarray(base[rng.integers(0, len(base), 1500)])  # copies in every slice
    with ChunkSizer(["lz4", "lzo-rle", "zstd"], threads=threads) as sizer:
        h, z, got = sizer.hash_and_size(pages[:1000])
        h2, z2, got2 = sizer.hash_and_size(pages[1000:])  # a second chunk: contents seen before
        again = sizer(pages[:700], *hash_pages(pages[:700]))  # the hook for pagecore hash --compress
    wh, wz = hash_pages(pages)
    assert np.concatenate([h, h2]).tolist() == wh.tolist() and np.concatenate([z, z2]).tolist() == wz.tolist()
    for a in ("lz4", "lzo-rle", "zstd"):
        want = compressed_sizes(pages, a)
        assert np.concatenate([got[a], got2[a]]).tolist() == want.tolist()
        assert again[a].tolist() == want[:700].tolist()
        assert sizer.stats.distinct_compressed[a] == len(np.unique(wh))
    same = [slow_same_filled(p) for p in pages]
    assert np.concatenate([got["same_filled"], got2["same_filled"]]).tolist() == same
    assert sizer.stats.nonzero_compressed["lz4"] == len(np.unique(wh[~wz]))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_sizer_shares_out_bunched_new_contents(threads, monkeypatch):
    """New contents bunched in one slice (as in the shipped real dump, whose last eighth holds
    three quarters of them) are compressed in blocks any thread takes: sizes, flags and counts
    still equal brute force for every thread count, slice size and block size."""
    from pagecore.pages.compress import ChunkSizer

    base = mixed_pages(40, 21)
    zeros = np.zeros((300, PS), np.uint8)
    pages = np.ascontiguousarray(np.vstack([zeros, base[:5], zeros, base, base[::-1]]))
    want = {a: compressed_sizes(pages, a) for a in ("lz4", "zstd")}
    same = [slow_same_filled(p) for p in pages]
    for slice_min, block in ((16, 1), (16, 3), (256, 32), (2048, 7)):
        monkeypatch.setattr(ChunkSizer, "_SLICE_MIN", slice_min)
        monkeypatch.setattr(ChunkSizer, "_BLOCK_PAGES", block)
        with ChunkSizer(["lz4", "zstd"], threads=threads) as sizer:
            h, z, got = sizer.hash_and_size(pages)
        for a in ("lz4", "zstd"):
            assert got[a].tolist() == want[a].tolist()
            assert sizer.stats.distinct_compressed[a] == len(np.unique(h))
        assert got["same_filled"].tolist() == same
        assert sizer.stats.nonzero_compressed["lz4"] == len(np.unique(h[~z]))


@pytest.mark.parametrize("threads", [1, 2])
def test_sizer_worker_error_reaches_the_caller(threads, monkeypatch):
    """A failure in one worker stops the others (none waits forever) and is raised to the caller."""
    from pagecore.pages import compress as pc

    calls = []

    def boom(*a, **k):
        calls.append(1)
        raise RuntimeError("compressor failed")

    monkeypatch.setattr(pc.ChunkSizer, "_SLICE_MIN", 16)
    monkeypatch.setattr(pc, "new_content_facts", boom)
    pages = mixed_pages(30, 22)
    with pc.ChunkSizer(["lz4"], threads=threads) as sizer, pytest.raises(RuntimeError, match="compressor failed"):
        sizer.hash_and_size(pages)
    assert calls


def test_mapped_dump_pages_are_released_by_the_workers(tmp_path):
    """page_sizes on a raw dump (the reader maps it; the worker threads fault the pages in and
    drop their page-table entries when a slice is done) equals page_sizes on the same pages in
    memory; a released view still reads the file's bytes, and only read-only file views count."""
    import mmap

    from pagecore.dumps import open_dump
    from pagecore.pages.compress import _is_readonly_file_view, _release_mapped

    pages = mixed_pages(50, 23)
    pages = np.ascontiguousarray(np.vstack([np.zeros((600, PS), np.uint8), pages, pages[:9]]))
    dump = tmp_path / "g.raw"
    pages.tofile(dump)
    mem = page_sizes([("g.raw", _chunks(pages, 256))], ["lz4"], threads=2)
    for threads in (1, 2):
        with open_dump(dump, chunk_pages=256) as reader:
            got = page_sizes([("g.raw", reader)], ["lz4"], threads=threads)
        for c in ("gpfn", "hash", "zero", "same_filled", "csize_lz4"):
            assert got.columns[c].tolist() == mem.columns[c].tolist()
        assert got.stats.distinct_compressed == mem.stats.distinct_compressed
    with open(dump, "rb") as fh:
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        view = np.frombuffer(mm, np.uint8).reshape(-1, PS)[600:700]
        assert _is_readonly_file_view(view)
        _release_mapped(view)
        assert (view == pages[600:700]).all()  # faulted back in from the page cache
        del view
        mm.close()
        cow = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
        assert not _is_readonly_file_view(np.frombuffer(cow, np.uint8))
        cow.close()
    assert not _is_readonly_file_view(pages) and not _is_readonly_file_view(pages[3:9])


def test_uncached_dump_is_left_to_the_reader(tmp_path):
    """A dump wholly in the page cache is mapped by the workers; one that is not keeps the
    reader's populate (cachestat probes); the sizes are the same either way."""
    import os

    from pagecore.dumps import open_dump
    from pagecore.pages.compress import _file_cached, _map_in_workers

    pages = np.ascontiguousarray(np.vstack([mixed_pages(40, 26), np.zeros((400, PS), np.uint8)]))
    dump = tmp_path / "g.raw"
    with open(dump, "wb") as fh:
        fh.write(pages.tobytes())
        fh.flush()
        os.fsync(fh.fileno())
    dump.read_bytes()
    if not _file_cached(dump):
        pytest.skip("this kernel cannot tell what is cached (cachestat(2), Linux 6.5+)")
    want = page_sizes([("g.raw", _chunks(pages, 128))], ["lz4"], threads=2).columns["csize_lz4"]
    with open_dump(dump, chunk_pages=128) as reader:
        assert _map_in_workers(reader) and reader._MADV_POPULATE_READ is None
    fd = os.open(dump, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    assert not _file_cached(dump)
    with open_dump(dump, chunk_pages=128) as reader:
        assert not _map_in_workers(reader) and reader._MADV_POPULATE_READ is not None
        got = page_sizes([("g.raw", reader)], ["lz4"], threads=2)
    assert got.columns["csize_lz4"].tolist() == want.tolist()
    assert not _file_cached(tmp_path / "missing.raw")


def test_sizer_works_in_a_forked_child():
    """The kept worker pool is not inherited by a forked child (its threads do not exist there)."""
    import multiprocessing as mp

    pages = mixed_pages(20, 27)
    want = compressed_sizes(pages, "lz4").tolist()
    parent = page_sizes([("vm", _chunks(pages, 16))], ["lz4"], threads=2).columns["csize_lz4"].tolist()
    assert parent == want
    with mp.get_context("fork").Pool(1) as pool:
        got = pool.apply_async(_sizes_in_child, (pages,)).get(timeout=120)
    assert got == want


def _sizes_in_child(pages):
    return page_sizes([("vm", _chunks(pages, 16))], ["lz4"], threads=2).columns["csize_lz4"].tolist()


def test_page_sizes_columns_and_lazy_frame():
    """The arrays page_sizes returns and the frame built from them on demand hold the same
    facts; a PageSizes made from a frame gives the same arrays back."""
    from pagecore.pages.compress import PageSizes

    a, b = mixed_pages(20, 24), mixed_pages(20, 25)
    ps = page_sizes([("vm2", _chunks(a, 13)), ("vm1", _chunks(b, 13))], ["lz4"], threads=1)
    f = ps.frame
    assert list(f.columns) == ["vm", "gpfn", "hash", "zero", "same_filled", "csize_lz4"]
    assert list(f["vm"].cat.categories) == ["vm2", "vm1"] == ps.vm_names
    assert f["vm"].astype(str).tolist() == ["vm2"] * len(a) + ["vm1"] * len(b)
    assert f["csize_lz4"].tolist() == compressed_sizes(np.vstack([a, b]), "lz4").tolist()
    back = PageSizes(frame=f, algorithms=["lz4"])
    assert back.vm_names == ps.vm_names and len(back) == len(ps) == len(a) + len(b)
    for c in ps.columns:
        assert back.columns[c].tolist() == ps.columns[c].tolist()
    plain = PageSizes(frame=f.assign(vm=f["vm"].astype(str)), algorithms=["lz4"])  # strings: sorted names
    assert plain.vm_names == ["vm1", "vm2"]
    assert plain.columns["vm"].tolist() == [1] * len(a) + [0] * len(b)
    empty = page_sizes([("vm", _chunks(a[:0], 4))], ["lz4"])
    assert len(empty) == 0 and len(empty.frame) == 0 and empty.vm_names == []


def test_sample_is_independent_of_chunking():
    m = sample_mask(1000, 0, 0.3, 5)
    assert (np.concatenate([sample_mask(400, 0, 0.3, 5), sample_mask(600, 400, 0.3, 5)]) == m).all()
    assert 200 < m.sum() < 400
    pages = mixed_pages(50, 4)
    a = page_sizes([("vm", _chunks(pages, 9))], ["lzo"], sample=0.5, seed=3)
    b = page_sizes([("vm", _chunks(pages, 31))], ["lzo"], sample=0.5, seed=3)
    assert a.frame["gpfn"].tolist() == b.frame["gpfn"].tolist()


# ------------------------------------------------------------------ zsmalloc (hand-worked)
def test_zsmalloc_class_arithmetic_by_hand():
    c = zsmalloc_classes()
    assert len(c.size) == 255  # (4096 - 32) / 16 + 1
    # zs_malloc adds the 8-byte handle: 24 -> 32 (class 0); 25 -> 33 -> class 1 (48 B)
    assert c.index(np.array([1, 24, 25, 40, 4088, 4089, 5000])).tolist() == [0, 0, 1, 1, 254, 254, 254]
    # 48-byte class: 4096 % 48 = 16, 8192 % 48 = 32, 12288 % 48 = 0 -> 3 pages, 256 objects
    assert chain_size(48) == 3 and c.pages[1] == 3 and c.objs[1] == 256
    assert chain_size(32) == 1 and chain_size(2048) == 1  # powers of two: one page
    # 3632 B: wastes 464, 928, 1392, 1856, 2320, 2784, 3248, 80 for 1..8 pages -> 8 pages, 9 objects
    i3632 = (3632 - 32) // 16
    assert chain_size(3632) == 8 and c.objs[i3632] == 9
    # every class above 3632 B holds one object per zspage (huge); so huge_class_size = 3632 - 7
    assert all(c.objs[i] == 1 for i in range(i3632 + 1, 255))
    assert c.huge_class_size == 3632 - 7


def test_zsmalloc_pages_by_hand():
    assert zsmalloc_pages(np.array([], np.int64)) == 0
    assert zsmalloc_pages(np.full(128, 24)) == 1  # 128 objects of 32 B fill one page
    assert zsmalloc_pages(np.full(129, 24)) == 2
    assert zsmalloc_pages(np.full(257, 40)) == 6  # 48-B class: 256 per 3-page zspage -> 2 zspages
    assert zsmalloc_pages(np.full(3, 4096)) == 3  # huge objects: one page each


def test_zram_mm_stat_by_hand():
    cs = np.array([10, 10, 40, 3625, 3624, 5000, 4096])
    same = np.array([True, False, False, False, False, False, False])
    st = zram_mm_stat(cs, same)
    assert st["orig_data_size"] == 7 * PS
    assert st["same_pages"] == 1
    assert st["huge_pages"] == 3  # 3625, 5000, 4096 are >= huge_class_size 3625
    assert st["compr_data_size"] == 10 + 40 + 3624 + 3 * PS
    # 10 -> 32-B class (1 page), 40 -> 48-B class (3 pages), 3624 -> 3632 class (8 pages), 3 huge pages
    assert st["mem_used_total"] == (1 + 3 + 8 + 3) * PS


def test_zswap_rules():
    cs = np.array([100, 4096, 4097, 5000, 30])
    zero = np.array([False, False, False, False, True])
    same = zero.copy()
    r = zswap_pool(cs, zero, same)
    assert (r["accepted"], r["rejected_compress_poor"], r["zero_or_same_filled"]) == (2, 2, 1)
    s = zswap_pool(cs, zero, same, incompressible="store")
    assert (s["accepted"], s["rejected_compress_poor"]) == (4, 0)
    assert s["stored_bytes"] == 100 + 3 * PS
    lim = zswap_pool(np.full(10, 4000), np.zeros(10, bool), np.zeros(10, bool), host_bytes=20 * PS, max_pool_percent=20)
    assert lim["accepted"] == 4 and lim["rejected_pool_limit"] == 6  # 20 % of 20 pages = 4 huge objects


def test_esxi_compression_by_hand():
    cs = np.array([500, 1024, 1025, 2048, 2049, 4000, 100])
    r = esxi_compression(cs, vm_bytes=100 * PS, max_pct=10)
    assert r["compressed"] == 5 and r["swapped"] == 2
    assert (r["slots_1024"], r["slots_2048"]) == (3, 2)
    assert r["cache_bytes"] == 3 * 1024 + 2 * 2048
    assert r["saved_bytes"] == 5 * PS - r["cache_bytes"]
    capped = esxi_compression(np.full(10, 900), vm_bytes=20 * PS, max_pct=10)  # cap 8192 B = 8 quarter slots
    assert capped["compressed"] == 8 and capped["swapped_cache_full"] == 2


def test_ladder_by_hand():
    # vm a: zero x3, X x2, Y; vm b: X, Z x2, zero
    f = pd.DataFrame(
        {
            "vm": ["a"] * 6 + ["b"] * 4,
            "hash": np.array([0, 0, 0, 5, 5, 6, 5, 7, 7, 0], np.uint64),
            "zero": [True] * 3 + [False] * 3 + [False] * 3 + [True],
            "same_filled": [True] * 3 + [False] * 3 + [False] * 3 + [True],
            "csize_lzo": [30, 30, 30, 500, 500, 3000, 500, 1500, 1500, 30],
        }
    )
    lad = reclamation_ladder(f, "lzo", salting=0, max_pct=100).set_index("step")
    assert lad.loc["zero pages", "saved_pages"] == 3  # 4 zero pages -> 1
    assert lad.loc["intra-VM sharing", "saved_pages"] == 2  # X twice in a, Z twice in b
    assert lad.loc["inter-VM sharing (salting 0)", "saved_pages"] == 1  # X in a and b
    # left: X (500 B -> quarter slot) in a, Y (3000 B, swapped) in a, Z (1500 -> half slot) in b
    comp = lad.loc["compression (esxi, lzo)", "saved_pages"]
    assert comp == ((PS - 1024) + (PS - 2048)) / PS
    assert lad.loc["remains for ballooning / swap", "resident_pages"] == 10 - 3 - 2 - 1 - comp
    # with the default 10 % cap: a (6 pages) has room for 2457 B (one quarter slot), b (4 pages) for
    # 1638 B (no half slot)
    capped = reclamation_ladder(f, "lzo").set_index("step")
    assert capped.loc["compression (esxi, lzo)", "saved_pages"] == (PS - 1024) / PS
    salted = reclamation_ladder(f, "lzo", salting=2).set_index("step")
    assert salted.loc["inter-VM sharing (salting 2)", "saved_pages"] == 0
    # salting 2: each VM its own zero page too (a: 3 -> 1, b: 1 -> 1), as `share --salting 2` and
    # `host`'s esxi policy count it (the ladder kept zeros - 1 = 3 across VMs)
    assert salted.loc["zero pages", "saved_pages"] == 2
    assert salted.loc["salting removes (inter-VM sharing lost)", "saved_pages"] == 1 + 1


def test_vm_codes_without_strings_equal_pandas_factorize():
    rng = np.random.default_rng(2)
    names = np.array(["vm10", "vm2", "b", "a", "unused"])
    vm = names[rng.integers(0, 4, 300)]
    want_codes, want_names = pd.factorize(pd.Series(vm).astype(str), sort=True)
    for col in (pd.Series(vm), pd.Series(pd.Categorical(vm, categories=["vm2", "unused", "vm10", "b", "a"]))):
        codes, got_names = vm_codes_sorted(col)
        assert got_names == list(want_names) and codes.tolist() == want_codes.tolist()
    # the same from codes and names (PageSizes.columns), including one name and no rows
    for cats in (["vm2", "unused", "vm10", "b", "a"], ["a", "b", "vm10", "vm2"], ["b", "a", "vm2", "vm10", "x", "y"]):
        codes = np.array([cats.index(v) for v in vm])
        got_codes, got_names = sorted_vm_codes(codes, cats)
        assert got_names == list(want_names) and got_codes.tolist() == want_codes.tolist()
    assert [c.tolist() if isinstance(c, np.ndarray) else c for c in sorted_vm_codes(np.zeros(3, int), ["z"])] == [
        [0, 0, 0],
        ["z"],
    ]
    assert sorted_vm_codes(np.zeros(0, int), ["z"])[1] == [] and sorted_vm_codes(np.zeros(0, int), [])[1] == []
    with pytest.raises(ValueError, match="missing"):
        sorted_vm_codes(np.array([0, -1]), ["a", "b"])


def test_esxi_rows_per_vm_equal_groupby():
    from pagecore.experiments.compression import _vm_rows

    rng = np.random.default_rng(5)
    vm = np.array(["x", "a", "m"])[rng.integers(0, 3, 200)]
    for col in (
        pd.Series(vm),
        pd.Series(pd.Categorical(vm, categories=["m", "q", "x", "a"])),
        pd.Series(vm[:1].repeat(7)),
        pd.Series(pd.Categorical(vm[:1].repeat(7), categories=["x", "a", "m"])),
    ):
        want = [(str(k), g.index.to_numpy().tolist()) for k, g in col.groupby(col, observed=True, sort=True)]
        assert [(k, r.tolist()) for k, r in _vm_rows(col)] == want


@pytest.mark.parametrize("salting", [0, 2])
def test_ladder_same_for_categorical_vm_and_records(salting):
    rng = np.random.default_rng(6)
    n = 400
    f = pd.DataFrame(
        {
            "vm": np.array(["b", "a", "c"])[rng.integers(0, 3, n)],
            "hash": rng.integers(0, 60, n).astype(np.uint64),
            "csize_lz4": rng.integers(20, 4200, n),
        }
    )
    f["zero"] = f["hash"] == 0
    f["same_filled"] = f["zero"]
    salts = {"a": "s1", "b": "s1", "c": "s2"}
    want = reclamation_ladder(f, "lz4", salting=salting, salts=salts)
    cat = f.assign(vm=pd.Categorical(f["vm"], categories=["c", "b", "a"]))
    pd.testing.assert_frame_equal(reclamation_ladder(cat, "lz4", salting=salting, salts=salts), want)
    pd.testing.assert_frame_equal(
        pd.DataFrame(reclamation_ladder(cat, "lz4", salting=salting, salts=salts, as_records=True)), want
    )


def test_estimate_is_exact_without_sampling_and_covers_with():
    rng = np.random.default_rng(0)
    cs = rng.integers(20, 4200, 20000)
    same = rng.random(20000) < 0.3
    exact = zram_mm_stat(cs, same)
    full = estimate_zram(cs, same, 1.0, len(cs))
    assert full["compr_data_size"]["estimate"] == exact["compr_data_size"]
    m = sample_mask(len(cs), 0, 0.2, 1)
    est = estimate_zram(cs[m], same[m], 0.2, len(cs))
    for k in ("compr_data_size", "same_pages", "huge_pages", "mem_used_total"):
        e = est[k]
        assert e["low"] <= exact[k] <= e["high"], (k, e, exact[k])


# ------------------------------------------------------------------ CLI
def _args(**kw):
    base = dict(
        algorithm="lzo-rle",
        format="json",
        sample=None,
        seed=0,
        threads=1,
        salting=0,
        esxi_cache_pct=10.0,
        zswap_incompressible="reject",
        output=None,
    )
    base.update(kw)
    return SimpleNamespace(**base)


def test_cli_dump_and_table_paths(tmp_path, capsys):
    from pagecore.cli.compress import run
    from pagecore.pages.tables import write_page_table

    pages = mixed_pages(20, 8)
    dump = tmp_path / "g.raw"
    pages.tofile(dump)
    out = tmp_path / "r.json"
    assert run(_args(inputs=[str(dump)], output=str(out))) == 0
    rep = json.loads(out.read_text())
    want = zram_mm_stat(compressed_sizes(pages, "lzo-rle"), same_filled(pages)[0])
    assert rep["zram"] == want
    capsys.readouterr()
    # estimate mode: N pages sampled, intervals around the estimates
    assert run(_args(inputs=[str(dump)], sample="10")) == 0
    est = json.loads(capsys.readouterr().out)
    assert not est["exact"] and est["pages"] == len(pages) and 0 < est["pages_examined"] < len(pages)
    z = est["zram_estimate"]["compr_data_size"]
    assert z["low"] <= z["estimate"] <= z["high"]
    with pytest.raises(ConfigError, match="--sample"):
        run(_args(inputs=[str(dump)], sample="lots"))
    # a page table re-reads its dump
    table = tmp_path / "g.parquet"
    n = len(pages)
    meta = {"source_path": str(dump), "source_size": dump.stat().st_size, "format": "raw"}
    write_page_table(table, "g", np.arange(n, dtype=np.uint64), np.zeros(n, np.uint64), np.zeros(n, bool), meta)
    assert run(_args(inputs=[str(table)])) == 0
    assert json.loads(capsys.readouterr().out)["zram"] == want
    # the dump changed: one-line error
    with open(dump, "ab") as fh:
        fh.write(bytes(PS))
    with pytest.raises(InputError, match="dump changed since hashing"):
        run(_args(inputs=[str(table)]))
    Path(dump).unlink()
    with pytest.raises(InputError, match="dump changed since hashing"):
        run(_args(inputs=[str(table)]))


def test_cli_format_set_and_mechanism_keys(tmp_path, capsys):
    """compress takes the one --format set; its ladder steps carry the vocabulary's mechanism keys."""
    from pagecore.cli import main

    pages = np.concatenate([mixed_pages(12, 3), np.zeros((5, PS), np.uint8), mixed_pages(4, 3)])
    dump = tmp_path / "g.raw"
    pages.tofile(dump)
    assert main(["compress", str(dump), "--format", "json", "--threads", "1"]) == 0
    rep = json.loads(capsys.readouterr().out)
    zeros = int((pages == 0).all(axis=1).sum())
    assert rep["savings_pages"]["zero"] == zeros - 1  # one zero page kept, as the ladder counts
    assert set(rep["savings_pages"]) == {"zero", "share_intra", "share_inter", "compress"}
    assert rep["savings_pages"]["share_intra"] >= 4  # the last four pages repeat four of the first
    assert main(["compress", str(dump), "--format", "csv", "--threads", "1"]) == 0
    rows = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    keyed = rows.dropna(subset=["mechanism"])
    assert dict(zip(keyed["mechanism"], keyed["saved_pages"], strict=True)) == rep["savings_pages"]
    assert rows["mechanism"].isna().sum() == 2  # "remains" and "salting removes" are no savings
    out = tmp_path / "c.parquet"
    assert main(["compress", str(dump), "--format", "parquet", "-o", str(out), "--threads", "1"]) == 0
    assert pd.read_parquet(out)["step"].tolist() == rows["step"].tolist()
    assert main(["compress", str(dump), "--format", "parquet"]) == 1
    assert "needs -o" in capsys.readouterr().err


def test_cli_uses_size_columns_of_the_table(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pagecore.cli.compress import run

    t = pa.table(
        {
            "vm": pa.array(["v"] * 4),
            "gpfn": pa.array(np.arange(4, dtype=np.uint64)),
            "hash": pa.array(np.array([0, 1, 2, 3], np.uint64)),
            "zero": pa.array([True, False, False, False]),
            "csize_lz4": pa.array(np.array([20, 100, 3700, 900], np.uint16)),
            "same_filled": pa.array([True, False, False, False]),
        }
    )
    p = tmp_path / "t.parquet"
    pq.write_table(t, p)
    assert run(_args(inputs=[str(p)], algorithm="lz4")) == 0
    z = json.loads(capsys.readouterr().out)["zram"]
    assert (z["same_pages"], z["huge_pages"], z["compr_data_size"]) == (1, 1, 100 + PS + 900)


def test_zramcheck_says_why_it_cannot_run(monkeypatch):
    import os

    from pagecore.qemu import zramcheck

    ok, why = zramcheck.available("zram-none")
    assert not ok and "no /sys/block/zram-none" in why
    if zramcheck.sysfs("zram0").is_dir():
        monkeypatch.setattr(os, "geteuid", lambda: 1000)
        ok, why = zramcheck.available("zram0")
        assert not ok and "root" in why
