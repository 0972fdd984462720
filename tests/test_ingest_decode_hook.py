"""kdump pages hashed as they are decoded (``KdumpReader.decode_hook``, issue 18): the hashes are
those of ``hash_pages(chunk.pages)`` -- and of the slow twin -- for valid and broken dumps, every
codec, plain and flattened files, keyed and unkeyed, whatever rows a kernel refused or
``skip_bad_pages`` dropped."""

from __future__ import annotations

import numpy as np
import pytest
from dumps_helpers import make_pages, write_dump
from slow_twins import is_zero, pcx64

from pagecore.dumps import kdump as K
from pagecore.dumps import open_dump
from pagecore.dumps.kdump import PAGE_DESC, KdumpReader
from pagecore.pages.hashing import PageKey, hash_pages, rows_hasher
from pagecore.pages.ingest import hash_dump, hashed_chunks

CODECS = ["zlib", "lzo", "snappy", "zstd", None]
SECRET = b"decode-hook test key"


def _pages(n: int, seed: int) -> np.ndarray:
    pages = make_pages(n, seed=seed)
    pages[7::11] = 0
    return pages


def _write(tmp_path, container: str, compression, pages, name="d"):
    pfns = np.arange(len(pages)) * 3  # holes between frames
    if container == "plain":
        return write_dump("kdump", tmp_path / f"{name}.kdump", pfns, pages, compression=compression), pfns
    # small records, not packed: many pages are split over records (the gathered-pages path)
    return write_dump(
        "kdump-flat", tmp_path / f"{name}.flat", pfns, pages, compression=compression, record_bytes=700
    ), pfns


def _check(path, want: dict, *, key=None, threads=2, chunk_pages=37, skip=False, twin=False) -> object:
    """Read ``path`` through hashed_chunks; every chunk's hashes must be hash_pages' of its pages
    (and the slow twin's when ``twin``), its pages the ones written; return the reader's stats."""
    with open_dump(path, chunk_pages=chunk_pages, skip_bad_pages=skip) as r:
        assert isinstance(r, KdumpReader)
        r.threads = threads
        seen = 0
        for chunk, h, z in hashed_chunks(r, key, threads):
            assert h is chunk.decoded[0] and z is chunk.decoded[1]  # hashed by the hook, not after the chunk
            hh, zz = hash_pages(chunk.pages, key)
            assert np.array_equal(h, hh) and np.array_equal(z, zz)
            for g, p, x, y in zip(chunk.gpfn.tolist(), chunk.pages, h.tolist(), z.tolist(), strict=True):
                assert p.tobytes() == want[g]
                if twin:
                    assert x == pcx64(p.tobytes(), SECRET if key is not None and key.keyed else b"")
                    assert y == is_zero(p.tobytes())
            seen += len(chunk)
        assert r.decode_hook is None  # removed again
        return r.stats, seen


@pytest.mark.parametrize("compression", CODECS)
@pytest.mark.parametrize("container", ["plain", "flat"])
@pytest.mark.parametrize("threads", [1, 2])
def test_hashes_as_decoded_equal_hash_pages(tmp_path, compression, container, threads):
    pages = _pages(150, seed=4)
    path, pfns = _write(tmp_path, container, compression, pages)
    want = {int(g): p.tobytes() for g, p in zip(pfns, pages, strict=True)}
    stats, seen = _check(path, want, threads=threads)
    assert seen == len(pages) == stats.pages_read


@pytest.mark.parametrize("compression", ["zlib", "snappy", "zstd"])
def test_keyed_hashes_as_decoded_match_the_slow_twin(tmp_path, compression):
    pages = _pages(60, seed=5)
    path, pfns = _write(tmp_path, "flat", compression, pages)
    want = {int(g): p.tobytes() for g, p in zip(pfns, pages, strict=True)}
    _check(path, want, key=PageKey.from_secret(SECRET), twin=True)
    _check(path, want, twin=True)


def _corrupt(path, victims) -> None:
    """Flip the bytes of the compressed pages ``victims`` (indexes among the compressed ones)."""
    r = KdumpReader(path)
    h = r._prepare(r._source())
    r.close()
    desc_at, n = h["desc_at"], h["ndesc"]
    raw = bytearray(path.read_bytes())
    descs = np.frombuffer(bytes(raw[desc_at : desc_at + n * PAGE_DESC.itemsize]), PAGE_DESC)
    compressed = np.flatnonzero((descs["flags"] != 0) & (descs["offset"] > 0) & (descs["size"] > 0))
    for v in victims:
        d = descs[compressed[v]]
        off, size = int(d["offset"]), int(d["size"])
        raw[off : off + size] = bytes(b ^ 0x5A for b in raw[off : off + size])
    path.write_bytes(raw)


@pytest.mark.parametrize("compression", ["zlib", "lzo", "snappy", "zstd"])
@pytest.mark.parametrize("threads", [1, 2])
def test_broken_pages_skipped_hashes_still_match(tmp_path, compression, threads):
    """Corrupt pages dropped by skip_bad_pages: the hashes of the pages kept, row for row."""
    pages = _pages(200, seed=6)
    pfns = np.arange(len(pages)) * 3
    path = write_dump("kdump", tmp_path / "b.kdump", pfns, pages, compression=compression)
    _corrupt(path, [0, 1, 5, 17, 18, 40])
    want = {int(g): p.tobytes() for g, p in zip(pfns, pages, strict=True)}
    stats, seen = _check(path, want, threads=threads, skip=True, key=PageKey.from_secret(SECRET))
    assert stats.pages_skipped >= 1 and seen == len(pages) - stats.pages_skipped


@pytest.mark.parametrize("compression", ["zlib", "snappy"])
def test_broken_pages_in_a_flattened_file_split_over_records(tmp_path, compression):
    """Corrupt pages split over records (gathered, then decoded by the kernels; a refused zlib or
    snappy page is decoded again in Python and fails there too) are dropped with their hashes."""
    pages = _pages(120, seed=7)
    pfns = np.arange(len(pages)) * 3
    writes = list(K.kdump_bytes_iter(pfns, pages, compression=compression))
    plain = tmp_path / "p.kdump"
    with open(plain, "wb") as fh:
        for off, data in writes:
            fh.seek(off)
            fh.write(data)
    _corrupt(plain, [2, 3, 30])
    from pagecore.dumps.flattened import write_flattened

    data = plain.read_bytes()
    path = write_flattened(tmp_path / "b.flat", [(0, data)], record_bytes=700)
    want = {int(g): p.tobytes() for g, p in zip(pfns, pages, strict=True)}
    stats, seen = _check(path, want, skip=True)
    assert stats.pages_skipped >= 3 and seen == len(pages) - stats.pages_skipped


def _refusing(monkeypatch, name: str, gathered_only: bool) -> list:
    """Make the kernel ``name`` refuse every 3rd page it decodes (garbage in the row, a snappy
    error status); only pages gathered from split records when ``gathered_only``."""
    from pagecore.dumps import _pagecodec

    real = getattr(_pagecodec, name)
    refused: list = []

    def refusing(buf, offs, sizes, idx, out, status):
        real(buf, offs, sizes, idx, out, status)
        if gathered_only and buf.base is not None:  # the file's map, not a gathered array
            return
        bad = idx[::3]
        out[bad] = 0xA5
        status[bad] = _pagecodec.SNAPPY_CORRUPT
        refused.extend(bad.tolist())

    monkeypatch.setattr(_pagecodec, name, refusing)
    return refused


@pytest.mark.parametrize("container,compression", [("plain", "snappy"), ("flat", "snappy"), ("flat", "zlib")])
def test_rows_a_kernel_refused_are_hashed_again_after_the_python_codec(tmp_path, monkeypatch, container, compression):
    """A kernel that refuses pages and leaves garbage in their rows (snappy pages, and zlib pages
    split over records, are decoded again in Python): the hook hashed the garbage, so the redone
    rows must be hashed again -- the hashes are those of the right pages."""
    name = "unsnappy_pages" if compression == "snappy" else "inflate_pages"
    refused = _refusing(monkeypatch, name, gathered_only=compression == "zlib")
    pages = _pages(150, seed=8)
    path, pfns = _write(tmp_path, container, compression, pages)
    want = {int(g): p.tobytes() for g, p in zip(pfns, pages, strict=True)}
    stats, seen = _check(path, want, key=PageKey.from_secret(SECRET), twin=True)
    assert refused and seen == len(pages) and stats.pages_skipped == 0


def test_contiguous_zlib_pages_refused_are_errors_not_hashes(tmp_path, monkeypatch):
    """libz is the reference zlib: a page it refuses in place is reported (not redone, not hashed)."""
    from pagecore.errors import InputError

    _refusing(monkeypatch, "inflate_pages", gathered_only=False)
    pages = _pages(50, seed=8)
    path, pfns = _write(tmp_path, "plain", "zlib", pages)
    with pytest.raises(InputError, match="corrupt zlib page"):
        _check(path, {int(g): p.tobytes() for g, p in zip(pfns, pages, strict=True)})


def test_the_hook_sees_every_decoded_row_in_ranges(tmp_path):
    """The DecodeHook contract: ranges of at most BATCH_PAGES rows, disjoint, covering every row
    the chunk keeps; then one done() with the rows kept; refused rows come again singly."""
    pages = _pages(700, seed=9)
    path, _ = _write(tmp_path, "plain", "snappy", pages)
    _corrupt(path, [3, 4, 100])
    calls = []

    class Recorder:
        def __init__(self, buf):
            self.k = buf.shape[0]
            self.ranges = []
            self.kept = None
            calls.append(self)

        def decoded(self, lo, hi):
            assert 0 <= lo < hi <= self.k
            self.ranges.append((lo, hi))

        def done(self, keep):
            self.kept = keep
            return "done"

    with open_dump(path, chunk_pages=300, skip_bad_pages=True) as r:
        r.threads = 2
        r.decode_hook = Recorder
        chunks = list(r)
    assert [c.decoded for c in chunks] == ["done"] * len(chunks) == ["done"] * len(calls)
    for rec, c in zip(calls, chunks, strict=True):
        pool = [(lo, hi) for lo, hi in rec.ranges if lo % K.BATCH_PAGES == 0 and hi == min(lo + K.BATCH_PAGES, rec.k)]
        assert len(set(pool)) == len(pool)  # each range once
        assert all(hi == lo + 1 for lo, hi in set(rec.ranges) - set(pool))  # the rest: single redone rows
        covered = np.zeros(rec.k, bool)
        for lo, hi in rec.ranges:
            covered[lo:hi] = True
        kept = np.ones(rec.k, bool) if rec.kept is None else rec.kept
        assert covered[kept].all() and kept.sum() == len(c)
    assert sum(0 if rec.kept is None else int((~rec.kept).sum()) for rec in calls) == r.stats.pages_skipped >= 3


def test_hash_dump_of_a_kdump_equals_that_of_the_raw_image(tmp_path):
    """Every column hash_dump writes (hashes, zero flags, --compress sizes), keyed, is the same for
    a kdump (hashed as decoded) as for the raw image of the same pages (hashed per chunk)."""
    import pyarrow.parquet as pq

    pages = _pages(300, seed=10)
    raw = write_dump("raw", tmp_path / "g.raw", np.arange(300), pages)
    key = PageKey.from_secret(SECRET)
    cols = None
    for p in (raw, write_dump("kdump-flat", tmp_path / "g.flat", np.arange(300), pages, compression="snappy")):
        out = tmp_path / f"{p.name}.parquet"
        hash_dump(p, out, "vm", key=key, chunk_pages=64, show_progress=False, compress=("lz4", "zstd"))
        t = pq.read_table(out).to_pandas().sort_values("gpfn").reset_index(drop=True)
        if cols is None:
            cols = t
        else:
            assert list(t.columns) == list(cols.columns) and any(c.startswith("csize_") for c in t.columns)
            assert t.equals(cols)


def test_buffers_are_free_again_after_hashing_as_decoded(tmp_path):
    """The hook drops its reference to a chunk's buffer when the chunk is done: the reader's
    buffers come round (a hook holding them would make every chunk a fresh 64 MiB map)."""
    import gc

    gc.collect()
    pages = _pages(512, seed=11)
    path, _ = _write(tmp_path, "plain", "snappy", pages)
    seen = set()
    with open_dump(path, chunk_pages=32) as r:
        for c, _, _ in hashed_chunks(r):
            seen.add(c.pages.ctypes.data)
        del c
    assert len(seen) <= K.KdumpReader.KEEP_BUFFERS + 1 < 512 // 32


def test_a_loop_left_early_removes_the_hook(tmp_path):
    pages = _pages(100, seed=12)
    path, _ = _write(tmp_path, "plain", "zstd", pages)
    with open_dump(path, chunk_pages=10) as r:
        gen = hashed_chunks(r)
        chunk, h, _ = next(gen)
        assert r.decode_hook is not None and np.array_equal(h, hash_pages(chunk.pages)[0])
        gen.close()
        assert r.decode_hook is None
        # a reader someone else hooked is hashed per chunk, the hook left alone
        mine = []

        class Mine:
            def __init__(self, buf):
                mine.append(buf.shape[0])

            def decoded(self, lo, hi):
                pass

            def done(self, keep):
                return "mine"

        r.decode_hook = Mine
        for chunk, h, _ in hashed_chunks(r):
            assert chunk.decoded == "mine" and np.array_equal(h, hash_pages(chunk.pages)[0])
        assert r.decode_hook is Mine and mine


@pytest.mark.parametrize("native", [True, False])
def test_rows_hasher_equals_hash_pages_on_any_ranges(rng, monkeypatch, native):
    from pagecore.pages import _native

    if not native:
        monkeypatch.setattr(_native, "kernel", lambda: None)
    elif _native.kernel() is None:
        pytest.skip(f"no native kernel: {_native.status()}")
    pages = rng.integers(0, 256, size=(40, 4096), dtype=np.uint8)
    pages[5] = 0
    pages[6, 100] = 1
    for key in (None, PageKey.from_secret(SECRET)):
        want = hash_pages(pages, key)
        h = np.zeros(40, np.uint64)
        z = np.zeros(40, np.bool_)
        hash_rows = rows_hasher(pages, key, h, z)
        for lo, hi in [(0, 0), (0, 1), (39, 40), (3, 17), (17, 40), (0, 3), (3, 3), (5, 7)]:
            hash_rows(lo, hi)
        assert np.array_equal(h, want[0]) and np.array_equal(z, want[1])
        hash_rows(3, 4)  # again: the same
        assert np.array_equal(h, want[0])
    with pytest.raises(ValueError, match="out_hash"):
        rows_hasher(pages, None, np.zeros(39, np.uint64), np.zeros(40, np.bool_))
    with pytest.raises(ValueError, match="out_zero"):
        rows_hasher(pages, None, np.zeros(40, np.uint64), np.zeros(40, np.uint8))
    if native:
        with pytest.raises(IndexError):
            rows_hasher(pages, None, np.zeros(40, np.uint64), np.zeros(40, np.bool_))(30, 41)


# ------------------------------------------------------------------ the shared zero page (issue 18)
@pytest.mark.parametrize("native", [True, False])
def test_rows_hasher_with_known_zero_rows_matches_the_slow_twin(rng, monkeypatch, native):
    """Rows known to be zero get the key's zero-page hash without being read; every other row is
    hashed as hash_pages does (the jitted kernel with a row mask, against the slow twin)."""
    from pagecore.pages import _native

    if not native:
        monkeypatch.setattr(_native, "kernel", lambda: None)
    n = 50
    pages = rng.integers(0, 256, size=(n, 4096), dtype=np.uint8)
    pages[9, 4095] = 0  # zero rows not marked stay hashed (and flagged zero) as usual
    pages[10] = 0
    for known in ([0], [n - 1], [1, 2, 3, 20, 21], list(range(n)), sorted(rng.choice(n, 17, replace=False).tolist())):
        filled = pages.copy()
        filled[known] = 0
        mask = np.zeros(n, np.bool_)
        mask[known] = True
        for key, secret in ((None, b""), (PageKey.from_secret(SECRET), SECRET)):
            h = np.zeros(n, np.uint64)
            z = np.zeros(n, np.bool_)
            hash_rows = rows_hasher(filled, key, h, z, known_zero=mask)
            for lo, hi in [(0, 0), (0, 1), (n - 1, n), (3, 17), (17, n), (0, 3), (3, 3), (1, 2)]:
                hash_rows(lo, hi)
            want = [pcx64(p.tobytes(), secret) for p in filled]
            assert h.tolist() == want and z.tolist() == [is_zero(p.tobytes()) for p in filled]
            assert np.array_equal(h, hash_pages(filled, key)[0])
            # marked rows are not read: garbage there still gets the zero-page hash (the caller's promise)
            garbage = filled.copy()
            garbage[known] = 0xA5
            rows_hasher(garbage, key, h, z, known_zero=mask)(0, n)
            assert h.tolist() == want and z[known].all()
            with pytest.raises(IndexError):
                hash_rows(3, n + 1)
    with pytest.raises(ValueError, match="known_zero"):
        rows_hasher(pages, None, np.zeros(n, np.uint64), np.zeros(n, np.bool_), known_zero=np.zeros(n, np.uint8))


@pytest.mark.parametrize("compression", ["zlib", "snappy", "zstd", None])
@pytest.mark.parametrize("container", ["plain", "flat"])
def test_shared_zero_page_rows_are_filled_and_told_to_the_hook(tmp_path, monkeypatch, compression, container):
    """Rows pointing at the shared zero page are filled with zeros (buffers that held garbage
    included), the hook is told exactly those rows before any range, and the hashes as decoded
    are the slow twin's."""
    pages = _pages(300, seed=13)
    pages[40:140] = 0  # a long run, and scattered ones (_pages)
    path, pfns = _write(tmp_path, container, compression, pages)
    want = {int(g): p.tobytes() for g, p in zip(pfns, pages, strict=True)}
    _dirty_chunk_buffers(monkeypatch)
    _check(path, want, key=PageKey.from_secret(SECRET), twin=True, chunk_pages=64)
    told = []

    class Recorder:
        def __init__(self, buf):
            self.zero, self.ranges = None, []
            told.append(self)

        def known_zero(self, rows):
            assert not self.ranges and self.zero is None  # before any range, once
            self.zero = rows.tolist()

        def decoded(self, lo, hi):
            self.ranges.append((lo, hi))

        def done(self, keep):
            return self.zero or []

    with open_dump(path, chunk_pages=64) as r:
        r.decode_hook = Recorder
        for c in r:
            assert c.decoded == [i for i, p in enumerate(c.pages) if not p.any()]
            assert all(p.tobytes() == want[int(g)] for g, p in zip(c.gpfn, c.pages, strict=True))
    assert sum(len(t.zero or []) for t in told) == int((~pages.any(axis=1)).sum())


def test_a_compressed_page_at_the_zero_page_offset_is_decoded_not_filled(tmp_path):
    """Only raw descriptors of the shared zero page are filled: one that claims a codec is decoded
    by that codec, which refuses the zero bytes (an error, or a skipped page)."""
    from pagecore.errors import InputError

    pages = _pages(60, seed=14)
    pfns = np.arange(len(pages))
    path = write_dump("kdump", tmp_path / "z.kdump", pfns, pages, compression="zlib")
    r = KdumpReader(path)
    h = r._prepare(r._source())
    r.close()
    assert h["zero_page"] > 0
    raw = bytearray(path.read_bytes())
    descs = np.frombuffer(bytes(raw[h["desc_at"] : h["desc_at"] + h["ndesc"] * PAGE_DESC.itemsize]), PAGE_DESC)
    victim = int(np.flatnonzero(descs["offset"] == h["zero_page"])[3])
    at = h["desc_at"] + victim * PAGE_DESC.itemsize + 12  # its flags
    raw[at : at + 4] = K.FLAG_ZLIB.to_bytes(4, "little")
    path.write_bytes(raw)
    with pytest.raises(InputError, match="zlib"):
        with open_dump(path) as r:
            list(hashed_chunks(r))
    want = {int(g): p.tobytes() for g, p in zip(pfns, pages, strict=True) if g != victim}
    stats, seen = _check(path, want, skip=True)
    assert stats.pages_skipped == 1 and seen == len(pages) - 1


@pytest.mark.parametrize("compression", ["zlib", "snappy", "lzo", "zstd", None])
@pytest.mark.parametrize("container", ["plain", "flat", "packed"])
def test_zero_rows_are_filled_only_when_the_pages_are_read(tmp_path, monkeypatch, compression, container):
    """Under the page hash's hook (``lazy_rows``) neither the shared zero page's rows nor the raw
    pages are written while decoding: the hashes are the slow twin's all the same, the chunk's
    buffer still holds what was there before in those rows, and reading ``chunk.pages`` fills them
    (once) -- the bytes then equal the dump's."""
    from pagecore.dumps.base import LazyPageChunk

    pages = _pages(300, seed=15)
    pages[40:140] = 0
    pages[200:230] = np.random.default_rng(3).integers(0, 256, (30, 4096), dtype=np.uint8)  # stored raw
    if container == "packed":  # as QEMU writes: whole blobs packed into 16 KiB records
        pfns = np.arange(len(pages)) * 3
        path = write_dump(
            "kdump-flat", tmp_path / "p.flat", pfns, pages, compression=compression, record_bytes=16384, pack=True
        )
    else:
        path, pfns = _write(tmp_path, container, compression, pages)
    want = {int(g): p.tobytes() for g, p in zip(pfns, pages, strict=True)}
    flag = {v: k for k, v in K.COMPRESSION_FLAGS.items()}.get(compression, 0)
    raw = {int(g) for g, p in zip(pfns, pages, strict=True) if p.any() and K.stored_page(flag, p.tobytes())[1] == 0}
    assert len(raw) >= 30
    _dirty_chunk_buffers(monkeypatch)
    lazy = left_raw = 0
    with open_dump(path, chunk_pages=64) as r:
        r.threads = 2
        for chunk, h, z in hashed_chunks(r, PageKey.from_secret(SECRET)):
            before = np.array(chunk._pages)  # the buffer as the reader left it
            unfilled = [(before[i] == 0xA5).all() for i in range(len(chunk))]
            for i, g in enumerate(chunk.gpfn.tolist()):
                if not any(want[g]):
                    assert unfilled[i]  # not written
                elif g in raw:  # not written, unless split over records (gathered and copied)
                    assert unfilled[i] or (container == "flat" and before[i].tobytes() == want[g])
                    left_raw += bool(unfilled[i])
                else:
                    assert before[i].tobytes() == want[g]
            assert isinstance(chunk, LazyPageChunk) == any(unfilled)
            lazy += isinstance(chunk, LazyPageChunk)
            assert not getattr(chunk, "filled", False) or not any(unfilled)
            for p, g, x, y in zip(chunk.pages, chunk.gpfn.tolist(), h.tolist(), z.tolist(), strict=True):
                assert p.tobytes() == want[g]
                assert x == pcx64(want[g], SECRET) and y == is_zero(want[g])
            assert getattr(chunk, "filled", True) and not chunk.pages.flags.writeable
    assert lazy >= 2 and (left_raw >= 10 or container == "flat")  # 700-byte records split every raw page


def test_zero_rows_of_a_chunk_with_skipped_pages_are_filled_before_the_kept_rows_are_taken(tmp_path):
    """``skip_bad_pages`` copies the kept rows out of the buffer: the zero rows are filled first."""
    pages = _pages(120, seed=16)
    pfns = np.arange(len(pages))
    path = write_dump("kdump", tmp_path / "s.kdump", pfns, pages, compression="zlib")
    r = KdumpReader(path)
    h = r._prepare(r._source())
    r.close()
    raw = bytearray(path.read_bytes())
    descs = np.frombuffer(bytes(raw[h["desc_at"] : h["desc_at"] + h["ndesc"] * PAGE_DESC.itemsize]), PAGE_DESC)
    victim = int(np.flatnonzero(descs["flags"] == K.FLAG_ZLIB)[5])
    at = int(descs["offset"][victim])
    raw[at : at + 2] = b"\xff\xff"  # not a zlib stream
    path.write_bytes(raw)
    want = {int(g): p.tobytes() for g, p in zip(pfns, pages, strict=True) if g != victim}
    stats, seen = _check(path, want, skip=True, chunk_pages=64, key=PageKey.from_secret(SECRET), twin=True)
    assert stats.pages_skipped == 1 and seen == len(pages) - 1


def test_a_lazy_chunk_fills_once_whoever_reads_it_first():
    """``LazyPageChunk.pages``: ``fill`` runs once, before any reader of ``pages`` returns, also when
    several threads read it at once; a ``fill`` that fails runs again on the next read."""
    import threading
    import time

    from pagecore.dumps.base import LazyPageChunk

    buf = np.full((4, 4096), 0xA5, np.uint8)
    calls = []

    def fill():
        calls.append(1)
        time.sleep(0.05)  # other threads arrive meanwhile
        buf[1] = 0

    c = LazyPageChunk(np.arange(4, dtype=np.uint64), buf, None, fill)
    assert not c.filled and len(c) == 4
    seen = []
    ts = [threading.Thread(target=lambda: seen.append(int(c.pages[1].max()))) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert calls == [1] and seen == [0, 0, 0, 0] and c.filled
    n = []

    def broken():
        n.append(1)
        if len(n) == 1:
            raise RuntimeError("boom")

    d = LazyPageChunk(np.arange(1, dtype=np.uint64), buf[:1], None, broken)
    with pytest.raises(RuntimeError):
        d.pages  # noqa: B018
    assert not d.filled
    d.pages  # noqa: B018
    assert n == [1, 1] and d.filled


@pytest.mark.parametrize("native", [True, False])
def test_rows_hasher_with_rows_elsewhere_matches_the_slow_twin(rng, monkeypatch, native):
    """``rows_hasher(elsewhere=(src, offsets))``: rows with an offset are hashed from ``src`` at that
    byte offset (any alignment, a read-only source), not from the buffer (garbage there); known-zero
    rows win; any range, keyed and unkeyed -- the slow twin's hashes."""
    from pagecore.pages import _native

    if not native:
        monkeypatch.setattr(_native, "kernel", lambda: None)
    n = 40
    pages = make_pages(n, seed=21)
    pages[3::7] = 0
    src = np.zeros(n * 4160 + 4096, np.uint8)
    at = 5 + rng.permutation(n) * 4160 + rng.integers(0, 50, n)  # unaligned, not in row order
    for i in range(n):
        src[at[i] : at[i] + 4096] = pages[i]
    src.flags.writeable = False
    off = np.where(rng.random(n) < 0.5, at, -1).astype(np.int64)
    known = ~pages.any(axis=1) & (rng.random(n) < 0.7)
    buf = pages.copy()
    buf[off >= 0] = 0xA5  # not read
    buf[known] = 0x5A  # not read
    for key in (None, PageKey.from_secret(SECRET)):
        secret = SECRET if key is not None else b""
        want_h = [pcx64(p.tobytes(), secret) for p in pages]
        want_z = [is_zero(p.tobytes()) for p in pages]
        for kz in (None, known):
            if kz is None:
                buf2 = buf.copy()
                buf2[known] = 0  # no promise made: the rows must hold their bytes
            else:
                buf2 = buf
            h, z = np.zeros(n, np.uint64), np.zeros(n, np.bool_)
            hash_rows = rows_hasher(buf2, key, h, z, known_zero=kz, elsewhere=(src, off))
            for lo, hi in ((0, 5), (5, 6), (6, 31), (31, n)):
                hash_rows(lo, hi)
            assert h.tolist() == want_h and z.tolist() == want_z
    with pytest.raises(IndexError, match="outside the source"):
        rows_hasher(buf, None, h, z, elsewhere=(src, np.full(n, len(src) - 4095, np.int64)))
    with pytest.raises(ValueError, match="elsewhere"):
        rows_hasher(buf, None, h, z, elsewhere=(src, off.astype(np.int32)))


def _dirty_chunk_buffers(monkeypatch):
    """Every chunk buffer the kdump reader takes comes back holding 0xA5 bytes, as a reused one
    may: rows a reader leaves unfilled show up."""
    take = K._ChunkBuffers.take

    def dirty(self, k, page_size, keep):
        buf = take(self, k, page_size, keep)
        buf[:] = 0xA5
        return buf

    monkeypatch.setattr(K._ChunkBuffers, "take", dirty)
