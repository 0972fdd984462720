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

What is checked (each failure names the check): signature, ``header_version``, ``block_size``
(4096), ``status`` (known bits only; the *incomplete* bit is an error unless
``skip_bad_pages``, then ``stats.incomplete``), ``sub_hdr_size``/``bitmap_blocks`` against
``max_mapnr`` (each bitmap exactly ``ceil(max_mapnr / (8 * block_size))`` blocks, as both
producers write it), the 32- and 64-bit ``max_mapnr`` against each other, ``dump_level``
(0..31), ``split`` (0 or 1; a split part's range non-empty and inside ``max_mapnr``), the
vmcoreinfo/note/eraseinfo ranges inside the file; the bitmaps (no bit at or beyond
``max_mapnr``, the 2nd a subset of the 1st); the descriptor table against the 2nd bitmap and
the file (its size, the page data starting right after it, every page's data back to back in
frame order with only the all-zero page shared, the data ending at the end of the file), so a
flipped bitmap bit cannot shift pages onto the wrong frames; and per page the codec flag
(known, announced by ``status``), the data inside the file, a raw page's size, and that every
codec yields exactly one page — with the output bounded *before* decoding (zlib and lzo into
a 4096-byte buffer, snappy's and zstd's declared lengths checked first, zstd's window capped).
What no check can protect (:data:`UNPROTECTED`): the bytes of raw (uncompressed) pages, and
of lzo, snappy and zstd pages (none of these carries a checksum in a kdump file; a changed
byte may decode to a changed page). zlib pages carry an Adler-32 checksum, which every zlib page
is checked against; it misses some edits (a one-bit flip of a deflate code can permute three
bytes so that both of its sums stay equal: 3 of 40,000 mutated files in the slow fuzz run), and no
reader can see those. In a dump that
leaves frames out (frames in the 1st bitmap but not the 2nd), an edit of the 2nd bitmap that
keeps its number of set bits (clearing one dumped frame's bit and setting an excluded frame's)
moves the pages between the two frames onto their neighbours, and nothing in the format can
tell; in dumps whose two bitmaps are equal (QEMU's) any such edit is caught.

Pages are decompressed by a thread pool, a range of :data:`BATCH_PAGES` rows per task, while
the caller works on the previous chunk (a :attr:`KdumpReader.decode_hook` may work on each range
right after, on the same thread: ``pagecore hash`` hashes the pages there, while they are in
cache): pages that point at the shared zero page are filled with zeros (and the hook is told,
so it need not read them); raw, zlib, snappy, lzo and zstd pages by nogil kernels
(:mod:`._pagecodec`: lzo and zstd through liblzo2 and python-zstandard's own zstd; pages split
over records of a flattened file are gathered first; a snappy, lzo or zstd page, or a split zlib
page, that a kernel refuses is decoded again by the Python codec, whose verdict and error stand),
lzo and zstd one Python call per page where those libraries are missing. Memory is bounded by the page data of
:attr:`KdumpReader.KEEP_BUFFERS` chunks (buffers are reused once nothing refers to them, by
every kdump reader of the process, and kept after they close) plus the chunks a caller still holds.
"""

from __future__ import annotations

import mmap
import os
import struct
import sys
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from pagecore._jit import usable_cpus
from pagecore.dumps.base import LazyPageChunk, MmapReader, PageChunk, register
from pagecore.errors import InputError


def _codec():
    """The batch decoders (:mod:`._pagecodec`), imported on first use: their Numba kernels are
    not needed to detect or open a dump, and importing Numba costs ``pagecore hash`` start-up."""
    from pagecore.dumps import _pagecodec

    return _pagecodec


#: Byte ranges no check can protect (module docstring), for the fuzz test.
UNPROTECTED = (
    "raw page data",
    "lzo page data",
    "snappy page data",
    "zstd page data (frames without a checksum)",
    "zlib page data edits that its Adler-32 does not see (zlib's own check passes)",
    "2nd bitmap edits that keep its bit count, in dumps that exclude frames",
)

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

#: Rows per decompression task: enough to amortize a task's overhead, small enough to spread a
#: chunk over the threads -- and for the decoded pages (512 KiB) to be still in the decoding
#: core's L2 cache when the decode hook hashes them (snappy-flat, 512 MiB: the hash's share of
#: the decoder's CPU 0.21 when hashed per chunk, 0.19 / 0.16 / 0.13 / 0.13 when hashed per 512 /
#: 256 / 128 / 64 rows; below 128 the Python per task grows; issue 18).
BATCH_PAGES = 128
#: Bitmap bytes examined at a time (bounds memory for guests with huge frame numbers).
BITMAP_STEP = 1 << 16
#: Page descriptors checked at a time (bounds the pre-pass's memory: 1.5 MiB).
DESC_STEP = 1 << 16
#: Header ``status`` bits makedumpfile and QEMU set: compression (zlib, lzo, snappy, zstd),
#: incomplete, excluded vmemmap.
KNOWN_STATUS = 0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x20


# --------------------------------------------------------------------------- codecs
_tls = threading.local()


class PageLengthError(ValueError):
    """A compressed page decodes (or declares it decodes) to other than one page."""


def _zlib(src, n):
    # bounded: at most n bytes are produced; more input left over means a longer stream
    d = zlib.decompressobj()
    out = d.decompress(src, n)
    if d.unconsumed_tail or not d.eof or len(out) != n:
        raise PageLengthError(f"zlib stream does not hold exactly {n} bytes")
    return out


def _lzo(src, n):
    import lzokay

    # lzokay pads a short result with zeros up to the buffer size (and raises
    # OutputOverrunError, producing nothing more, if the stream is longer): a page whose
    # last byte is zero might be short, so check it fits n - 1 bytes too.
    data = bytes(src)
    out = lzokay.decompress(data, n)
    if out[-1] == 0:
        try:
            lzokay.decompress(data, n - 1)
        except lzokay.OutputOverrunError:
            return out
        raise PageLengthError(f"lzo page decodes to fewer than {n} bytes")
    return out


def _snappy_len(src) -> int:
    import cramjam

    return cramjam.snappy.decompress_raw_len(src)


def _snappy(src, n):
    import cramjam

    if _snappy_len(src) != n:
        raise PageLengthError(f"snappy stream declares {_snappy_len(src)} bytes, not {n}")
    return cramjam.snappy.decompress_raw(src)


#: zstd frames for one page need no more window than this (a frame may ask for up to 2 GiB).
ZSTD_MAX_WINDOW = 1 << 20


def _zstd(src, n):
    import zstandard

    d = getattr(_tls, "zstd", None)
    if d is None:
        d = _tls.zstd = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
    # a frame that declares its content size is decoded into a buffer of that size whatever
    # max_output_size says: refuse any declared size but one page before decoding
    declared = zstandard.frame_content_size(src)
    if declared not in (-1, n):
        raise PageLengthError(f"zstd frame declares {declared:,} bytes, not {n}")
    return d.decompress(src, max_output_size=n)


CODECS = {FLAG_ZLIB: _zlib, FLAG_LZO: _lzo, FLAG_SNAPPY: _snappy, FLAG_ZSTD: _zstd}
CODEC_PACKAGES = {FLAG_LZO: "lzokay", FLAG_SNAPPY: "cramjam", FLAG_ZSTD: "zstandard"}


def default_threads() -> int:
    """Decompression threads: the CPUs this process may run on."""
    return usable_cpus()


class _InlineExecutor:
    """``threads = 1``: run each batch at once in the calling thread (no thread to start)."""

    def submit(self, fn, *args) -> Future:  # noqa: F821 - imported here: concurrent.futures costs start-up
        from concurrent.futures import Future

        f: Future = Future()
        try:
            f.set_result(fn(*args))
        except BaseException as exc:  # handed to the caller by f.result(), as a pool would
            f.set_exception(exc)
        return f

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


class DecodeHook(Protocol):
    """Work on a chunk's pages right after they are decoded (:attr:`KdumpReader.decode_hook`).

    The reader calls :meth:`decoded` once per range of rows it decoded, on the thread that
    decoded them (several at once, for disjoint ranges), then -- for a row a kernel refused and
    a Python codec decoded again -- once more for that single row, in the caller's thread. A
    range may hold rows that failed: their content is meaningless, and they are dropped from the
    chunk (``skip_bad_pages``) or reported as errors. :meth:`done` is called once the chunk is
    finished; a chunk that ends in an error never gets it.
    """

    #: Optional (default False): the hook never reads, in the chunk's buffer, the rows
    #: :meth:`known_zero` and :meth:`elsewhere` name. The reader then leaves them unfilled while it
    #: decodes and fills them when the chunk's ``pages`` is first read
    #: (:class:`~pagecore.dumps.base.LazyPageChunk`): a consumer that only wants the hashes never
    #: pays for writing a third of a guest's memory as zeros, nor for copying its raw pages.
    lazy_rows: bool

    def known_zero(self, rows: np.ndarray) -> None:
        """Optional: ``rows`` (sorted ``int64``) point at the dump's shared zero page (checked all
        zero when the dump was opened); the reader fills them with zeros, so they hold zero bytes
        by the time :meth:`decoded` covers them (unless the hook says :attr:`lazy_rows`), and a hook
        need not read them. Called before any :meth:`decoded`, only when there are such rows."""

    def elsewhere(self, rows: np.ndarray, src: np.ndarray, offsets: np.ndarray) -> None:
        """Optional, used only with :attr:`lazy_rows`: ``rows`` (sorted ``int64``) are raw pages the
        reader does not copy into the buffer while decoding; row ``i``'s page is
        ``src[offsets[i] : offsets[i] + page size]`` (``src`` the mapped file). Called before any
        :meth:`decoded`, after :meth:`known_zero`, only when there are such rows."""

    def decoded(self, lo: int, hi: int) -> None:
        """Rows ``lo .. hi - 1`` of the chunk's page buffer hold their final content."""

    def done(self, keep: np.ndarray | None) -> object:
        """The chunk is finished: ``keep`` is None (every row is in the chunk) or ``bool[k]``, the
        rows kept. Returns what the chunk carries as :attr:`~pagecore.dumps.base.PageChunk.decoded`;
        must drop any reference to the page buffer (buffers are reused once nothing refers to them)."""


def _run_jobs(jobs: list, take, stop, hook=None) -> None:
    """Run ``jobs[take()]`` until ``take`` runs past the end (several of these share one list) or
    ``stop`` (a :class:`threading.Event`, or None) is set.

    A job is ``(calls, lo, hi)``: the decoder calls ``(function, leading arguments, rows, trailing
    arguments)`` that fill rows ``lo .. hi - 1`` of the chunk, then ``hook.decoded(lo, hi)`` (the
    reader's :attr:`KdumpReader.decode_hook`) while those pages are still in this CPU's cache."""
    n = len(jobs)
    while (i := take()) < n:
        if stop is not None and stop.is_set():
            return
        calls, lo, hi = jobs[i]
        for fn, pre, rows, post in calls:
            fn(*pre, rows, *post)
        if hook is not None:
            hook.decoded(lo, hi)


def _start(pool, jobs: list, threads: int, stop=None, hook=None) -> list:
    """Run ``jobs`` (:func:`_run_jobs`) on ``pool``; return the futures to wait for.

    One task per thread pulls batches from the shared list (``itertools.count`` hands out each
    index once; its ``__next__`` is atomic under the GIL) instead of one task per batch: a
    chunk's 100-odd futures, each with a lock, a condition and a work item, made the garbage
    collector run every few chunks, and each full collection cost a snappy read ~15 ms (issue 18).
    """
    import itertools

    if not jobs:
        return []
    take = itertools.count().__next__
    return [pool.submit(_run_jobs, jobs, take, stop, hook) for _ in range(min(threads, len(jobs)))]


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


# --------------------------------------------------------------------------- buffers
class _ChunkBuffers:
    """Chunk buffers shared by the kdump readers of a process, reused once nothing refers to them.

    A fresh 64 MiB array costs the kernel a page fault and a page of zeroes per 4 KiB (a sixth of
    a snappy read's CPU, issue 18), so buffers are reused -- across readers too: a process that
    reads several dumps (``pagecore host`` with ``dump:`` entries, the benchmark) pays for them
    once. Reuse is decided by reference count: a chunk's pages are a view of its buffer, and
    every view (also a caller's) refers to it, so a buffer anyone can still see is never
    written again. When a reader closes, the free buffers are handed to the kernel with
    ``MADV_FREE``: they stay mapped and cost nothing to reuse unless the kernel needed the memory
    meanwhile (then it dropped them without writing them anywhere, and they come back as zeroes).
    """

    def __init__(self):
        self._lock = threading.Lock()
        # (1-D array, its mmap): the array is what every chunk view refers to (numpy collapses a
        # view's base to it). The first entry is the reference count's yardstick (:meth:`_free`)
        self._bufs: list[tuple[np.ndarray, object]] = [(np.empty(0, np.uint8), None)]

    def take(self, k: int, page_size: int, keep: int) -> np.ndarray:
        """A ``uint8[k, page_size]`` view of a free buffer of at least ``k`` pages, or of a new one
        (kept for reuse while fewer than ``keep`` are)."""
        n = k * page_size
        with self._lock:
            small = None
            for j in self._free():
                b = self._bufs[j][0]
                if b.shape[0] >= n:
                    return b[:n].reshape(k, page_size)
                small = j  # free but too small (a reader with smaller chunks): replace it
            if small is None and len(self._bufs) > keep:
                return np.empty((k, page_size), np.uint8)
            if not hasattr(mmap, "MAP_PRIVATE"):  # pragma: no cover - not Unix
                return np.empty((k, page_size), np.uint8)
            # private (a shared map would be shared with forked children, and MADV_FREE refuses it),
            # anonymous, page-aligned: MADV_FREE applies to it whole
            mm = mmap.mmap(-1, max(n, 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            if hasattr(mmap, "MADV_HUGEPAGE"):
                # 2 MiB pages: a fresh buffer costs the kernel a fault per 2 MiB instead of per 4 KiB
                # (256 MiB of fresh buffers: ~40 instead of ~200-250 ms of CPU here), and fewer TLB misses
                try:
                    mm.madvise(mmap.MADV_HUGEPAGE)
                except OSError:  # pragma: no cover - a kernel without transparent huge pages
                    pass
            b = np.frombuffer(mm, np.uint8)
            if small is None:
                self._bufs.append((b, mm))
            else:
                self._bufs[small] = (b, mm)
            return b[:n].reshape(k, page_size)

    def idle(self) -> None:
        """Let the kernel take back the free buffers' memory if it needs it (``MADV_FREE``)."""
        advice = getattr(mmap, "MADV_FREE", None)
        if advice is None:
            return
        with self._lock:
            for j in self._free():
                try:
                    self._bufs[j][1].madvise(advice)
                except OSError:  # pragma: no cover - a kernel without MADV_FREE (< 4.5)
                    return

    def _free(self) -> list[int]:
        """Indexes of the buffers nothing but this list refers to (call with the lock held)."""
        # entry 0 is referred to by nothing but the list: its count, taken the same way, is what
        # a free buffer's is (whatever this Python counts)
        counts = [sys.getrefcount(b) for b, _ in self._bufs]
        return [j for j in range(1, len(counts)) if counts[j] == counts[0]]


#: The process's chunk buffers (:class:`_ChunkBuffers`).
_BUFFERS = _ChunkBuffers()


def _buffers_in_child() -> None:
    """A forked child starts with buffers of its own (its copies of the parent's are private, but
    the lock may have been held by a thread the child does not have)."""
    global _BUFFERS
    _BUFFERS = _ChunkBuffers()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_buffers_in_child)


# --------------------------------------------------------------------------- reader
@register
class KdumpReader(MmapReader):
    """Reader for kdump-compressed files (makedumpfile, QEMU ``kdump-raw-*``)."""

    name = "kdump"
    magic_description = "'KDUMP   ' or 'DISKDUMP' at byte 0"
    #: Decompression threads; set before iterating (default: all usable CPUs).
    threads: int | None = None
    #: Chunk buffers kept for reuse, by all readers of the process together (two chunks being
    #: decoded, the one being hashed and the one the caller holds:
    #: :func:`pagecore.pages.ingest.hashed_chunks`); kept after the readers close (``MADV_FREE``:
    #: the kernel may take the memory back), so reading another dump costs no fresh memory.
    KEEP_BUFFERS = 4
    #: None, or a function called with each chunk's page buffer (``uint8[k, page_size]``, before
    #: anything is decoded into it) that returns the chunk's :class:`DecodeHook`: work to do on
    #: each range of pages right after they are decoded, while they are in the decoding thread's
    #: cache. :func:`pagecore.pages.ingest.hashed_chunks` hashes the pages this way (this
    #: package knows nothing of hashes). Set it before iterating.
    decode_hook = None

    @classmethod
    def sniff(cls, head: bytes, size: int) -> bool:
        return head[:8] in SIGNATURES

    def _page_buffer(self, k: int) -> np.ndarray:
        """A ``uint8[k, page_size]`` array to decode a chunk into (:data:`_BUFFERS`)."""
        return _BUFFERS.take(k, self.page_size, self.KEEP_BUFFERS)

    def close(self) -> None:
        _BUFFERS.idle()
        super().close()

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
            be_bs = struct.unpack_from(">I", head, HEADER64_TAIL_AT + 4)[0]
            if 0 < struct.unpack_from(">i", head, 8)[0] <= 64 and 512 <= be_bs <= 1 << 16 and be_bs & (be_bs - 1) == 0:
                raise self._err(
                    f"big-endian kdump header (header_version and block_size {be_bs} read big-endian): a dump of a "
                    "big-endian guest (s390x, ppc64)",
                    8,
                    "a little-endian kdump file (x86-64, arm64, ppc64le)",
                    hint="pagecore reads little-endian kdump files only",
                )
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
        if status & ~KNOWN_STATUS:
            raise self._err(
                f"header status 0x{status:x} has unknown bits 0x{status & ~KNOWN_STATUS:x}",
                tail_at,
                f"only the bits of 0x{KNOWN_STATUS:x} (compression, incomplete, excluded vmemmap)",
            )
        incomplete = bool(status & STATUS_INCOMPLETE)
        if incomplete:
            if not self.skip_bad_pages:
                raise self._err(
                    "the header's status says the dump is incomplete (bit 0x8: the producer stopped "
                    "before writing every page, e.g. makedumpfile ran out of disk space)",
                    tail_at,
                    "a complete dump (status bit 0x8 clear)",
                    hint="re-create the dump, or pass --skip-bad-pages to read the pages it has "
                    "(the result then describes only those pages)",
                )
            self.stats.incomplete = True
        sub = SUB_HEADER.unpack_from(bytes(self._need(src, bs, SUB_HEADER.size, "the kdump_sub_header")))
        (_phys_base, dump_level, split, start_pfn, end_pfn, *info, start64, end64, mapnr64) = sub
        if version >= 6 and mapnr64 and max_mapnr32 != min(mapnr64, 0xFFFFFFFF):
            raise self._err(
                f"max_mapnr {max_mapnr32:,} in the header disagrees with max_mapnr_64 {mapnr64:,} in the sub-header",
                tail_at + 16,
                "max_mapnr == min(max_mapnr_64, 2**32 - 1)",
            )
        max_mapnr = mapnr64 if version >= 6 and mapnr64 else max_mapnr32
        if not 0 <= dump_level <= 31:
            raise self._err(f"dump_level {dump_level} in the sub-header", bs + 8, "0..31 (makedumpfile -d)")
        if split not in (0, 1):
            raise self._err(
                f"split flag {split} in the sub-header", bs + 12, "0 (whole dump) or 1 (one part of a split dump)"
            )
        if version >= 6 and split:
            start_pfn, end_pfn = start64, end64
        bitmap_at = bs * (1 + sub_blocks)
        half = bitmap_blocks * bs // 2
        need = -(-max_mapnr // (8 * bs)) * bs
        if max_mapnr == 0 or half != need:
            raise self._err(
                f"bitmap_blocks {bitmap_blocks} does not fit max_mapnr {max_mapnr:,}: each of the two bitmaps "
                f"has {half:,} bytes, {need:,} are needed",
                tail_at + 12,
                "max_mapnr >= 1 and bitmap_blocks == 2 * ceil(max_mapnr / (8 * block_size)), as makedumpfile "
                "and QEMU write them",
            )
        self._need(src, bitmap_at, 2 * half, "the two page bitmaps")
        if not split:
            start_pfn, end_pfn = 0, max_mapnr
        elif not (0 <= start_pfn < end_pfn <= max_mapnr):
            raise self._err(
                f"split dump range [{start_pfn}, {end_pfn}) is empty or outside [0, {max_mapnr})",
                bs + 16,
                "start_pfn < end_pfn <= max_mapnr",
            )
        names = ("vmcoreinfo", "note", "eraseinfo")
        for j, (name, since) in enumerate(zip(names, (3, 4, 5), strict=True)):
            off, n = info[2 * j], info[2 * j + 1]
            if version >= since and n and (off < bs or off + n > src.size):
                raise self._err(
                    f"the {name} ({n:,} bytes at offset {off:,}) lies outside the file ({src.size:,} bytes)",
                    bs + 32 + 16 * j,
                    f"offset_{name} and size_{name} inside the file",
                )
        eraseinfo = (info[4], info[5]) if version >= 5 and info[5] else None
        desc_at = bs * (1 + sub_blocks + bitmap_blocks)
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
            desc_at=desc_at,
            eraseinfo=eraseinfo,
            incomplete=incomplete,
            split=bool(split),
        )

    def _prepare(self, src) -> dict:
        """Parse the headers and check the bitmaps and the descriptor table against them.

        One pass over both bitmaps (bits beyond ``max_mapnr`` clear, the 2nd a subset of the
        1st; the descriptor count is the 2nd bitmap's bits in range) and one over the
        descriptor table (:func:`_pagecodec.check_layout`: page data starts right after the
        table, blobs back to back in frame order, only the shared zero page repeated, data
        ending at the end of the file): a bit flipped in a bitmap changes the descriptor
        count, which no longer meets the data, so pages are never moved onto wrong frames.
        Memory is bounded by :data:`BITMAP_STEP` and :data:`DESC_STEP`.
        """
        h = self._parse(src)
        bs = h["block_size"]
        half = h["bitmap2"] - h["bitmap1"]
        lo, hi, mapnr = h["start_pfn"], h["end_pfn"], h["max_mapnr"]
        n = others = 0
        for b in range(0, half, BITMAP_STEP):
            nb = min(BITMAP_STEP, half - b)
            bm1 = np.asarray(src.read(h["bitmap1"] + b, nb))
            bm2 = np.asarray(src.read(h["bitmap2"] + b, nb))
            stray = np.flatnonzero(bm2 & ~bm1)
            if len(stray):
                j = int(stray[0])
                pfn = (b + j) * 8 + int(
                    np.flatnonzero(np.unpackbits(bm2[j : j + 1] & ~bm1[j : j + 1], bitorder="little"))[0]
                )
                raise self._err(
                    f"frame {pfn:#x} is dumped (2nd bitmap) but not present in the guest (1st bitmap)",
                    h["bitmap2"] + b + j,
                    "the 2nd bitmap a subset of the 1st",
                )
            first = b * 8
            if first + nb * 8 > mapnr:  # bits at and beyond max_mapnr must be clear
                for at, bm in ((h["bitmap1"], bm1), (h["bitmap2"], bm2)):
                    bits = np.unpackbits(bm, bitorder="little")[max(0, mapnr - first) :]
                    if bits.any():
                        pfn = max(mapnr, first) + int(np.flatnonzero(bits)[0])
                        raise self._err(
                            f"bitmap bit for frame {pfn:#x} is set, beyond max_mapnr {mapnr:,}",
                            at + pfn // 8,
                            "no frame at or above max_mapnr",
                        )
            if first + nb * 8 > lo and first < hi:
                bits = np.unpackbits(bm2, bitorder="little")
                n += int(np.count_nonzero(bits[max(lo - first, 0) : min(hi - first, nb * 8)]))
            if h["split"]:  # the guest's frames that the other parts of a split dump hold
                bits = np.unpackbits(bm1, bitorder="little")
                others += int(np.count_nonzero(bits)) - int(
                    np.count_nonzero(bits[max(lo - first, 0) : max(min(hi - first, nb * 8), 0)])
                )
        h["ndesc"] = n
        h["other_parts"] = others
        h["zero_page"] = -1  # kdump offset of the shared zero page, once checked (_check_table)
        self._check_table(src, h, n, bs)
        return h

    def _check_table(self, src, h, n, bs) -> None:
        desc_at = h["desc_at"]
        desc_end = desc_at + n * PAGE_DESC.itemsize
        if n == 0:
            return
        avail = n
        if desc_end > src.size:
            if not self.skip_bad_pages:
                raise self._err(
                    f"truncated page-descriptor table: the 2nd bitmap has {n:,} frames, so the table "
                    f"needs {n * PAGE_DESC.itemsize:,} bytes from offset {desc_at:,}, past the end "
                    f"({src.size:,} bytes)",
                    desc_at,
                    "one 24-byte page_desc per frame set in the 2nd bitmap",
                    hint="the dump is truncated; re-create it, or pass --skip-bad-pages",
                )
            avail = max(0, (src.size - desc_at) // PAGE_DESC.itemsize)
        if avail == 0 or not src.covered(desc_at, PAGE_DESC.itemsize):
            return
        d0 = np.frombuffer(bytes(src.read(desc_at, PAGE_DESC.itemsize)), PAGE_DESC)[0]
        o0 = int(d0["offset"])
        state = np.array([desc_end, -1, desc_end], np.int64)
        if o0 != 0 or int(d0["size"]) != 0:
            # page data starts right after the table; a producer may pad it to the next block
            # and QEMU stores its shared zero page first: both are zero bytes
            gap = o0 - desc_end
            if gap < 0 or gap >= 2 * bs:
                raise self._err(
                    f"the first page's data is at offset {o0:,}, but the descriptor table of the {n:,} "
                    f"frames in the 2nd bitmap ends at {desc_end:,}: the bitmap and the table disagree",
                    desc_at,
                    f"page data starting at {desc_end:,} (or within the next block)",
                )
            if gap and src.covered(desc_end, gap) and np.asarray(src.read(desc_end, gap)).any():
                raise self._err(
                    f"non-zero bytes between the end of the descriptor table ({desc_end:,}) and the first "
                    f"page's data ({o0:,}): the table holds more descriptors than the 2nd bitmap has frames "
                    f"({n:,})",
                    desc_end,
                    "the 2nd bitmap's frame count == the number of page descriptors",
                )
            state[:] = (o0, o0 - bs if gap >= bs else -1, desc_end)
        for start in range(0, avail, DESC_STEP):
            k = min(DESC_STEP, avail - start)
            off = desc_at + start * PAGE_DESC.itemsize
            if not src.covered(off, k * PAGE_DESC.itemsize):
                break  # a flattened file missing records: the pages are checked one by one later
            offs, sizes, flags = _codec().unpack_descs(src.read(off, k * PAGE_DESC.itemsize))
            self._release_kdump_range(src, off, k * PAGE_DESC.itemsize)
            bad = _codec().check_layout(offs, sizes, flags, bs, state)
            if bad >= 0:
                i = start + bad
                raise self._err(
                    f"page descriptor #{i:,} points at offset {int(offs[bad]):,} ({int(sizes[bad]):,} bytes, "
                    f"flags 0x{int(flags[bad]):x}), but the previous page's data ends at {int(state[0]):,}",
                    off + bad * PAGE_DESC.itemsize,
                    "page data back to back in frame order (only the shared zero page repeated), as makedumpfile "
                    "and QEMU write it",
                )
        else:
            end = int(state[0])
            if end < src.size and avail == n and h["eraseinfo"] != (end, src.size - end):
                raise self._err(
                    f"{src.size - end:,} bytes after the last page's data (which ends at {end:,})",
                    end,
                    "the file to end with the last page (or the eraseinfo)",
                )
        zero = int(state[1])
        if zero >= 0 and src.covered(zero, bs) and np.asarray(src.read(zero, bs)).any():
            raise self._err(
                f"the page shared by several descriptors (offset {zero:,}) is not all zero",
                zero,
                "only the zero page is shared",
            )
        if zero >= 0 and src.covered(zero, bs):
            h["zero_page"] = zero  # checked all zero: rows pointing here are filled, not read

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

    def _header(self, src) -> dict:
        """The checked headers (:meth:`_prepare`), computed once."""
        h = getattr(self, "_h", None)
        if h is None:
            h = self._h = self._prepare(src)
        return h

    @property
    def pages_hint(self) -> int | None:
        """Frames set in the 2nd bitmap (within a split part's range); None if unreadable."""
        try:
            if self.file_size == 0:
                return None
            return self._header(self._source())["ndesc"]
        except InputError:
            return None

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
        snappy_len = snappy_into = None
        if (flags[idx] == FLAG_SNAPPY).any():  # looked up once: per page they cost a tenth of the decode
            try:
                import cramjam

                snappy_len, snappy_into = cramjam.snappy.decompress_raw_len, cramjam.snappy.decompress_raw_into
            except ImportError:
                pass  # reported per page below, by CODECS
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
                if flag == FLAG_SNAPPY and snappy_into is not None:
                    if not in_one:
                        data = bytes(data)
                    # the stream declares its length up front: refuse anything but one page before decoding
                    if snappy_len(data) != bs:
                        raise PageLengthError(f"snappy stream declares {snappy_len(data)} bytes, not {bs}")
                    got = snappy_into(data, dst[i * bs : (i + 1) * bs])
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
            except PageLengthError as exc:
                status[i] = BAD_LENGTH
                errors.append((i, str(exc)))
                continue
            except Exception as exc:  # every codec has its own error types
                status[i] = BAD_CODEC
                errors.append((i, str(exc)))
                continue
            if len(page) != bs:
                status[i] = BAD_LENGTH
                continue
            dst[i * bs : (i + 1) * bs] = page  # half the cost of out[i] = np.frombuffer(page, np.uint8)
            status[i] = 0

    def _submit(self, pool, src, h, spec, threads: int, stop):
        pos, pfns = spec
        bs = h["block_size"]
        k = len(pfns)
        desc_off = h["desc_at"] + pos * PAGE_DESC.itemsize
        if not src.covered(desc_off, k * PAGE_DESC.itemsize):
            # the longest run of descriptors present from desc_off (a flattened file may lack records)
            lo, hi = 0, k
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if src.covered(desc_off, mid * PAGE_DESC.itemsize):
                    lo = mid
                else:
                    hi = mid - 1
            avail = lo
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
        raw = src.read(desc_off, k * PAGE_DESC.itemsize) if k else np.empty(0, np.uint8)
        offs, sizes, flags = _codec().unpack_descs(raw)
        if k:
            self._release_kdump_range(src, desc_off, k * PAGE_DESC.itemsize)
        fileoffs, whole = src.locate(offs, sizes)
        _pagecodec = _codec()
        # the rows to decode go to nogil kernels: raw pages by copy, zlib through the system libz, snappy,
        # lzo and zstd (liblzo2 and python-zstandard's zstd, which accept only plain one-page streams);
        # a snappy, lzo or zstd page a kernel refuses is decoded again with the Python codec in _finish
        # (cramjam, lzokay, zstandard: their verdicts and messages stand); codecs without a kernel go to
        # the Python codecs at once
        kflags = FLAG_SNAPPY
        kernels = {FLAG_SNAPPY: _pagecodec.unsnappy_pages}
        if _pagecodec.HAVE_ZLIB:
            kernels[FLAG_ZLIB] = _pagecodec.inflate_pages
        if _pagecodec.HAVE_LZO:
            kernels[FLAG_LZO] = _pagecodec.unlzo_pages
        if _pagecodec.HAVE_ZSTD:
            kernels[FLAG_ZSTD] = _pagecodec.unzstd_pages
        for f in kernels:
            kflags |= f
        # a blob not whole in one record of a flattened file may still be there, split over several
        # (a producer that cuts its records regardless of page boundaries; QEMU's write_cache packs whole
        # blobs into 16 KiB records and splits none), or missing: asked one by one (none, usually)
        uncovered = np.zeros(k, np.bool_)
        for i in np.flatnonzero(~whole).tolist():
            f, n, o = int(flags[i]), int(sizes[i]), int(offs[i])
            good_flag = not (f & ~(h["status"] & KNOWN_FLAGS)) and not (f & (f - 1))
            if good_flag and 0 < n <= bs and 0 < o <= src.size - n and not src.covered(o, n):
                uncovered[i] = True
        # every check and the decoder of every row (_pagecodec.classify): status BAD_FLAG, BAD_RANGE or
        # BAD_RAW_SIZE, else 0 for the rows of the shared zero page (checked all zero when the dump was
        # opened: filled with zeros, not read -- and a decode hook is told, so it need not read them
        # either) and raw pages, NOT_DONE for pages to decode
        step = BATCH_PAGES
        status, rows_of, ccuts, busy, span = _pagecodec.classify(
            offs,
            sizes,
            flags,
            fileoffs,
            whole,
            uncovered,
            h["status"] & KNOWN_FLAGS,
            kflags,
            h["zero_page"],
            src.size,
            bs,
            step,
        )
        zero_idx, raw_idx = rows_of[_pagecodec.C_ZERO], rows_of[_pagecodec.C_RAW]
        snappy_idx, split, py_idx = rows_of[_pagecodec.C_SNAPPY], rows_of[_pagecodec.C_SPLIT], rows_of[_pagecodec.C_PY]
        lib_idx = {FLAG_LZO: rows_of[_pagecodec.C_LZO], FLAG_ZSTD: rows_of[_pagecodec.C_ZSTD]}
        out = self._page_buffer(k)
        hook = self.decode_hook(out) if self.decode_hook is not None else None
        # rows of the shared zero page, and raw pages: filled while decoding, or -- when the hook
        # never reads them in the buffer (the page hash knows a zero page's hash, and hashes a raw
        # page where the file holds it) -- only once someone reads the chunk's pages
        lazy = hook is not None and getattr(hook, "lazy_rows", False)
        lazy_zero = lazy and len(zero_idx) > 0 and hasattr(hook, "known_zero")
        lazy_raw = lazy and len(raw_idx) > 0 and hasattr(hook, "elsewhere")
        buf = src.buf
        errors: list = []
        jobs: list = []  # (decoder calls, first row, end row) per range of rows: run by _start
        # one job per range of BATCH_PAGES rows: every decoder's pages of those rows, then the decode
        # hook on the range (see _run_jobs); parts are (function, leading arguments, rows, trailing
        # arguments, the cuts of rows at the ranges' bounds or None), each decoder's rows sorted
        C = _pagecodec
        parts: list = [
            (None if lazy_zero else C.zero_pages, (), zero_idx, (out,), ccuts[C.C_ZERO]),
            (None if lazy_raw else C.copy_pages, (buf, fileoffs), raw_idx, (out,), ccuts[C.C_RAW]),
            (kernels.get(FLAG_ZLIB), (buf, fileoffs, sizes), rows_of[C.C_ZLIB], (out, status), ccuts[C.C_ZLIB]),
            (C.unsnappy_pages, (buf, fileoffs, sizes), snappy_idx, (out, status), ccuts[C.C_SNAPPY]),
            (kernels.get(FLAG_LZO), (buf, fileoffs, sizes), lib_idx[FLAG_LZO], (out, status), ccuts[C.C_LZO]),
            (kernels.get(FLAG_ZSTD), (buf, fileoffs, sizes), lib_idx[FLAG_ZSTD], (out, status), ccuts[C.C_ZSTD]),
        ]
        if len(split):  # gathered into one array and decoded by the same kernels
            gbuf = np.concatenate([np.asarray(src.read(int(offs[i]), int(sizes[i]))) for i in split.tolist()])
            goffs = np.zeros(k, np.int64)
            goffs[split] = np.cumsum(sizes[split]) - sizes[split]
            for codec, decode in kernels.items():
                parts.append((decode, (gbuf, goffs, sizes), split[flags[split] == codec], (out, status), None))
            sel = split[flags[split] == 0]  # raw pages (their size is checked above)
            parts.append((_pagecodec.copy_pages, (gbuf, goffs), sel, (out,), None))
            status[sel] = 0
        parts.append(
            (
                self._decode_py,
                (src, h, offs, sizes, flags),
                py_idx,
                (out, status, errors, fileoffs, whole),
                ccuts[C.C_PY],
            )
        )
        bounds = np.arange(0, k + step, step).clip(max=k)
        # busy: the ranges holding a page to decode, copy or fill (or one the hook hashes without it
        # being filled); a range without holds only bad pages: dropped or reported
        parts = [p for p in parts if len(p[2]) and p[0] is not None]
        cuts = [(c if c is not None else np.searchsorted(rows, bounds)).tolist() for _, _, rows, _, c in parts]
        parts = [p[:4] for p in parts]
        if hook is not None and len(zero_idx) and hasattr(hook, "known_zero"):
            hook.known_zero(zero_idx)
        if lazy_raw:
            hook.elsewhere(raw_idx, buf, fileoffs)
        lo_hi = bounds.tolist()
        if len(parts) == 1:  # the usual case: one codec (or raw pages only)
            (fn, pre, rows, post), c = parts[0], cuts[0]
            for r in np.flatnonzero(busy).tolist():
                a, b = c[r], c[r + 1]
                jobs.append(([(fn, pre, rows[a:b], post)] if b > a else [], lo_hi[r], lo_hi[r + 1]))
        else:
            for r in np.flatnonzero(busy).tolist():
                calls = [
                    (fn, pre, rows[c[r] : c[r + 1]], post)
                    for (fn, pre, rows, post), c in zip(parts, cuts, strict=True)
                    if c[r + 1] > c[r]
                ]
                jobs.append((calls, lo_hi[r], lo_hi[r + 1]))
        futs = _start(pool, jobs, threads, stop, hook)

        def redo_refused():
            """Decode the pages a kernel refused (snappy, lzo, zstd; zlib split over records) again in
            Python, with cramjam, lzokay, zstandard or zlib (their errors, their messages)."""
            if not status.any():  # every page decoded (the usual case)
                return
            retry = np.concatenate([snappy_idx, split, *lib_idx.values()])
            again = retry[status[retry] != 0]
            if len(again):
                self._decode_py(src, h, offs, sizes, flags, again, out, status, errors, fileoffs, whole)
                if hook is not None:  # the hook saw what the kernel left in these rows
                    for i in again[status[again] == 0].tolist():
                        hook.decoded(i, i + 1)

        fill = None
        if lazy_zero or lazy_raw:

            def fill():
                """Complete the chunk's buffer: the rows the hook did not need, when its pages are read."""
                if lazy_zero:
                    _pagecodec.zero_pages(zero_idx, out)
                if lazy_raw:
                    if self._fh is not None:
                        self._check_size()  # the raw pages are read from the map: the file must be whole
                    _pagecodec.copy_pages(buf, fileoffs, raw_idx, out)

        return pfns, out, (status, offs, sizes, flags, desc_off, errors, span, redo_refused, hook, fill), futs

    def _finish(self, h, job) -> PageChunk:
        pfns, out, (status, offs, sizes, flags, desc_off, errors, span, redo_refused, hook, fill), futs = job
        for f in futs:
            f.result()
        redo_refused()
        if span is not None:
            # the pages are copied out: drop the mapping so resident memory stays bounded
            self._release(span[0], span[1] - span[0])
        for e in errors:
            if isinstance(e, InputError):
                raise e
        bad = np.flatnonzero(status != 0)
        keep = None
        if len(bad):
            if not self.skip_bad_pages:
                i = int(bad[0])
                raise self._page_error(h, pfns, i, int(status[i]), offs, sizes, flags, desc_off, errors)
            keep = status == 0
            self.stats.pages_skipped += len(bad)
            if fill is not None:  # the kept rows are copied out: fill the zero rows first
                fill()
                fill = None
            pfns, out = pfns[keep], out[keep]
        decoded = hook.done(keep) if hook is not None else None
        self.stats.pages_read += len(pfns)
        if fill is not None:  # the zero rows are filled (in the writable buffer) when pages is first read
            pages = out.view()
            pages.flags.writeable = False
            return LazyPageChunk(pfns, pages, decoded, fill)
        out.flags.writeable = False
        return PageChunk(pfns, out, decoded)

    def _page_error(self, h, pfns, i, code, offs, sizes, flags, desc_off, errors) -> InputError:
        bs = h["block_size"]
        flag, off, size = int(flags[i]), int(offs[i]), int(sizes[i])
        where = desc_off + i * PAGE_DESC.itemsize
        codec = COMPRESSION_FLAGS.get(flag, "?")
        if code == BAD_FLAG:
            problem = (
                f"unknown compression flag 0x{flag:x} in page descriptor"
                if flag & ~KNOWN_FLAGS or flag & (flag - 1)
                else f"compression flag 0x{flag:x} in page descriptor is not in the header's status 0x{h['status']:x}"
            )
            expected = (
                f"0x0 (raw) or the codec of the header's status 0x{h['status']:x} "
                "(0x1 zlib, 0x2 lzo, 0x4 snappy, 0x20 zstd)"
            )
        elif code == BAD_RANGE:
            problem = f"page descriptor points at {size:,} bytes at offset {off:,}, outside the page data"
            expected = f"data inside the file, 1..{bs} bytes"
        elif code == BAD_RAW_SIZE:
            problem = f"uncompressed page of {size} bytes"
            expected = f"{bs} bytes when no compression flag is set"
        else:
            where = self._where(off)
            detail = next((e[1] for e in errors if isinstance(e, tuple) and e[0] == i), None)
            if code == BAD_LENGTH or code == -100:
                problem = f"{codec} page does not decompress to {bs} bytes" + (f" ({detail})" if detail else "")
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
        h = self._header(src)
        self.header = h
        threads = self.threads or default_threads()
        from concurrent.futures import ThreadPoolExecutor  # not at the top: it imports logging (start-up)

        pool = _InlineExecutor() if threads == 1 else ThreadPoolExecutor(threads, thread_name_prefix="kdump")
        stop = threading.Event()
        try:
            specs = self._chunk_specs(src, h)
            job = None
            for spec in specs:
                self._check_size()
                nxt = self._submit(pool, src, h, spec, threads, stop)
                if job is not None:
                    chunk = self._finish(h, job)
                    if len(chunk):
                        yield chunk
                job = nxt
            if job is not None:
                chunk = self._finish(h, job)
                if len(chunk):
                    yield chunk
        finally:
            # on an error or Ctrl-C, drop the queued batches instead of decoding them first
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)

    def metadata(self) -> dict:
        meta = super().metadata()
        h = getattr(self, "header", None)
        if h is not None:
            meta["dump_level"] = h["dump_level"]
            if h["split"]:  # one part of makedumpfile --split: the table holds only its frames
                meta["split_part"] = {
                    "start_pfn": h["start_pfn"],
                    "end_pfn": h["end_pfn"],
                    "max_mapnr": h["max_mapnr"],
                    "frames_in_other_parts": h["other_parts"],
                }
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


def stored_page(flag: int, page: bytes) -> tuple[bytes, int]:
    """How a kdump writer stores one page that is not all zero: ``(bytes, flag)``, compressed with
    ``flag`` if that makes it smaller, else raw (flag 0), as makedumpfile and QEMU do."""
    if flag:
        c = _compress(flag, page)
        if len(c) < len(page):
            return c, flag
    return page, 0


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
        c, stored = stored_page(flag, page)
        descs[j] = (off, len(c), stored, 0)
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
