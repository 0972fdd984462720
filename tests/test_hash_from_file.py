"""Hashing pages read from the dump file by the hashing threads (issue 18, session 23).

``pagecore hash`` without ``--compress`` no longer maps a raw, ELF, LiME or .vmem dump's pages
first: each hashing thread ``pread``s a block into a buffer of its own and hashes it there
(:func:`pagecore.pages.hashing.hash_file_start`). Checked here against the slow twin
(``slow_twins.pcx64``) page by page, with blocks of 1, 3 and 1024 pages, offsets that are not
page-aligned, reads that come back in pieces, and a file that shrinks while it is read.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from dumps_helpers import make_pages, write_dump
from slow_twins import is_zero, pcx64

from pagecore.dumps import open_dump
from pagecore.errors import InputError
from pagecore.pages import hashing, ingest
from pagecore.pages.hashing import PageKey, can_hash_files, hash_file_start

pytestmark = pytest.mark.skipif(not can_hash_files(), reason="the native page-hash kernel is not available here")

SECRET = b"a key of sixteen bytes or more!!"


def _twin(pages: np.ndarray, secret: bytes = b"") -> tuple[list[int], list[bool]]:
    return [pcx64(p.tobytes(), secret) for p in pages], [is_zero(p.tobytes()) for p in pages]


@pytest.mark.parametrize("block", [1, 3, 1024])
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("offset", [0, 120, 4096 * 5 + 7])
def test_hash_file_start_matches_the_twin(tmp_path, monkeypatch, block, threads, offset):
    monkeypatch.setattr(hashing, "FILE_BLOCK_PAGES", block)
    pages = make_pages(11, seed=block + threads)
    pages[3] = 0
    path = tmp_path / "f.bin"
    path.write_bytes(b"\xa5" * offset + pages.tobytes() + b"tail")
    key = PageKey.from_secret(SECRET)
    fd = os.open(path, os.O_RDONLY)
    try:
        for n in (0, 1, 4, 11):
            h, z = hash_file_start(fd, offset, n, key, threads)()
            want_h, want_z = _twin(pages[:n], SECRET)
            assert h.tolist() == want_h and z.tolist() == want_z, n
        # into given outputs, from an offset inside the run
        oh, oz = np.zeros(5, np.uint64), np.zeros(5, np.bool_)
        got = hash_file_start(fd, offset + 4 * 4096, 5, key, threads, out=(oh, oz))()
        assert got[0] is oh and got[1] is oz
        assert (oh.tolist(), oz.tolist()) == _twin(pages[4:9], SECRET)
    finally:
        os.close(fd)


def test_hash_file_start_reads_that_come_back_in_pieces(tmp_path, monkeypatch):
    """``pread`` may return fewer bytes than asked without being at the end of the file."""
    monkeypatch.setattr(hashing, "FILE_BLOCK_PAGES", 4)
    pages = make_pages(9, seed=5)
    path = tmp_path / "f.bin"
    path.write_bytes(pages.tobytes())
    real = os.preadv
    calls = []

    def piecemeal(fd, bufs, off):
        (b,) = bufs
        calls.append(len(b))
        return real(fd, [b[: max(1, len(b) // 3)]], off)

    monkeypatch.setattr(hashing.os, "preadv", piecemeal)
    fd = os.open(path, os.O_RDONLY)
    try:
        h, z = hash_file_start(fd, 0, 9, None, 1)()
    finally:
        os.close(fd)
    assert (h.tolist(), z.tolist()) == _twin(pages)
    assert len(calls) > 3  # the blocks were read in pieces


@pytest.mark.parametrize("threads", [1, 2])
def test_hash_file_start_refuses_a_file_shorter_than_asked(tmp_path, threads):
    pages = make_pages(6, seed=2)
    path = tmp_path / "f.bin"
    path.write_bytes(pages.tobytes()[:-1])  # the last page is one byte short
    fd = os.open(path, os.O_RDONLY)
    try:
        wait = hash_file_start(fd, 0, 6, None, threads)  # the error comes from the returned function
        with pytest.raises(EOFError, match="1 bytes missing"):
            wait()
        with pytest.raises(ValueError):
            hash_file_start(fd, -1, 2)
        with pytest.raises(ValueError, match="out\\[0\\]"):
            hash_file_start(fd, 0, 2, out=(np.zeros(3, np.uint64), np.zeros(2, np.bool_)))
    finally:
        os.close(fd)


@pytest.mark.parametrize("fmt", ["raw", "elf", "lime", "kdump", "vmware"])
@pytest.mark.parametrize("threads", [1, 2])
def test_hashed_chunks_from_the_file_match_the_twin(tmp_path, monkeypatch, fmt, threads):
    """``pages_used=False``: every chunk that lies whole in the file is hashed from it (counted),
    and every page's hash is the twin's; ``chunk.pages`` still reads right."""
    monkeypatch.setattr(hashing, "FILE_BLOCK_PAGES", 3)
    calls = []
    real = ingest.hash_file_start
    monkeypatch.setattr(ingest, "hash_file_start", lambda *a, **k: (calls.append(a[2]), real(*a, **k))[1])
    pages = make_pages(23, seed=7)
    pages[4] = 0
    if fmt == "vmware":
        from pagecore.dumps.vmware import write_vmware

        pfns = np.concatenate([np.arange(10), 0x100 + np.arange(13)])
        path = write_vmware(tmp_path / "g.vmem", [(0, 0, 10), (0x100, 10, 13)], pages)
    else:
        pfns = np.arange(23) if fmt == "raw" else np.concatenate([np.arange(10), 20 + np.arange(13)])
        path = write_dump(fmt, tmp_path / f"g.{fmt}", pfns, pages)
    seen = {}
    with open_dump(path, chunk_pages=4) as r:
        for chunk, h, z in ingest.hashed_chunks(r, threads=threads, pages_used=False):
            for g, p, hh, zz in zip(chunk.gpfn.tolist(), chunk.pages, h.tolist(), z.tolist(), strict=True):
                seen[g] = (hh, zz)
                assert (hh, zz) == (pcx64(p.tobytes()), is_zero(p.tobytes()))
    assert sorted(seen) == sorted(pfns.tolist())
    for g, p in zip(pfns.tolist(), pages, strict=True):
        assert seen[g] == (pcx64(p.tobytes()), is_zero(p.tobytes()))
    if fmt == "kdump":
        assert calls == []  # compressed: hashed as it is decoded
    else:
        assert sum(calls) == 23  # every page came from the file


@pytest.mark.parametrize("threads", [1, 2])
def test_hashed_chunks_from_the_file_refuse_a_dump_that_shrinks(tmp_path, threads):
    """On one thread too: there the short read escaped as a bare EOFError (the blocks were read
    before ``hash_file_start`` returned, outside the error's translation)."""
    pages = make_pages(40, seed=4)
    path = write_dump("raw", tmp_path / "g.raw", np.arange(40), pages)
    with open_dump(path, chunk_pages=4) as r:
        gen = ingest.hashed_chunks(r, threads=threads, pages_used=False)
        next(gen)
        os.truncate(path, 10 * 4096)
        with pytest.raises(InputError, match="shrank"):
            for _ in gen:
                pass


def test_hash_dump_reads_the_file_unless_the_pages_are_needed(tmp_path, monkeypatch):
    """``pagecore hash`` reads from the file; ``--compress`` (which reads ``chunk.pages``) maps
    them as before; both tables hold the same hashes."""
    import pyarrow.parquet as pq

    calls = []
    real = ingest.hash_file_start
    monkeypatch.setattr(ingest, "hash_file_start", lambda *a, **k: (calls.append(a[2]), real(*a, **k))[1])
    pages = make_pages(30, seed=9)
    path = write_dump("raw", tmp_path / "g.raw", np.arange(30), pages)
    ingest.hash_dump(path, tmp_path / "a.parquet", "g", chunk_pages=7, threads=2, show_progress=False)
    assert sum(calls) == 30
    calls.clear()
    ingest.hash_dump(
        path, tmp_path / "b.parquet", "g", chunk_pages=7, threads=2, show_progress=False, compress=("lz4",)
    )
    assert calls == []
    a = pq.read_table(tmp_path / "a.parquet", columns=["gpfn", "hash", "zero"])
    b = pq.read_table(tmp_path / "b.parquet", columns=["gpfn", "hash", "zero"])
    assert a.equals(b)
    assert a["hash"].to_pylist() == [pcx64(p.tobytes()) for p in pages]


def test_without_preadv_the_pages_are_hashed_from_the_map(tmp_path, monkeypatch):
    """Where ``os.preadv`` is missing, ``hashed_chunks`` falls back to the mapped pages."""
    pages = make_pages(9, seed=1)
    path = write_dump("raw", tmp_path / "g.raw", np.arange(9), pages)
    monkeypatch.delattr(hashing.os, "preadv")
    assert not can_hash_files()
    with pytest.raises(RuntimeError, match="preadv"):
        hash_file_start(0, 0, 1)
    with open_dump(path, chunk_pages=4) as r:
        got = [h for _, hh, _ in ingest.hashed_chunks(r, threads=2, pages_used=False) for h in hh.tolist()]
    assert got == [pcx64(p.tobytes()) for p in pages]


@pytest.mark.parametrize("threads", [1, 2])
def test_a_short_read_the_reader_did_not_see_coming_is_an_input_error(tmp_path, monkeypatch, threads):
    """The file shrinks between the reader's size check and the threads' reads (here: the check
    is silenced). On one thread the short read escaped as a bare EOFError."""
    pages = make_pages(12, seed=6)
    path = write_dump("raw", tmp_path / "g.raw", np.arange(12), pages)
    with open_dump(path, chunk_pages=4) as r:
        monkeypatch.setattr(r, "_check_size", lambda: None)
        gen = ingest.hashed_chunks(r, threads=threads, pages_used=False)
        next(gen)
        os.truncate(path, 6 * 4096)
        with pytest.raises(InputError, match=r"ended early while being read: .*bytes missing"):
            for _ in gen:
                pass
