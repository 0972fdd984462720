"""Dump readers on synthetic files: round trips, layouts' corner cases, bad input.

Real files written by QEMU and makedumpfile are checked in test_dumps_real.py; the fuzz test
is in test_dumps_fuzz.py.
"""

from __future__ import annotations

import hashlib
import os
import struct

import numpy as np
import pytest
from dumps_helpers import PS, expected, make_pages, read_all, write_dump

from pagecore.cli import main as cli_main
from pagecore.dumps import READERS, detect_format, open_dump
from pagecore.dumps.elf import write_elf
from pagecore.dumps.flattened import RECORD, write_flattened
from pagecore.dumps.kdump import PAGE_DESC, KdumpReader, kdump_bytes_iter, write_kdump
from pagecore.dumps.lime import HEADER as LIME_HEADER
from pagecore.dumps.lime import LIME_MAGIC, lime_from_raw, write_lime
from pagecore.errors import InputError
from pagecore.pages.tables import page_table_metadata

FORMATS = ["raw", "elf", "lime", "kdump", "kdump-flat"]


@pytest.fixture
def pages():
    return make_pages(40, seed=1)


# ------------------------------------------------------------------ round trips
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("chunk_pages", [1, 7, 4096])
def test_round_trip(tmp_path, pages, fmt, chunk_pages):
    if fmt == "raw":
        pfns = np.arange(len(pages))
    else:  # holes: three runs of frames
        pfns = np.r_[np.arange(0, 10), np.arange(0x100, 0x110), np.arange(0x9000, 0x900E)]
    path = write_dump(fmt, tmp_path / f"d.{fmt}", pfns, pages)
    assert detect_format(path) == fmt
    got, stats = read_all(path, chunk_pages=chunk_pages)
    assert got == expected(pfns, pages)
    assert stats.pages_read == len(pages)
    assert stats.pages_skipped == stats.pages_excluded == stats.pages_partial == 0


@pytest.mark.parametrize("compression", [None, "zlib", "lzo", "snappy", "zstd"])
@pytest.mark.parametrize("flat", [False, True])
def test_kdump_codecs(tmp_path, pages, compression, flat):
    pfns = np.arange(3, 3 + len(pages))
    path = write_dump("kdump-flat" if flat else "kdump", tmp_path / "d", pfns, pages, compression=compression)
    got, stats = read_all(path)
    assert got == expected(pfns, pages)
    assert stats.pages_read == len(pages)


def test_kdump_excluded_pages_are_counted(tmp_path, pages):
    pfns = np.arange(0, 80, 2)  # even frames dumped
    excluded = np.arange(1, 60, 2)  # 30 odd frames exist but were filtered out
    path = write_kdump(tmp_path / "d.kdump", pfns, pages, excluded=excluded, dump_level=31)
    with open_dump(path) as r:
        got = {int(g): p.tobytes() for c in r for g, p in zip(c.gpfn, c.pages, strict=True)}
        meta = r.metadata()
    assert got == expected(pfns, pages)
    assert meta["pages_read"] == 40 and meta["pages_excluded"] == 30 and meta["dump_level"] == 31
    for flat in (False, True):
        q = write_dump("kdump-flat" if flat else "kdump", tmp_path / f"h{flat}", pfns, pages, excluded=excluded)
        with open_dump(q) as r:
            assert r.pages_hint == 40


def test_kdump_parallel_equals_serial(tmp_path):
    pages = make_pages(700, seed=3)
    pfns = np.arange(len(pages))
    path = write_kdump(tmp_path / "d.kdump", pfns, pages, compression="zlib")
    results = []
    for threads in (1, 4):
        with open_dump(path, chunk_pages=300) as r:
            r.threads = threads
            results.append([(c.gpfn.copy(), c.pages.copy()) for c in r])
    for (g1, p1), (g2, p2) in zip(*results, strict=True):
        assert np.array_equal(g1, g2) and np.array_equal(p1, p2)


def test_kdump_diskdump_signature_and_zero_page_sharing(tmp_path):
    pages = np.zeros((10, PS), np.uint8)
    pages[3, 7] = 1
    path = write_kdump(tmp_path / "d", np.arange(10), pages, signature=b"DISKDUMP")
    assert detect_format(path) == "kdump"
    # all nine zero pages point at one stored page
    assert path.stat().st_size < 4 * PS + 10 * PAGE_DESC.itemsize + 3 * PS
    got, _ = read_all(path)
    assert got == expected(np.arange(10), pages)


def test_lime_from_raw_matches_raw(tmp_path, pages):
    raw = tmp_path / "g.raw"
    raw.write_bytes(pages.tobytes())
    lime = lime_from_raw(raw, tmp_path / "g.lime", splits=(5 * PS, 0x2345))
    assert read_all(lime)[0] == read_all(raw)[0]


# ------------------------------------------------------------- layout corners
def test_elf_unaligned_segments_and_memsz(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, 3 * PS, dtype=np.uint8)
    b = rng.integers(0, 256, 2 * PS, dtype=np.uint8)
    # segment A starts 0x800 into frame 1 and ends 0x800 into frame 4; B fills the rest of
    # frame 4 and two more frames; p_memsz of B covers 3 frames beyond its data
    segs = [(PS + 0x800, a), (4 * PS + 0x800, b[: 2 * PS - 0x800], 2 * PS - 0x800 + 3 * PS)]
    path = write_elf(tmp_path / "u.elf", segs, align=8)
    got, stats = read_all(path)
    img = np.zeros(8 * PS, np.uint8)
    img[PS + 0x800 : 4 * PS + 0x800] = a
    img[4 * PS + 0x800 : 6 * PS] = b[: 2 * PS - 0x800]
    assert sorted(got) == [1, 2, 3, 4, 5]
    for g, data in got.items():
        assert data == img[g * PS : (g + 1) * PS].tobytes(), g
    assert stats.pages_partial == 2  # frame 1 (head of A) and frame 4 (A's tail + B's head)
    assert stats.pages_excluded == 3


def test_lime_unaligned_inclusive_ranges(tmp_path):
    data = bytes(range(251)) * 49  # 3 pages of bytes (12,299 > 3 * 4096)
    # /proc/iomem style: 0x1000-0x2bff is range 1, 0x2c00-0x3fff range 2
    path = write_lime(tmp_path / "r.lime", [(0x1000, data[:0x1C00]), (0x2C00, data[0x1C00:0x3000])])
    raw = path.read_bytes()
    assert struct.unpack_from("<IIQQ", raw, 0) == (LIME_MAGIC, 1, 0x1000, 0x2BFF)  # inclusive end
    got, stats = read_all(path)
    assert got == {1: data[:PS], 2: data[PS : 2 * PS], 3: data[2 * PS : 3 * PS]}
    assert stats.pages_partial == 1  # frame 2 is assembled from both ranges


def test_flattened_out_of_order_and_overwritten_records(tmp_path, pages):
    pfns = np.arange(len(pages))
    writes = list(kdump_bytes_iter(pfns, pages, compression="zlib"))
    # shuffle record order; write the header first with garbage, then correctly (later wins)
    rng = np.random.default_rng(5)
    order = rng.permutation(len(writes))
    garbage = (0, b"\xff" * len(writes[0][1]))
    shuffled = [garbage] + [writes[i] for i in order]
    path = write_flattened(tmp_path / "d.flat", shuffled, record_bytes=1000)
    got, _ = read_all(path)
    assert got == expected(pfns, pages)


@pytest.mark.parametrize("compression", ["zlib", "snappy", None])
def test_flattened_packed_records_as_qemu_writes_them(tmp_path, pages, compression):
    """``pack``: consecutive writes share records of at most ``record_bytes`` (QEMU's write_cache),
    no blob is split over two records, and the file reads back as the unpacked one does."""
    if compression == "snappy":
        pytest.importorskip("cramjam")
    pfns = np.arange(len(pages))
    writes = list(kdump_bytes_iter(pfns, pages, compression=compression))
    path = write_flattened(tmp_path / "p.flat", writes, record_bytes=16384, pack=True)
    raw = path.read_bytes()
    off, recs = 4096, []
    while True:
        voff, n = RECORD.unpack_from(raw, off)
        if voff == -1:
            break
        recs.append((voff, n))
        off += 16 + n
    assert off + 16 == len(raw)
    assert all(n <= 16384 for _, n in recs)
    assert len(recs) < sum(-(-len(d) // 16384) for _, d in writes)  # writes were packed together
    starts = {v for v, _ in recs}
    for o, d in writes:  # a write no longer than a record starts a record or follows in one
        if len(d) <= 16384:
            assert any(v <= o and o + len(d) <= v + n for v, n in recs), o
    assert 0 in starts
    got, _ = read_all(path)
    assert got == expected(pfns, pages)


# ---------------------------------------------------------------- bad input
def _err(path, fmt="auto", **kw) -> InputError:
    with pytest.raises(InputError) as ei:
        read_all(path, fmt, **kw)
    msg = str(ei.value)
    assert str(path) in msg and "\n" not in msg
    return ei.value


@pytest.mark.parametrize("fmt", ["elf", "lime", "kdump", "kdump-flat", "raw"])
def test_empty_file(tmp_path, fmt):
    p = tmp_path / "empty"
    p.write_bytes(b"")
    e = _err(p, fmt)
    assert "empty" in e.problem and e.offset == 0


def test_directory_and_missing_path(tmp_path):
    assert "directory" in _err(tmp_path).problem
    assert "no such file" in _err(tmp_path / "nope").problem


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable(tmp_path):
    p = tmp_path / "locked"
    p.write_bytes(b"\0" * PS)
    p.chmod(0)
    assert "permission" in _err(p).problem


def test_unknown_format_lists_what_was_tried(tmp_path):
    p = tmp_path / "x.bin"
    p.write_bytes(b"hello")
    msg = str(_err(p))
    for name in ("elf", "lime", "kdump", "kdump-flat", "raw"):
        assert name in msg
    assert "--format" in msg


@pytest.mark.parametrize("fmt", ["elf", "lime", "kdump", "kdump-flat"])
def test_wrong_magic_with_forced_format(tmp_path, fmt):
    p = tmp_path / "x.bin"
    p.write_bytes(b"\x01" * (3 * PS))
    e = _err(p, fmt)
    assert e.offset == 0 and e.expected


@pytest.mark.parametrize("fmt", ["elf", "lime", "kdump", "kdump-flat"])
@pytest.mark.parametrize("keep", [20, 100, 0.5, 0.99])
def test_truncated(tmp_path, pages, fmt, keep):
    src = write_dump(fmt, tmp_path / "d", np.arange(len(pages)), pages)
    data = src.read_bytes()
    cut = keep if isinstance(keep, int) else int(len(data) * keep)
    p = tmp_path / "cut"
    p.write_bytes(data[:cut])
    e = _err(p, fmt)
    assert e.hint


def test_truncated_elf_skip_bad_pages_counts(tmp_path, pages):
    src = write_dump("elf", tmp_path / "d", np.arange(len(pages)), pages)
    p = tmp_path / "cut.elf"
    p.write_bytes(src.read_bytes()[: -10 * PS - 100])  # lose 10 pages and a bit
    assert "past the end" in _err(p).problem
    got, stats = read_all(p, skip_bad_pages=True)
    assert stats.pages_skipped == 10
    assert len(got) == 30 and stats.pages_partial == 1  # the cut page is read partly
    want = expected(np.arange(len(pages)), pages)
    assert all(got[g] == want[g] for g in range(29))


def test_raw_not_page_multiple(tmp_path, pages):
    p = tmp_path / "odd.raw"
    p.write_bytes(pages.tobytes()[:-5])
    assert "multiple" in _err(p, "raw").problem


def test_overlapping_ranges(tmp_path):
    a = np.ones(2 * PS, np.uint8)
    p = write_elf(tmp_path / "o.elf", [(0, a), (PS, a)])
    assert "overlaps" in _err(p).problem
    q = write_lime(tmp_path / "o.lime", [(0, a), (PS + 8, a)])
    assert "overlaps" in _err(q).problem


def test_lime_bad_second_header(tmp_path):
    a = np.ones(PS, np.uint8)
    p = write_lime(tmp_path / "b.lime", [(0, a), (PS, a)])
    raw = bytearray(p.read_bytes())
    raw[LIME_HEADER.size + PS] ^= 0xFF
    p.write_bytes(raw)
    e = _err(p)
    assert "magic" in e.problem and e.offset == LIME_HEADER.size + PS


def _kdump_desc_offset(path) -> int:
    r = KdumpReader(path)
    h = r._parse(r._source())
    r.close()
    return h["desc_at"]


@pytest.mark.parametrize("compression", ["zlib", "lzo", "snappy", "zstd"])
def test_corrupt_compressed_page(tmp_path, compression):
    pages = make_pages(20, seed=2)
    p = write_kdump(tmp_path / "c.kdump", np.arange(20), pages, compression=compression)
    raw = bytearray(p.read_bytes())
    desc_at = _kdump_desc_offset(p)
    descs = np.frombuffer(bytes(raw[desc_at : desc_at + 20 * PAGE_DESC.itemsize]), PAGE_DESC)
    victim = int(np.flatnonzero(descs["flags"] != 0)[0])
    off, size = int(descs[victim]["offset"]), int(descs[victim]["size"])
    raw[off : off + size] = bytes(b ^ 0x5A for b in raw[off : off + size])
    p.write_bytes(raw)
    e = _err(p)
    assert compression in e.problem and e.offset == off
    got, stats = read_all(p, skip_bad_pages=True)
    assert stats.pages_skipped >= 1 and len(got) == 20 - stats.pages_skipped
    want = expected(np.arange(20), pages)
    assert all(got[g] == want[g] for g in got)


def test_unknown_compression_flag(tmp_path, pages):
    p = write_kdump(tmp_path / "f.kdump", np.arange(len(pages)), pages, compression="zlib")
    raw = bytearray(p.read_bytes())
    desc_at = _kdump_desc_offset(p)
    struct.pack_into("<I", raw, desc_at + 5 * PAGE_DESC.itemsize + 12, 0x40)
    p.write_bytes(raw)
    e = _err(p)
    assert "unknown compression flag 0x40" in e.problem and e.offset == desc_at + 5 * PAGE_DESC.itemsize
    _, stats = read_all(p, skip_bad_pages=True)
    assert stats.pages_skipped == 1 and stats.pages_read == len(pages) - 1


def test_flattened_missing_end_record_and_gap(tmp_path, pages):
    writes = list(kdump_bytes_iter(np.arange(len(pages)), pages))
    p = write_flattened(tmp_path / "d.flat", writes)
    raw = p.read_bytes()
    assert raw.endswith(RECORD.pack(-1, -1))
    (tmp_path / "noend.flat").write_bytes(raw[: -RECORD.size])
    assert "end record" in _err(tmp_path / "noend.flat").problem
    # drop the record holding the page-descriptor table: reads of it must fail, not read zeros
    q = write_flattened(tmp_path / "gap.flat", [w for w in writes if w[1] is not writes[4][1]])
    assert "missing" in _err(q).problem


# ------------------------------------------------------------- CLI behaviour
def test_cli_hash_bad_dump_one_line_no_output(tmp_path, capsys, pages):
    p = write_kdump(tmp_path / "bad.kdump", np.arange(len(pages)), pages)
    raw = bytearray(p.read_bytes())
    raw[-100:] = b"\x00" * 100
    p.write_bytes(raw[: len(raw) // 2])
    before = hashlib.sha256(p.read_bytes()).hexdigest()
    out = tmp_path / "pages.parquet"
    rc = cli_main(["hash", str(p), "-o", str(out), "--vm", "x", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and err[0].startswith("pagecore: error:") and str(p) in err[0]
    assert not out.exists() and not list(tmp_path.glob(".pages.parquet*"))
    assert hashlib.sha256(p.read_bytes()).hexdigest() == before  # input untouched


@pytest.mark.parametrize("fmt", ["elf", "lime", "kdump", "kdump-flat"])
def test_cli_hash_every_format(tmp_path, pages, fmt):
    import pyarrow.parquet as pq

    p = write_dump(fmt, tmp_path / "d", np.arange(len(pages)), pages)
    out = tmp_path / "p.parquet"
    assert cli_main(["hash", str(p), "-o", str(out), "--vm", "g", "-q"]) == 0
    assert pq.read_table(out).num_rows == len(pages)
    meta = page_table_metadata(out)
    assert meta["format"] == fmt and meta["pages_read"] == len(pages)


def test_every_reader_registered():
    assert set(FORMATS) <= set(READERS)


# ------------------------------------------------------------ header variants
def test_kdump_header_version_5_uses_32bit_max_mapnr(tmp_path, pages):
    pfns = np.arange(5, 5 + len(pages))
    p = write_kdump(tmp_path / "v5.kdump", pfns, pages, header_version=5, compression="zstd")
    raw = bytearray(p.read_bytes())
    struct.pack_into("<Q", raw, PS + 96, 0)  # a v5 producer leaves max_mapnr_64 unset
    p.write_bytes(raw)
    got, _ = read_all(p)
    assert got == expected(pfns, pages)


def test_kdump_split_part_reads_its_own_range(tmp_path, pages):
    """makedumpfile --split: full bitmaps, descriptors only for [start_pfn, end_pfn)."""
    part = np.arange(10, 20)
    p = write_kdump(tmp_path / "part.kdump", part, pages[:10], max_mapnr=64)
    raw = bytearray(p.read_bytes())
    r = KdumpReader(p)
    h = r._parse(r._source())
    r.close()
    bm = np.zeros(64 * 8, bool)
    bm[:30] = True  # frames 0..29 dumped across all parts; 30..39 excluded
    raw[h["bitmap2"] : h["bitmap2"] + 64] = np.packbits(bm, bitorder="little")[:64].tobytes()
    bm[30:40] = True
    raw[h["bitmap1"] : h["bitmap1"] + 64] = np.packbits(bm, bitorder="little")[:64].tobytes()
    struct.pack_into("<i", raw, PS + 12, 1)  # split
    struct.pack_into("<QQ", raw, PS + 80, 10, 20)  # start_pfn_64, end_pfn_64
    p.write_bytes(raw)
    got, stats = read_all(p)
    assert got == expected(part, pages[:10])
    assert stats.pages_excluded == 0  # none of 30..39 lies in this part's range


@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize("elfclass", [1, 2])
def test_elf32_and_big_endian(tmp_path, endian, elfclass):
    data = make_pages(3, seed=4)
    paddr = 0x5000
    if elfclass == 2:
        eh, ph = struct.Struct(endian + "16sHHIQQQIHHHHHH"), struct.Struct(endian + "IIQQQQQQ")
        phdr = ph.pack(1, 7, eh.size + ph.size, 0, paddr, data.nbytes, data.nbytes, 0)
    else:
        eh, ph = struct.Struct(endian + "16sHHIIIIIHHHHHH"), struct.Struct(endian + "IIIIIIII")
        phdr = ph.pack(1, eh.size + ph.size, 0, paddr, data.nbytes, data.nbytes, 7, 0)
    ident = b"\x7fELF" + bytes([elfclass, 1 if endian == "<" else 2, 1]) + b"\0" * 9
    head = eh.pack(ident, 4, 62, 1, 0, eh.size, 0, 0, eh.size, ph.size, 1, 0, 0, 0)
    p = tmp_path / "c.elf"
    p.write_bytes(head + phdr + data.tobytes())
    got, _ = read_all(p)
    assert got == expected(np.arange(5, 8), data)


def _scan_flat_twin(buf: bytes, off: int, stop: int, size: int, max_offset: int, cap: int):
    """Slow twin of _pagecodec.scan_flat: one struct.unpack per record."""
    import struct

    from pagecore.dumps import _pagecodec as pc

    recs = []
    while True:
        if off + 16 > size:
            return recs, off, pc.SCAN_FILE_ENDS, 0, 0
        if off >= stop or len(recs) == cap:
            return recs, off, pc.SCAN_MORE, 0, 0
        voff, n = struct.unpack_from(">qq", buf, off)
        if voff == -1 and n == -1:
            return recs, off, pc.SCAN_END_RECORD, voff, n
        if voff < 0 or n < 0:
            return recs, off, pc.SCAN_NEGATIVE, voff, n
        if voff + n > max_offset:
            return recs, off, pc.SCAN_TOO_FAR, voff, n
        if off + 16 + n > size:
            return recs, off, pc.SCAN_PAST_END, voff, n
        if n:
            recs.append((voff, voff + n, off + 16))
        off += 16 + n


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ending", ["end", "negative", "too_far", "past_end", "cut_header", "none"])
def test_flattened_record_scan_kernel_matches_twin(seed, ending):
    import struct

    from pagecore.dumps import _pagecodec as pc

    rng = np.random.default_rng(seed)
    out = bytearray()
    for _ in range(int(rng.integers(0, 40))):
        n = int(rng.choice([0, 1, 7, 4096, int(rng.integers(0, 300))]))
        out += struct.pack(">qq", int(rng.integers(0, 1 << 40)), n) + rng.bytes(n)
    tail = {
        "end": struct.pack(">qq", -1, -1),
        "negative": struct.pack(">qq", -5, 3) + bytes(3),
        "too_far": struct.pack(">qq", (1 << 62) - 2, 3) + bytes(3),
        "past_end": struct.pack(">qq", 0, 1000) + bytes(10),
        "cut_header": struct.pack(">qq", 0, 1)[:9],
        "none": b"",
    }[ending]
    buf = bytes(out + tail)
    arr = np.frombuffer(buf, np.uint8) if buf else np.zeros(0, np.uint8)
    for stop, cap in ((len(buf) + 1, 64), (int(rng.integers(0, len(buf) + 1)), 64), (len(buf) + 1, 3)):
        vs, ve, fs = (np.empty(cap, np.int64) for _ in range(3))
        k, at, code, voff, n = pc.scan_flat(arr, 0, stop, len(buf), 1 << 62, vs, ve, fs)
        recs, at2, code2, voff2, n2 = _scan_flat_twin(buf, 0, stop, len(buf), 1 << 62, cap)
        assert (at, code, voff, n) == (at2, code2, voff2, n2)
        assert list(zip(vs[:k].tolist(), ve[:k].tolist(), fs[:k].tolist(), strict=True)) == recs
