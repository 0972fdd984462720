"""Shared machinery for formats that store guest-physical ranges verbatim (ELF, LiME).

A format module parses its headers into a :class:`SegmentTable` (guest-physical start, file
offset, length per segment, as numpy arrays: 32 bytes a segment, at most
:data:`MAX_SEGMENTS`); :class:`SegmentReader` then checks them (below the physical address
limit, data inside the file, no two segments overlapping in guest-physical space or in the
file) and yields pages:

* pages that a segment covers whole are zero-copy views of the read-only memory map, at most
  ``chunk_pages`` consecutive frames per chunk;
* pages that segments cover only in part (a segment starting or ending inside a page, as in
  LiME ranges taken from ``/proc/iomem`` such as ``0x1000-0x9fbff``) are assembled in a copy,
  bytes no segment covers read as zero, and are counted in ``stats.pages_partial``. Segments
  are visited in guest-physical order, so a partial page is complete as soon as a segment
  starts beyond it: at most ``chunk_pages`` such pages are held before they are yielded.

Memory is therefore bounded by the chunk size plus 32 bytes per segment, for any input.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from pagecore.dumps.base import MmapReader, PageChunk
from pagecore.errors import InputError

#: Guest-physical addresses end below this (52 bits: the x86-64 and arm64 architectural
#: maximum). A segment reaching beyond it is a corrupt header, not a guest.
PHYS_ADDR_LIMIT = 1 << 52
#: Most segments a dump may have (QEMU writes one per RAM block: a few to some 100,000).
MAX_SEGMENTS = 1 << 22


@dataclass(frozen=True)
class Segment:
    """A run of guest-physical memory stored verbatim in the file.

    Attributes
    ----------
    paddr : int
        Guest-physical address of the first byte.
    offset : int
        File offset of the first byte.
    size : int
        Bytes stored in the file.
    header_offset : int
        File offset of the header that described this segment (for error messages).
    label : str
        What the header is called in the format ("PT_LOAD #3", "range #2").
    """

    paddr: int
    offset: int
    size: int
    header_offset: int
    label: str


class SegmentTable:
    """Segments as parallel ``int64`` arrays; iterating yields :class:`Segment` objects.

    ``index`` is the number of the describing header in the format (``PT_LOAD #index``) and
    ``label`` its name (``"PT_LOAD"``, ``"LiME range"``).
    """

    def __init__(self, paddr, offset, size, header_offset, index, label: str):
        self.paddr = np.asarray(paddr, np.int64)
        self.offset = np.asarray(offset, np.int64)
        self.size = np.asarray(size, np.int64)
        self.header_offset = np.asarray(header_offset, np.int64)
        self.index = np.asarray(index, np.int64)
        self.label = label

    def __len__(self) -> int:
        return int(self.paddr.shape[0])

    def segment(self, i: int) -> Segment:
        return Segment(
            int(self.paddr[i]),
            int(self.offset[i]),
            int(self.size[i]),
            int(self.header_offset[i]),
            f"{self.label} #{int(self.index[i])}",
        )

    def __iter__(self) -> Iterator[Segment]:
        for i in range(len(self)):
            yield self.segment(i)

    def take(self, sel) -> SegmentTable:
        return SegmentTable(
            self.paddr[sel], self.offset[sel], self.size[sel], self.header_offset[sel], self.index[sel], self.label
        )


class SegmentReader(MmapReader):
    """Base class for readers whose dumps are lists of verbatim guest-physical segments."""

    #: What to tell a user whose segments overlap (format-specific advice).
    overlap_hint = "the dump is inconsistent; re-create it"

    def __init__(self, path, **kw):
        super().__init__(path, **kw)
        self._plan: SegmentTable | None = None

    # subclasses ------------------------------------------------------------------
    def _parse_segments(self, buf: np.ndarray) -> SegmentTable:  # pragma: no cover - abstract
        raise NotImplementedError

    # shared ----------------------------------------------------------------------
    def _segments(self) -> SegmentTable:
        if self._plan is None:
            if self.file_size == 0:
                raise InputError(
                    self.path,
                    "file is empty",
                    offset=0,
                    expected=f"a {self.name} header",
                    hint="check that the dump finished writing",
                )
            buf = self._map()
            t = self._parse_segments(buf)
            if len(t) > MAX_SEGMENTS:
                raise InputError(
                    self.path,
                    f"{len(t):,} segments",
                    expected=f"at most {MAX_SEGMENTS:,}",
                    hint="the header is corrupt",
                )
            ends = t.paddr + t.size  # the parsers keep both below PHYS_ADDR_LIMIT: no overflow
            bad = np.flatnonzero((t.paddr < 0) | (t.size < 0) | (ends > PHYS_ADDR_LIMIT))
            if len(bad):
                s = t.segment(int(bad[0]))
                raise InputError(
                    self.path,
                    f"{s.label} (guest-physical 0x{s.paddr:x}, {s.size:,} bytes) reaches beyond the "
                    f"{PHYS_ADDR_LIMIT.bit_length() - 1}-bit physical address space",
                    offset=s.header_offset,
                    expected=f"guest-physical addresses below 0x{PHYS_ADDR_LIMIT:x}",
                    hint="the header is corrupt; re-create the dump",
                )
            fend = t.offset + t.size
            past = np.flatnonzero(fend > self.file_size)
            if len(past):
                if not self.skip_bad_pages:
                    s = t.segment(int(past[0]))
                    raise InputError(
                        self.path,
                        f"{s.label} (guest-physical 0x{s.paddr:x}, {s.size:,} bytes at file "
                        f"offset {s.offset:,}) runs past the end of the file ({self.file_size:,} bytes)",
                        offset=s.header_offset,
                        expected="segment data inside the file",
                        hint="the dump is truncated; re-create it, or pass --skip-bad-pages to read what is there",
                    )
                for i in past.tolist():
                    s = t.segment(i)
                    keep = max(0, self.file_size - s.offset)
                    lost = _pages_touched(s.paddr + keep, s.size - keep)
                    if keep and (s.paddr + keep) % self.page_size:
                        lost -= 1  # the page holding the cut is still read, partly
                    self.stats.pages_skipped += max(0, lost)
                    self.stats.bytes_skipped += s.size - keep  # also counts a page cut inside
                    t.size[i] = keep
                    t.offset[i] = min(s.offset, self.file_size)
            t = t.take(t.size > 0)
            self._check_disjoint(t, t.paddr, t.paddr + t.size, "guest-physical", self.overlap_hint)
            self._check_disjoint(
                t, t.offset, t.offset + t.size, "file", "two segments claim the same file bytes: the header is corrupt"
            )
            order = np.argsort(t.paddr, kind="stable")
            self._plan = t.take(order)
        return self._plan

    def _check_disjoint(self, t: SegmentTable, lo: np.ndarray, hi: np.ndarray, space: str, hint: str) -> None:
        """Raise InputError naming the first two segments whose [lo, hi) ranges overlap."""
        if len(t) < 2:
            return
        order = np.argsort(lo, kind="stable")
        slo, shi = lo[order], hi[order]
        hit = np.flatnonzero(slo[1:] < np.maximum.accumulate(shi)[:-1])
        if not len(hit):
            return
        j = int(hit[0]) + 1
        i = int(np.argmax(shi[:j]))  # the earlier range that reaches past slo[j]
        a, b = t.segment(int(order[i])), t.segment(int(order[j]))
        raise InputError(
            self.path,
            f"{b.label} ({space} 0x{int(lo[order[j]]):x}-0x{int(hi[order[j]]):x}) overlaps "
            f"{a.label} (0x{int(lo[order[i]]):x}-0x{int(hi[order[i]]):x})",
            offset=b.header_offset,
            expected=f"disjoint {space} ranges",
            hint=hint,
        )

    @property
    def pages_hint(self) -> int | None:
        try:
            t = self._segments()
        except InputError:
            return None
        ps = self.page_size
        n = (t.paddr + t.size - 1) // ps - t.paddr // ps + 1
        # a page shared by two segments is counted once
        shared = np.count_nonzero(((t.paddr + t.size - 1) // ps)[:-1] == (t.paddr // ps)[1:])
        return int(n.sum()) - int(shared)

    def chunks(self) -> Iterator[PageChunk]:
        t = self._segments()
        buf = self._map()
        ps = self.page_size
        cp = self.chunk_pages
        # partial pages are assembled in place in one chunk-sized buffer (zero-filled lazily by
        # the OS), the page being filled at row k; the rows before it are finished
        pend = pend_pfn = None
        k, open_pfn = 0, -1
        held: list[tuple[int, int]] = []  # chunks handed out that may still be in use
        paddrs, offsets, sizes = t.paddr.tolist(), t.offset.tolist(), t.size.tolist()
        for j, (paddr, offset, size) in enumerate(zip(paddrs, offsets, sizes, strict=True)):
            end = paddr + size
            first = -(-paddr // ps)  # first frame covered whole
            last = end // ps  # one past the last frame covered whole
            if j % 4096 == 0:
                self._check_size()
            head, tail = paddr // ps, (end - 1) // ps
            for pfn in (head, tail) if tail != head else (head,):
                if first <= pfn < last:
                    continue
                if pfn != open_pfn:
                    if open_pfn >= 0:
                        k += 1
                        if k == cp:
                            yield self._partial_chunk(pend, pend_pfn, k)
                            pend, k = None, 0
                    if pend is None:
                        pend, pend_pfn = np.zeros((cp, ps), np.uint8), np.empty(cp, np.uint64)
                    pend_pfn[k] = open_pfn = pfn
                lo, hi = max(paddr, pfn * ps), min(end, (pfn + 1) * ps)
                src = offset + (lo - paddr)
                pend[k, lo - pfn * ps : hi - pfn * ps] = buf[src : src + (hi - lo)]
            if last <= first:
                continue
            base = offset + (first * ps - paddr)
            for lo in range(first, last, cp):
                hi = min(last, lo + cp)
                if len(held) == 2:  # a chunk stays mapped until two more have been requested
                    self._release(*held.pop(0))
                start = base + (lo - first) * ps
                self._check_size()
                self._populate(start, (hi - lo) * ps)
                pages = buf[start : start + (hi - lo) * ps].reshape(hi - lo, ps)
                self.stats.pages_read += hi - lo
                yield PageChunk(np.arange(lo, hi, dtype=np.uint64), pages, file_at=(self._fh.fileno(), start))
                held.append((start, (hi - lo) * ps))
        if open_pfn >= 0:
            yield self._partial_chunk(pend, pend_pfn, k + 1)

    def _partial_chunk(self, pend: np.ndarray, pend_pfn: np.ndarray, k: int) -> PageChunk:
        self._check_size()  # the pages were copied from the map: the file was whole then
        pages = pend[:k]
        pages.flags.writeable = False
        self.stats.pages_read += k
        self.stats.pages_partial += k
        return PageChunk(pend_pfn[:k], pages)


def _pages_touched(addr: int, size: int, ps: int = 4096) -> int:
    """Number of pages that the byte range [addr, addr+size) touches."""
    if size <= 0:
        return 0
    return (addr + size - 1) // ps - addr // ps + 1
