"""kdump-compressed ("diskdump") dumps: makedumpfile, ``crash``, QEMU ``kdump-raw-*``.

Layout (makedumpfile ``diskdump_mod.h``, QEMU ``include/sysemu/dump.h``; checked against
files written by QEMU 7.2 and makedumpfile 1.7.2), all fields little-endian on x86:

* block 0: ``disk_dump_header``: ``signature[8]`` (``"KDUMP   "`` or the older
  ``"DISKDUMP"``), ``header_version`` (i32), ``utsname`` (6 x 65 chars), ``timestamp``
  (a 64-bit ``timeval``, padded: the next field is at byte 424), ``status``, ``block_size``,
  ``sub_hdr_size`` (blocks), ``bitmap_blocks``, ``max_mapnr`` (u32; see below),
  ``total_ram_blocks``, ``device_blocks``, ``written_blocks``, ``current_cpu``, ``nr_cpus``.
  32-bit producers pack ``timestamp`` in 8 bytes (fields from byte 412); both are read.
* block 1 (``sub_hdr_size`` blocks): ``kdump_sub_header``: ``phys_base``, ``dump_level``,
  ``split``, ``start_pfn``, ``end_pfn``, vmcoreinfo/note/eraseinfo offsets and sizes, and
  from header version 6 the 64-bit ``start_pfn_64``, ``end_pfn_64``, ``max_mapnr_64``.
* ``bitmap_blocks`` blocks holding **both** bitmaps, one half each (the description in
  ``formats-ksm-esxi.md`` doubles this; real files do not): the 1st says which frames exist
  in the guest, the 2nd which of them were dumped. Bit ``pfn % 8`` of byte ``pfn // 8``.
* the page-descriptor table: one 24-byte ``page_desc`` (``offset`` i64, ``size`` u32,
  ``flags`` u32, ``page_flags`` u64) per set bit of the 2nd bitmap, in frame order, at block
  ``1 + sub_hdr_size + bitmap_blocks``.
* page data, each page compressed (flags zlib 0x1, lzo 0x2, snappy 0x4, zstd 0x20) or raw
  (flags 0, ``size == block_size``). QEMU points every all-zero page at one raw zero page.

Frames set in the 1st bitmap but not the 2nd were left out by the producer (makedumpfile
``dump_level``: zero, cache, user and free pages): they are counted in
``stats.pages_excluded``, never silently dropped. Split dumps (``makedumpfile --split``)
hold the frames ``[start_pfn, end_pfn)``; read each part on its own.

Pages are decompressed by a thread pool, a batch of pages per task, while the caller works
on the previous chunk: zlib, zstd and cramjam's snappy release the GIL. Memory is bounded by
two chunks.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from pagecore.dumps import _pagecodec
from pagecore.dumps.base import MmapReader, PageChunk, register
from pagecore.errors import InputError

SIGNATURES = (b"KDUMP   ", b"DISKDUMP")

FLAG_ZLIB = 0x1
FLAG_LZO = 0x2
FLAG_SNAPPY = 0x4
FLAG_ZSTD = 0x20
COMPRESSION_FLAGS = {FLAG_ZLIB: "zlib", FLAG_LZO: "lzo", FLAG_SNAPPY: "snappy", FLAG_ZSTD: "zstd"}
KNOWN_FLAGS = FLAG_ZLIB | FLAG_LZO | FLAG_SNAPPY | FLAG_ZSTD
# per-page status while decoding (negative zlib codes come from the C library)
NOT_DONE, BAD_FLAG, BAD_RANGE, BAD_RAW_SIZE, BAD_CODEC, BAD_LENGTH = 1, 2, 3, 4, 5, 6
#: header ``status`` bit: the producer stopped before writing every page.
STATUS_INCOMPLETE = 0x8

HEADER_TAIL = struct.Struct("<10I")  # status .. nr_cpus
HEADER64_TAIL_AT = 424
HEADER32_TAIL_AT = 412
SUB_HEADER = struct.Struct("<QiiQQQQQQQQQQQ")
PAGE_DESC = np.dtype([("offset", "<i8"), ("size", "<u4"), ("flags", "<u4"), ("page_flags", "<u8")])

#: Pages per decompression task: enough to amortize a task's overhead, small enough to
#: spread a chunk over the threads.
BATCH_PAGES = 256
#: Bitmap bytes examined at a time (bounds memory for guests with huge frame numbers).
BITMAP_STEP = 1 << 16


# --------------------------------------------------------------------------- codecs
_tls = threading.local()


def _zlib(src, n):
    return zlib.decompress(src, bufsize=n)


def _lzo(src, n):
    import lzokay

    return lzokay.decompress(bytes(src), n)


def _snappy(src, n):
    import cramjam

    return cramjam.snappy.decompress_raw(src)


def _snappy_into(src, dst) -> int:
    """Decompress one snappy page straight into ``dst``; returns the bytes written."""
    import cramjam

    # a stream longer than dst raises; a shorter one returns fewer bytes
    return cramjam.snappy.decompress_raw_into(src, dst)


def _zstd(src, n):
    d = getattr(_tls, "zstd", None)
    if d is None:
        import zstandard

        d = _tls.zstd = zstandard.ZstdDecompressor()
    return d.decompress(src, max_output_size=n)


CODECS = {FLAG_ZLIB: _zlib, FLAG_LZO: _lzo, FLAG_SNAPPY: _snappy, FLAG_ZSTD: _zstd}
CODEC_PACKAGES = {FLAG_LZO: "lzokay", FLAG_SNAPPY: "cramjam", FLAG_ZSTD: "zstandard"}


def default_threads() -> int:
    """Decompression threads: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


# -------------------------------------------------------------------------- sources
class _MmapSource:
    """The dump file itself, as a read-only mmap (zero-copy slices)."""

    def __init__(self, buf: np.ndarray):
        self.buf = buf
        self.size = int(buf.shape[0])

    def covered(self, off: int, n: int) -> bool:
        return 0 <= off and off + n <= self.size

    def read(self, off: int, n: int) -> np.ndarray:
        return self.buf[off : off + n]

    def locate(self, offs: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """File offsets of blobs, and whether each lies whole inside the file."""
        return offs, (offs >= 0) & (offs + sizes <= self.size)


# --------------------------------------------------------------------------- reader
@register
class KdumpReader(MmapReader):
    """Reader for kdump-compressed files (makedumpfile, QEMU ``kdump-raw-*``)."""

    name = "kdump"
    magic_description = "'KDUMP   ' or 'DISKDUMP' at byte 0"
    #: Decompression threads; set before iterating (default: all usable CPUs).
    threads: int | None = None

    @classmethod
    def sniff(cls, head: bytes, size: int) -> bool:
        return head[:8] in SIGNATURES

    # source hooks (the flattened reader overrides these) --------------------------
    def _source(self):
        return _MmapSource(self._map())

    def _where(self, off: int) -> int:
        """File offset of kdump byte ``off`` (the flattened reader maps it)."""
        return off

    def _kind(self) -> str:
        return "kdump-compressed"

    # header ------------------------------------------------------------------------
    def _release_kdump_range(self, src, off: int, n: int) -> None:
        """Release the mapping of kdump bytes [off, off+n) once they have been copied."""
        lo = src.file_offset(off) if hasattr(src, "file_offset") else off
        hi = src.file_offset(off + n - 1) if hasattr(src, "file_offset") else off + n - 1
        if lo is not None and hi is not None and hi >= lo:
            self._release(lo, hi + 1 - lo)

    def _err(self, problem, off, expected, hint="the dump is truncated or corrupt; re-create it"):
        return InputError(
            self.path, problem, offset=self._where(off) if off is not None else None, expected=expected, hint=hint
        )

    def _need(self, src, off, n, what):
        if not src.covered(off, n):
            raise self._err(
                f"truncated {self._kind()} file: {what} ({n:,} bytes at {self._kind()} offset {off:,}) is missing",
                off if off < getattr(src, "size", 0) else None,
                what,
            )
        return src.read(off, n)

    def _parse(self, src) -> dict:
        if self.file_size == 0:
            raise InputError(
                self.path,
                "file is empty",
                offset=0,
                expected="a kdump header",
                hint="check that the dump finished writing",
            )
        head = bytes(self._need(src, 0, HEADER64_TAIL_AT + HEADER_TAIL.size, "the disk_dump_header"))
        if head[:8] not in SIGNATURES:
            raise self._err(
                f"bad signature {head[:8]!r}",
                0,
                "'KDUMP   ' or 'DISKDUMP'",
                hint="this is not a kdump-compressed file; pass the right --format",
            )
        version = struct.unpack_from("<i", head, 8)[0]
        tail = None
        for at in (HEADER64_TAIL_AT, HEADER32_TAIL_AT):
            t = HEADER_TAIL.unpack_from(head, at)
            bs = t[1]
            if 512 <= bs <= 1 << 16 and bs & (bs - 1) == 0:
                tail, tail_at = t, at
                break
        if tail is None:
            raise self._err(
                "no valid block_size in the disk_dump_header",
                HEADER64_TAIL_AT + 4,
                "a power of two between 512 and 65536 at byte 428 (64-bit) or 416 (32-bit)",
            )
        status, bs, sub_blocks, bitmap_blocks, max_mapnr32 = tail[:5]
        if bs != self.page_size:
            raise self._err(
                f"block size {bs} differs from the {self.page_size}-byte page size",
                tail_at + 4,
                f"block_size {self.page_size}",
                hint="pagecore handles 4 KiB pages only",
            )
        if version < 1 or version > 64:
            raise self._err(f"implausible header_version {version}", 8, "1..6")
        if sub_blocks < 1 or bitmap_blocks < 2 or bitmap_blocks % 2:
            raise self._err(
                f"sub_hdr_size {sub_blocks} / bitmap_blocks {bitmap_blocks} make no sense",
                tail_at + 8,
                "sub_hdr_size >= 1 and an even bitmap_blocks >= 2",
            )
        sub = SUB_HEADER.unpack_from(bytes(self._need(src, bs, SUB_HEADER.size, "the kdump_sub_header")))
        (_phys_base, dump_level, split, start_pfn, end_pfn, *_, start64, end64, mapnr64) = sub
        max_mapnr = mapnr64 if version >= 6 and mapnr64 else max_mapnr32
        if version >= 6 and split:
            start_pfn, end_pfn = start64, end64
        bitmap_at = bs * (1 + sub_blocks)
        half = bitmap_blocks * bs // 2
        if max_mapnr > half * 8:
            raise self._err(
                f"max_mapnr {max_mapnr:,} needs more bitmap than the {half:,} bytes per bitmap the header gives",
                tail_at + 16 if version < 6 else bs + 96,
                "max_mapnr <= 8 * bitmap_blocks * block_size / 2",
            )
        self._need(src, bitmap_at, 2 * half, "the two page bitmaps")
        if not split:
            start_pfn, end_pfn = 0, max_mapnr
        elif not (0 <= start_pfn <= end_pfn <= max_mapnr):
            raise self._err(
                f"split dump range [{start_pfn}, {end_pfn}) is outside [0, {max_mapnr})",
                bs + 16,
                "start_pfn <= end_pfn <= max_mapnr",
            )
        return dict(
            version=version,
            status=status,
            block_size=bs,
            dump_level=dump_level,
            bitmap1=bitmap_at,
            bitmap2=bitmap_at + half,
            max_mapnr=max_mapnr,
            start_pfn=start_pfn,
            end_pfn=end_pfn,
            desc_at=bs * (1 + sub_blocks + bitmap_blocks),
        )

    # pfns ----------------------------------------------------------------------------
    def _dumped_pfns(self, src, h) -> Iterator[np.ndarray]:
        """Yield runs of dumped frame numbers in order; count excluded frames."""
        lo, hi = h["start_pfn"], h["end_pfn"]
        byte0 = lo // 8
        for b in range(byte0, -(-hi // 8), BITMAP_STEP):
            nb = min(BITMAP_STEP, -(-hi // 8) - b)
            bm1 = np.unpackbits(src.read(h["bitmap1"] + b, nb), bitorder="little").astype(bool)
            bm2 = np.unpackbits(src.read(h["bitmap2"] + b, nb), bitorder="little").astype(bool)
            first = b * 8
            a, z = max(lo - first, 0), min(hi - first, nb * 8)
            bm1, bm2 = bm1[a:z], bm2[a:z]
            self.stats.pages_excluded += int(np.count_nonzero(bm1 & ~bm2))
            pfns = np.flatnonzero(bm2)
            if pfns.size:
                yield (pfns + (first + a)).astype(np.uint64)

    def _chunk_specs(self, src, h) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (index of the first descriptor, pfns) per chunk."""
        pos = 0
        pending: list[np.ndarray] = []
        npend = 0
        for run in self._dumped_pfns(src, h):
            pending.append(run)
            npend += len(run)
            while npend >= self.chunk_pages:
                allp = np.concatenate(pending)
                yield pos, allp[: self.chunk_pages]
                pos += self.chunk_pages
                rest = allp[self.chunk_pages :]
                pending, npend = ([rest], len(rest)) if len(rest) else ([], 0)
        if npend:
            yield pos, np.concatenate(pending)

    @property
    def pages_hint(self) -> int | None:
        """Frames set in the 2nd bitmap (within a split part's range); None if unreadable."""
        try:
            if self.file_size == 0:
                return None
            src = self._source()
            h = self._parse(src)
        except InputError:
            return None
        lo, hi = h["start_pfn"], h["end_pfn"]
        n = 0
        for b in range(lo // 8, -(-hi // 8), BITMAP_STEP):
            nb = min(BITMAP_STEP, -(-hi // 8) - b)
            bits = np.unpackbits(np.asarray(src.read(h["bitmap2"] + b, nb)), bitorder="little")
            first = b * 8
            n += int(np.count_nonzero(bits[max(lo - first, 0) : min(hi - first, nb * 8)]))
        return n

    # pages ---------------------------------------------------------------------------
    def _decode_py(self, src, h, offs, sizes, flags, idx, out, status, errors, fileoffs, whole):
        """Decode pages ``idx`` with the Python codecs (lzo, snappy, zstd; zlib without libz)."""
        bs = h["block_size"]
        mv = memoryview(src.buf)  # slicing a memoryview is cheaper than slicing an array
        dst = memoryview(out.reshape(-1))
        # plain Python values: per-page numpy scalar access would cost more than the codec
        rows = zip(
            idx.tolist(),
            flags[idx].tolist(),
            sizes[idx].tolist(),
            fileoffs[idx].tolist(),
            whole[idx].tolist(),
            strict=True,
        )
        for i, flag, n, fo, in_one in rows:
            if in_one:
                data = mv[fo : fo + n]
            else:  # split over records of a flattened file
                data = src.read(int(offs[i]), n)
            if flag == 0:
                out[i] = data
                status[i] = 0
                continue
            try:
                if flag == FLAG_SNAPPY:
                    got = _snappy_into(data, dst[i * bs : (i + 1) * bs])
                    status[i] = 0 if got == bs else BAD_LENGTH
                    continue
                page = CODECS[flag](data, bs)
            except ImportError:
                errors.append(
                    InputError(
                        self.path,
                        f"pages are compressed with {COMPRESSION_FLAGS[flag]} but the Python package "
                        f"{CODEC_PACKAGES[flag]} is not installed",
                        hint=f"pip install {CODEC_PACKAGES[flag]}",
                    )
                )
                return
            except Exception as exc:  # every codec has its own error types
                status[i] = BAD_CODEC
                errors.append((i, str(exc)))
                continue
            if len(page) != bs:
                status[i] = BAD_LENGTH
                continue
            out[i] = np.frombuffer(page, np.uint8)
            status[i] = 0

    def _submit(self, pool, src, h, spec):
        pos, pfns = spec
        bs = h["block_size"]
        k = len(pfns)
        desc_off = h["desc_at"] + pos * PAGE_DESC.itemsize
        if not src.covered(desc_off, k * PAGE_DESC.itemsize):
            avail = max(0, (src.size - desc_off) // PAGE_DESC.itemsize) if src.covered(desc_off, 0) else 0
            if not self.skip_bad_pages:
                raise self._err(
                    f"truncated page-descriptor table: descriptors {pos:,}..{pos + k - 1:,} are missing",
                    desc_off,
                    "one 24-byte page_desc per frame set in the 2nd bitmap",
                    hint="the dump is truncated; re-create it, or pass --skip-bad-pages",
                )
            avail = min(avail, k)
            self.stats.pages_skipped += k - avail
            pfns, k = pfns[:avail], avail
        if k:
            descs = np.frombuffer(bytes(src.read(desc_off, k * PAGE_DESC.itemsize)), PAGE_DESC)
            self._release_kdump_range(src, desc_off, k * PAGE_DESC.itemsize)
        else:
            descs = np.empty(0, PAGE_DESC)
        offs = descs["offset"].astype(np.int64)
        sizes = descs["size"].astype(np.int64)
        flags = descs["flags"].astype(np.int64)
        fileoffs, whole = src.locate(offs, sizes)
        status = np.full(k, NOT_DONE, np.int32)
        # checks, vectorized; status stays NOT_DONE for pages to decode
        unknown = ((flags & ~KNOWN_FLAGS) != 0) | ((flags & (flags - 1)) != 0)
        status[unknown] = BAD_FLAG
        todo = status == NOT_DONE
        outside = todo & ((sizes <= 0) | (sizes > bs) | (offs <= 0))
        contiguous = todo & ~outside & whole
        for i in np.flatnonzero(todo & ~outside & ~whole).tolist():  # split over records, or missing
            if not src.covered(int(offs[i]), int(sizes[i])):
                outside[i] = True
        status[outside] = BAD_RANGE
        todo = status == NOT_DONE
        wrong_raw = todo & (flags == 0) & (sizes != bs)
        status[wrong_raw] = BAD_RAW_SIZE
        todo &= ~wrong_raw
        out = np.empty((k, self.page_size), np.uint8)
        buf = src.buf
        errors: list = []
        futs = []
        raw_idx = np.flatnonzero(todo & (flags == 0) & contiguous)
        zlib_idx = np.flatnonzero(todo & (flags == FLAG_ZLIB) & contiguous)
        if not _pagecodec.HAVE_ZLIB:
            zlib_idx = zlib_idx[:0]
        done = np.zeros(k, bool)
        done[raw_idx] = True
        done[zlib_idx] = True
        py_idx = np.flatnonzero(todo & ~done)
        step = BATCH_PAGES
        for lo in range(0, len(raw_idx), step):
            futs.append(pool.submit(_pagecodec.copy_pages, buf, fileoffs, raw_idx[lo : lo + step], out))
        for lo in range(0, len(zlib_idx), step):
            futs.append(
                pool.submit(_pagecodec.inflate_pages, buf, fileoffs, sizes, zlib_idx[lo : lo + step], out, status)
            )
        for lo in range(0, len(py_idx), step):
            futs.append(
                pool.submit(
                    self._decode_py,
                    src,
                    h,
                    offs,
                    sizes,
                    flags,
                    py_idx[lo : lo + step],
                    out,
                    status,
                    errors,
                    fileoffs,
                    whole,
                )
            )
        status[raw_idx] = 0  # copies cannot fail once the range is checked
        span = None
        if whole.any():
            fo = fileoffs[whole]
            span = (int(fo.min()), int((fo + sizes[whole]).max()))
        return pfns, out, (status, offs, sizes, flags, desc_off, errors, span), futs

    def _finish(self, h, job) -> PageChunk:
        pfns, out, (status, offs, sizes, flags, desc_off, errors, span), futs = job
        for f in futs:
            f.result()
        if span is not None:
            # the pages are copied out: drop the mapping so resident memory stays bounded
            self._release(span[0], span[1] - span[0])
        for e in errors:
            if isinstance(e, InputError):
                raise e
        bad = np.flatnonzero(status != 0)
        if len(bad):
            if not self.skip_bad_pages:
                i = int(bad[0])
                raise self._page_error(h, pfns, i, int(status[i]), offs, sizes, flags, desc_off, errors)
            keep = status == 0
            self.stats.pages_skipped += len(bad)
            pfns, out = pfns[keep], out[keep]
        out.flags.writeable = False
        self.stats.pages_read += len(pfns)
        return PageChunk(pfns, out)

    def _page_error(self, h, pfns, i, code, offs, sizes, flags, desc_off, errors) -> InputError:
        bs = h["block_size"]
        flag, off, size = int(flags[i]), int(offs[i]), int(sizes[i])
        where = desc_off + i * PAGE_DESC.itemsize
        codec = COMPRESSION_FLAGS.get(flag, "?")
        if code == BAD_FLAG:
            problem = f"unknown compression flag 0x{flag:x} in page descriptor"
            expected = "one of 0x0 (raw), 0x1 zlib, 0x2 lzo, 0x4 snappy, 0x20 zstd"
        elif code == BAD_RANGE:
            problem = f"page descriptor points at {size:,} bytes at offset {off:,}, outside the page data"
            expected = f"data inside the file, 1..{bs} bytes"
        elif code == BAD_RAW_SIZE:
            problem = f"uncompressed page of {size} bytes"
            expected = f"{bs} bytes when no compression flag is set"
        else:
            where = self._where(off)
            detail = next((m for j, m in errors if isinstance(j, int) and j == i), None)
            if code == BAD_LENGTH or code == -100:
                problem = f"{codec} page does not decompress to {bs} bytes"
            else:
                problem = f"corrupt {codec} page data ({detail or f'zlib error {code}'})"
            expected = f"a {codec} stream of one {bs}-byte page"
        incomplete = h["status"] & STATUS_INCOMPLETE
        return InputError(
            self.path,
            f"{problem} (frame {int(pfns[i]):#x})" + ("; the header says the dump is incomplete" if incomplete else ""),
            offset=where,
            expected=expected,
            hint="the dump is corrupt or truncated; re-create it, or pass --skip-bad-pages to count and skip "
            "such pages",
        )

    def chunks(self) -> Iterator[PageChunk]:
        if self.file_size == 0:
            raise InputError(
                self.path,
                "file is empty",
                offset=0,
                expected=f"a {self._kind()} header",
                hint="check that the dump finished writing",
            )
        src = self._source()
        h = self._parse(src)
        self.header = h
        threads = self.threads or default_threads()
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="kdump") as pool:
            specs = self._chunk_specs(src, h)
            job = None
            for spec in specs:
                nxt = self._submit(pool, src, h, spec)
                if job is not None:
                    chunk = self._finish(h, job)
                    if len(chunk):
                        yield chunk
                job = nxt
            if job is not None:
                chunk = self._finish(h, job)
                if len(chunk):
                    yield chunk

    def metadata(self) -> dict:
        meta = super().metadata()
        h = getattr(self, "header", None)
        if h is not None:
            meta["dump_level"] = h["dump_level"]
        return meta


# --------------------------------------------------------------------------- writer
def _compress(flag: int, page: bytes) -> bytes:
    if flag == FLAG_ZLIB:
        return zlib.compress(page, 1)
    if flag == FLAG_LZO:
        import lzokay

        return lzokay.compress(page)
    if flag == FLAG_SNAPPY:
        import cramjam

        return bytes(cramjam.snappy.compress_raw(page))
    if flag == FLAG_ZSTD:
        import zstandard

        return zstandard.ZstdCompressor(level=1).compress(page)
    raise ValueError(f"unknown compression flag {flag}")


def kdump_bytes_iter(
    pfns,
    pages,
    *,
    compression: str | None = "zlib",
    max_mapnr: int | None = None,
    excluded=(),
    dump_level: int = 0,
    block_size: int = 4096,
    share_zero_page: bool = True,
    signature: bytes = b"KDUMP   ",
    header_version: int = 6,
) -> Iterator[tuple[int, bytes]]:
    """Yield ``(offset, bytes)`` writes that make a kdump-compressed file.

    Parameters
    ----------
    pfns : sequence of int
        Frames to dump (any order; written in frame order).
    pages : numpy.ndarray
        ``uint8[len(pfns), block_size]``, the pages of ``pfns``.
    compression : {"zlib", "lzo", "snappy", "zstd", None}
        Page codec; a page that does not shrink is stored raw, as makedumpfile and QEMU do.
    max_mapnr : int, optional
        Frames in the guest (default: highest frame + 1).
    excluded : sequence of int
        Frames present in the guest (1st bitmap) but not dumped (2nd bitmap).
    share_zero_page : bool
        Point every all-zero page at one raw zero page, as QEMU does.
    """
    flag = {None: 0, "zlib": FLAG_ZLIB, "lzo": FLAG_LZO, "snappy": FLAG_SNAPPY, "zstd": FLAG_ZSTD}[compression]
    pfns = np.asarray(pfns, dtype=np.int64)
    order = np.argsort(pfns, kind="stable")
    excluded = np.asarray(excluded, dtype=np.int64)
    top = int(max(pfns.max(initial=-1), excluded.max(initial=-1))) + 1
    max_mapnr = top if max_mapnr is None else max_mapnr
    bs = block_size
    bm_len = -(-max(max_mapnr, 1) // (8 * bs)) * bs
    bitmap_blocks = 2 * bm_len // bs
    bm1 = np.zeros(bm_len * 8, bool)
    bm2 = np.zeros(bm_len * 8, bool)
    bm1[pfns] = True
    bm1[excluded] = True
    bm2[pfns] = True
    head = bytearray(bs)
    head[0:8] = signature
    struct.pack_into("<i", head, 8, header_version)
    head[12 : 12 + 7] = b"Linux\0\0"
    HEADER_TAIL.pack_into(head, HEADER64_TAIL_AT, flag, bs, 1, bitmap_blocks, min(max_mapnr, 0xFFFFFFFF), 0, 0, 0, 0, 1)
    yield 0, bytes(head)
    sub = bytearray(bs)
    SUB_HEADER.pack_into(sub, 0, 0, dump_level, 0, 0, max_mapnr, 0, 0, 0, 0, 0, 0, 0, max_mapnr, max_mapnr)
    yield bs, bytes(sub)
    yield 2 * bs, np.packbits(bm1, bitorder="little").tobytes()
    yield 2 * bs + bm_len, np.packbits(bm2, bitorder="little").tobytes()
    desc_at = bs * (2 + bitmap_blocks)
    data_at = desc_at + PAGE_DESC.itemsize * len(pfns)
    descs = np.zeros(len(pfns), PAGE_DESC)
    off = data_at
    zero_off = None
    blobs = []
    for j, i in enumerate(order):
        page = pages[i].tobytes()
        if share_zero_page and not any(page):
            if zero_off is None:
                zero_off = off
                blobs.append(page)
                off += bs
            descs[j] = (zero_off, bs, 0, 0)
            continue
        c = _compress(flag, page) if flag else page
        if flag and len(c) < bs:
            descs[j] = (off, len(c), flag, 0)
        else:
            c = page
            descs[j] = (off, bs, 0, 0)
        blobs.append(c)
        off += len(c)
    yield desc_at, descs.tobytes()
    pos = data_at
    for b in blobs:
        yield pos, b
        pos += len(b)


def write_kdump(path: str | os.PathLike, pfns, pages, **kw) -> Path:
    """Write a kdump-compressed file; see :func:`kdump_bytes_iter` for the options."""
    with open(path, "wb") as fh:
        for off, data in kdump_bytes_iter(pfns, pages, **kw):
            fh.seek(off)
            fh.write(data)
    return Path(path)
