"""Shared machinery for formats that store guest-physical ranges verbatim (ELF, LiME).

A format module parses its headers into :class:`Segment` records (guest-physical start, file
offset, length); :class:`SegmentReader` then checks them (inside the file, no overlaps) and
yields pages:

* pages that a segment covers whole are zero-copy views of the read-only memory map, one run
  of consecutive frames per chunk;
* pages that segments cover only in part (a segment starting or ending inside a page, as in
  LiME ranges taken from ``/proc/iomem`` such as ``0x1000-0x9fbff``) are assembled in a copy,
  bytes no segment covers read as zero, and are counted in ``stats.pages_partial``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from pagecore.dumps.base import MmapReader, PageChunk
from pagecore.errors import InputError


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


class SegmentReader(MmapReader):
    """Base class for readers whose dumps are lists of verbatim guest-physical segments."""

    #: What to tell a user whose segments overlap (format-specific advice).
    overlap_hint = "the dump is inconsistent; re-create it"

    def __init__(self, path, **kw):
        super().__init__(path, **kw)
        self._plan: list[Segment] | None = None

    # subclasses ------------------------------------------------------------------
    def _parse_segments(self, buf: np.ndarray) -> list[Segment]:  # pragma: no cover - abstract
        raise NotImplementedError

    # shared ----------------------------------------------------------------------
    def _segments(self) -> list[Segment]:
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
            segs = []
            for s in self._parse_segments(buf):
                end = s.offset + s.size
                if end > self.file_size:
                    if not self.skip_bad_pages:
                        raise InputError(
                            self.path,
                            f"{s.label} (guest-physical 0x{s.paddr:x}, {s.size:,} bytes at file "
                            f"offset {s.offset:,}) runs past the end of the file ({self.file_size:,} bytes)",
                            offset=s.header_offset,
                            expected="segment data inside the file",
                            hint="the dump is truncated; re-create it, or pass --skip-bad-pages to read what is there",
                        )
                    keep = max(0, self.file_size - s.offset)
                    lost = _pages_touched(s.paddr + keep, s.size - keep) if keep < s.size else 0
                    if keep and (s.paddr + keep) % self.page_size:
                        lost -= 1  # the page holding the cut is still read, partly
                    self.stats.pages_skipped += max(0, lost)
                    s = Segment(s.paddr, s.offset, keep, s.header_offset, s.label)
                if s.size > 0:
                    segs.append(s)
            segs.sort(key=lambda s: s.paddr)
            for a, b in itertools.pairwise(segs):
                if b.paddr < a.paddr + a.size:
                    raise InputError(
                        self.path,
                        f"{b.label} (guest-physical 0x{b.paddr:x}-0x{b.paddr + b.size:x}) overlaps "
                        f"{a.label} (0x{a.paddr:x}-0x{a.paddr + a.size:x})",
                        offset=b.header_offset,
                        expected="disjoint guest-physical ranges",
                        hint=self.overlap_hint,
                    )
            self._plan = segs
        return self._plan

    @property
    def pages_hint(self) -> int | None:
        try:
            return sum(_pages_touched(s.paddr, s.size) for s in self._segments())
        except InputError:
            return None

    def chunks(self) -> Iterator[PageChunk]:
        segs = self._segments()
        buf = self._map()
        ps = self.page_size
        partial: dict[int, np.ndarray] = {}
        prev = None
        for s in segs:
            first = -(-s.paddr // ps)  # first frame covered whole
            last = (s.paddr + s.size) // ps  # one past the last frame covered whole
            # the partial head and tail pages
            for pfn in {s.paddr // ps, (s.paddr + s.size - 1) // ps}:
                if first <= pfn < last:
                    continue
                lo = max(s.paddr, pfn * ps)
                hi = min(s.paddr + s.size, (pfn + 1) * ps)
                page = partial.get(pfn)
                if page is None:
                    page = partial[pfn] = np.zeros(ps, np.uint8)
                src = s.offset + (lo - s.paddr)
                page[lo - pfn * ps : hi - pfn * ps] = buf[src : src + (hi - lo)]
            if last <= first:
                continue
            base = s.offset + (first * ps - s.paddr)
            for lo in range(first, last, self.chunk_pages):
                hi = min(last, lo + self.chunk_pages)
                if prev is not None:
                    self._release(*prev)
                start = base + (lo - first) * ps
                pages = buf[start : start + (hi - lo) * ps].reshape(hi - lo, ps)
                self.stats.pages_read += hi - lo
                yield PageChunk(np.arange(lo, hi, dtype=np.uint64), pages)
                prev = (start, (hi - lo) * ps)
        if partial:
            pfns = np.array(sorted(partial), dtype=np.uint64)
            for lo in range(0, len(pfns), self.chunk_pages):
                sel = pfns[lo : lo + self.chunk_pages]
                pages = np.stack([partial.pop(int(p)) for p in sel])
                pages.flags.writeable = False
                self.stats.pages_read += len(sel)
                self.stats.pages_partial += len(sel)
                yield PageChunk(sel, pages)


def _pages_touched(addr: int, size: int, ps: int = 4096) -> int:
    """Number of pages that the byte range [addr, addr+size) touches."""
    if size <= 0:
        return 0
    return (addr + size - 1) // ps - addr // ps + 1
