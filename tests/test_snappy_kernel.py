"""The nogil snappy page decoder (``dumps._pagecodec.unsnappy_pages``) against an obviously
correct Python twin and against cramjam (the reference decoder), on valid pages of every kind,
named edge cases and random corruptions: it must accept exactly what the twin accepts, decode
to the same bytes, and never accept a stream cramjam rejects or decode one differently."""

from __future__ import annotations

import numpy as np
import pytest
from dumps_helpers import PS, make_pages

from pagecore.dumps import _pagecodec

cramjam = pytest.importorskip("cramjam")

OK, BAD_LENGTH, CORRUPT = 0, _pagecodec.SNAPPY_BAD_LENGTH, _pagecodec.SNAPPY_CORRUPT


def twin(blob: bytes, page: int = PS) -> tuple[int, bytes]:
    """Snappy's raw format read the plain way (the format description, element by element)."""
    data = list(blob)
    p, length, shift = 0, 0, 0
    while True:
        if p >= len(data) or shift > 28:
            return CORRUPT, b""
        b = data[p]
        p += 1
        length |= (b & 0x7F) << shift
        if b < 128:
            break
        shift += 7
    if length != page:
        return BAD_LENGTH, b""
    out = bytearray()
    while p < len(data):
        tag = data[p]
        p += 1
        if tag & 3 == 0:
            n = tag >> 2
            if n >= 60:
                k = n - 59
                if p + k > len(data):
                    return CORRUPT, b""
                n = int.from_bytes(bytes(data[p : p + k]), "little")
                p += k
            n += 1
            if p + n > len(data) or len(out) + n > page:
                return CORRUPT, b""
            out += bytes(data[p : p + n])
            p += n
            continue
        if tag & 3 == 1:
            k, n, off = 1, 4 + ((tag >> 2) & 7), (tag >> 5) << 8
        elif tag & 3 == 2:
            k, n, off = 2, (tag >> 2) + 1, 0
        else:
            k, n, off = 4, (tag >> 2) + 1, 0
        if p + k > len(data):
            return CORRUPT, b""
        off |= int.from_bytes(bytes(data[p : p + k]), "little") if k > 1 else data[p]
        p += k
        if off == 0 or off > len(out) or len(out) + n > page:
            return CORRUPT, b""
        for _ in range(n):
            out.append(out[-off])
    if len(out) != page:
        return BAD_LENGTH, b""
    return OK, bytes(out)


def kernel(blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``blobs`` with the kernel, laid out back to back with a byte of slack between them
    (a stream must not read into its neighbour)."""
    buf = bytearray()
    offs = []
    for b in blobs:
        buf += b"\x00"
        offs.append(len(buf))
        buf += b
    arr = np.frombuffer(bytes(buf) + b"\xff", np.uint8)
    out = np.zeros((len(blobs), PS), np.uint8)
    status = np.full(len(blobs), 99, np.int32)
    _pagecodec.unsnappy_pages(
        arr, np.array(offs, np.int64), np.array([len(b) for b in blobs], np.int64), np.arange(len(blobs)), out, status
    )
    return status, out


def reference(blob: bytes) -> bytes | None:
    """cramjam's decode of a stream that declares one page, or None if it refuses it."""
    try:
        if cramjam.snappy.decompress_raw_len(blob) != PS:
            return None
        got = bytes(cramjam.snappy.decompress_raw(blob))
    except Exception:  # cramjam's own error types
        return None
    return got if len(got) == PS else None


def check(blobs: list[bytes]) -> int:
    """Kernel == twin on every blob, and consistent with cramjam; return how many were valid."""
    status, out = kernel(blobs)
    valid = 0
    for i, b in enumerate(blobs):
        code, page = twin(b)
        assert status[i] == code, (i, b[:16], status[i], code)
        ref = reference(b)
        if code == OK:
            valid += 1
            assert bytes(out[i]) == page
            assert ref == page, "the kernel accepted a stream cramjam refuses or decodes otherwise"
        else:
            assert ref is None, "the kernel refused a stream cramjam decodes to one page"
    return valid


def _pages():
    p = make_pages(40, seed=3)
    rng = np.random.default_rng(4)
    extra = np.zeros((6, PS), np.uint8)
    extra[0, ::7] = 1  # sparse
    extra[1] = rng.integers(97, 100, PS)  # text over a 3-letter alphabet: many short copies
    extra[2, :100] = rng.integers(0, 256, 100)  # a literal then a long run
    extra[3] = np.tile(rng.integers(0, 256, 3000), 2)[:PS]  # a copy from far back (2-byte offsets)
    extra[4] = 0xFF
    extra[5] = np.repeat(rng.integers(0, 256, PS // 64), 64)
    return np.concatenate([p, extra])


def test_valid_pages_decode_as_cramjam_and_twin():
    pages = _pages()
    blobs = [bytes(cramjam.snappy.compress_raw(p.tobytes())) for p in pages]
    assert check(blobs) == len(blobs)
    status, out = kernel(blobs)
    assert (status == 0).all() and (out == pages).all()


def _lit(data: bytes) -> bytes:
    """One literal element holding ``data`` (every length form: in the tag, 1, 2, 3 bytes)."""
    n = len(data) - 1
    if n < 60:
        return bytes([n << 2]) + data
    k = (n.bit_length() + 7) // 8
    return bytes([(59 + k) << 2]) + n.to_bytes(k, "little") + data


def _copy2(n: int, off: int) -> bytes:
    return bytes([((n - 1) << 2) | 2]) + off.to_bytes(2, "little")


def _copy4(n: int, off: int) -> bytes:
    return bytes([((n - 1) << 2) | 3]) + off.to_bytes(4, "little")


def _copy1(n: int, off: int) -> bytes:
    return bytes([((off >> 8) << 5) | ((n - 4) << 2) | 1, off & 0xFF])


HDR = bytes([0x80, 0x20])  # varint 4096


def test_named_edge_cases():
    page = bytes(range(256)) * 16
    ok = [
        HDR + _lit(page),  # one literal, 2-byte length form
        HDR + _lit(page[:1]) + b"".join(_copy2(64, 1) for _ in range(63)) + _copy2(63, 1),  # offset-1 runs
        HDR + _lit(page[:60]) + _lit(page[60:61]) + _lit(page[61:]),  # lengths 60 (tag form limit) and 61
        HDR + _lit(page[:8]) + _copy1(11, 8) + _copy4(64, 16) + _lit(bytes(PS - 83)),
        bytes([0x80, 0xA0, 0x00]) + _lit(page),  # an over-long varint for 4096: snappy accepts it
        bytes([0x80, 0xA0, 0x80, 0x80, 0x00]) + _lit(page),  # 5 varint bytes
    ]
    bad = [
        b"",  # nothing
        bytes([0x80]),  # varint cut short
        bytes([0x80, 0x80, 0x80, 0x80, 0x80, 0x00]) + _lit(page),  # 6 varint bytes
        bytes([0xFF, 0x1F]) + _lit(page),  # declares 4095
        bytes([0x81, 0x20]) + _lit(page) + _lit(b"x"),  # declares 4097
        HDR + _lit(page[:100]),  # too short
        HDR + _lit(page) + _lit(b"x"),  # past the page
        HDR + _lit(page) + b"\x00",  # a literal's tag and no data
        HDR + _lit(page[:10]) + _copy2(10, 0) + _lit(page[20:]),  # offset 0
        HDR + _lit(page[:10]) + _copy2(10, 11) + _lit(page[20:]),  # offset before the page
        HDR + _lit(page[:10]) + _copy1(4, 10)[:1],  # copy cut short (1-byte offset)
        HDR + _lit(page[:10]) + _copy2(4, 10)[:2],  # copy cut short (2-byte offset)
        HDR + _lit(page[:10]) + _copy4(4, 10)[:4],  # copy cut short (4-byte offset)
        HDR + _lit(page[:4090]) + _copy2(8, 10),  # a copy past the page
        HDR + bytes([(63 << 2)]) + b"\xff\xff\xff",  # a 4-byte literal length cut short
        HDR + bytes([(63 << 2)]) + b"\xff\xff\xff\xff" + page,  # a 4 GiB literal
    ]
    assert check(ok) == len(ok)
    assert check(bad) == 0


def test_random_corruptions_and_garbage():
    rng = np.random.default_rng(5)
    pages = _pages()
    blobs = []
    for p in pages:
        b = bytearray(cramjam.snappy.compress_raw(p.tobytes()))
        for _ in range(6):
            m = bytearray(b)
            what = rng.integers(0, 4)
            if what == 0:  # flip bytes
                for j in rng.integers(0, len(m), rng.integers(1, 4)):
                    m[j] = int(rng.integers(0, 256))
            elif what == 1:  # cut
                m = m[: int(rng.integers(0, len(m)))]
            elif what == 2:  # append
                m += bytes(rng.integers(0, 256, int(rng.integers(1, 8)), dtype=np.uint8))
            else:  # delete one byte
                j = int(rng.integers(0, len(m)))
                m = m[:j] + m[j + 1 :]
            blobs.append(bytes(m))
    for _ in range(200):
        blobs.append(HDR + bytes(rng.integers(0, 256, int(rng.integers(0, 64)), dtype=np.uint8)))
    check(blobs)


def test_kdump_chunk_buffers_are_reused_only_when_nothing_refers_to_them(tmp_path):
    """Decoded chunks land in reused buffers (a fresh 64 MiB array per chunk cost page faults
    and zeroing), also across readers, but never in one a caller still holds: held chunks keep
    their pages."""
    from dumps_helpers import write_dump

    from pagecore.dumps import open_dump

    pages = make_pages(64, seed=9)
    path = write_dump("kdump", tmp_path / "d.kdump", np.arange(64), pages, compression="snappy")
    with open_dump(path, chunk_pages=8) as r:
        held = list(r)  # every chunk kept: no buffer may be reused
        assert len({c.pages.ctypes.data for c in held}) == len(held) == 8
        for c in held:
            assert (c.pages == pages[c.gpfn.astype(np.int64)]).all()
    with open_dump(path, chunk_pages=8) as r2:  # another reader while the first one's chunks are held
        again = list(r2)
        assert not {c.pages.ctypes.data for c in held} & {c.pages.ctypes.data for c in again}
    for c in held:  # the held chunks were not written over
        assert (c.pages == pages[c.gpfn.astype(np.int64)]).all()
    del held, again, c
    seen = set()
    for _ in range(2):  # a reader after another: the buffers come round again (process-wide)
        with open_dump(path, chunk_pages=8) as r:
            for c in r:  # each chunk dropped before the next but one
                assert (c.pages == pages[c.gpfn.astype(np.int64)]).all()
                seen.add(c.pages.ctypes.data)
            del c
    assert len(seen) < 8
    with open_dump(path, chunk_pages=16) as r:  # larger chunks: buffers too small are replaced
        assert all((c.pages == pages[c.gpfn.astype(np.int64)]).all() for c in r)


def _lazy_free_kib() -> int:
    from pathlib import Path

    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("LazyFree:"):
            return int(line.split()[1])
    raise LookupError


def test_kdump_chunk_buffers_are_handed_to_the_kernel_when_the_reader_closes(tmp_path):
    """The shared chunk buffers stay mapped after a reader closes, but MADV_FREE lets the kernel
    take their memory back (it shows as LazyFree); buffers a caller still holds are not touched."""
    from dumps_helpers import write_dump

    from pagecore.dumps import open_dump

    try:
        _lazy_free_kib()
    except (OSError, LookupError):
        pytest.skip("no LazyFree in /proc/self/smaps_rollup (not Linux >= 4.14)")
    import gc

    gc.collect()  # earlier tests' tracebacks may still refer to (and so pin) pooled buffers
    pages = make_pages(1024, seed=12)
    path = write_dump("kdump", tmp_path / "d.kdump", np.arange(1024), pages, compression="snappy")
    with open_dump(path, chunk_pages=256) as r:
        chunks = iter(r)
        held = next(chunks)
        for c in chunks:  # read to the end (the other chunks' buffers are then free)
            assert (c.pages == pages[c.gpfn.astype(np.int64)]).all()
        del c
        before = _lazy_free_kib()
    after = _lazy_free_kib()
    # at least one free 1 MiB buffer handed back (buffers of earlier readers may have been replaced)
    assert after >= 1024 and after > before
    assert (held.pages == pages[held.gpfn.astype(np.int64)]).all()  # the held one kept its pages


def test_kdump_chunk_buffers_are_not_shared_with_a_forked_child(tmp_path):
    """A child forked while the parent holds chunks reads a dump of its own into the pool's
    buffers; the parent's chunks keep their pages (the child starts a pool of its own, and the
    buffers are private maps besides: either alone protects the parent)."""
    import os

    from dumps_helpers import write_dump

    from pagecore.dumps import open_dump

    if not hasattr(os, "fork"):
        pytest.skip("no os.fork")
    a, b = make_pages(64, seed=13), make_pages(64, seed=14)
    pa = write_dump("kdump", tmp_path / "a.kdump", np.arange(64), a, compression="snappy")
    pb = write_dump("kdump", tmp_path / "b.kdump", np.arange(64), b, compression="snappy")
    with open_dump(pa, chunk_pages=16) as r:
        held = list(r)
    del r
    pid = os.fork()
    if pid == 0:  # the child: read the other dump, with the buffers freed in its copy
        code = 1
        try:
            del held
            with open_dump(pb, chunk_pages=16) as r:
                code = 0 if all((c.pages == b[c.gpfn.astype(np.int64)]).all() for c in r) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    for c in held:
        assert (c.pages == a[c.gpfn.astype(np.int64)]).all()


@pytest.mark.parametrize("compression", ["snappy", "zlib"])
def test_pages_split_over_flattened_records_go_through_the_kernels(monkeypatch, tmp_path, compression):
    """Pages split over records (small records: most of them) are gathered and decoded by the
    kernels, not one Python call each; a corrupt split page still gets the Python codec's error."""
    from dumps_helpers import read_all

    from pagecore.dumps import kdump
    from pagecore.dumps.flattened import write_kdump_flat
    from pagecore.errors import InputError

    if compression == "zlib" and not _pagecodec.HAVE_ZLIB:
        pytest.skip("no system libz")
    pages = make_pages(120, seed=11)
    path = write_kdump_flat(tmp_path / "f", np.arange(120), pages, compression=compression, record_bytes=700)
    calls = []
    real = kdump.KdumpReader._decode_py
    monkeypatch.setattr(kdump.KdumpReader, "_decode_py", lambda self, *a: calls.append(len(a[5])) or real(self, *a))
    got, stats = read_all(path)
    assert stats.pages_read == 120 and all(got[i] == pages[i].tobytes() for i in range(120))
    assert calls == []  # nothing needed Python
    # a split page with a corrupt stream: refused by the kernel, judged by the Python codec
    data = bytearray(path.read_bytes())
    from pagecore.dumps import open_dump

    with open_dump(path) as r:
        src = r._source()
        h = r._header(src)
        descs = np.frombuffer(bytes(src.read(h["desc_at"], h["ndesc"] * kdump.PAGE_DESC.itemsize)), kdump.PAGE_DESC)
        _, whole = src.locate(descs["offset"].astype(np.int64), descs["size"].astype(np.int64))
        flag = {"snappy": kdump.FLAG_SNAPPY, "zlib": kdump.FLAG_ZLIB}[compression]
        i = int(np.flatnonzero(~whole & (descs["flags"] == flag) & (descs["size"] > 40))[0])
        # snappy: the first byte of the declared length (no checksum: another byte could decode
        # to another valid page); zlib: a byte of the deflate data (the Adler-32 catches it)
        at = src.file_offset(int(descs["offset"][i]) + (0 if compression == "snappy" else 20))
    assert at is not None
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(InputError) as ei:
        read_all(path)
    assert compression in ei.value.problem and f"{i:#x}" in ei.value.problem
    assert calls  # the Python codec judged it
