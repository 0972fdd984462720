"""LiME memory dumps (Linux Memory Extractor, ``format=lime``).

Layout (LiME's ``lime.h``; Volatility 3 ``layers/lime.py``): a sequence of ranges, each a
32-byte little-endian header followed by the range's bytes::

    u32 magic      0x4C694D45 ("EMiL" on disk)
    u32 version    1
    u64 s_addr     guest-physical address of the first byte
    u64 e_addr     guest-physical address of the LAST byte (inclusive)
    u8  reserved[8]

so a range holds ``e_addr - s_addr + 1`` bytes, and the next header follows immediately.
Ranges come from ``/proc/iomem`` "System RAM" and need not be page-aligned (``0x1000-0x9fbff``
is typical); pages they cover only in part are assembled with the missing bytes as zero
(``stats.pages_partial``). LiME's ``raw`` and ``padded`` modes have no headers: read those as
raw images.

What is checked: every header (magic, version, ``s_addr <= e_addr``, below the 52-bit physical
address limit), the chain of headers (each range's length must land exactly on the next
header, and the last range on the end of the file — a changed ``s_addr`` or ``e_addr``
alone breaks it), ranges disjoint, and the file not shrinking while read. What no check can
protect (:data:`UNPROTECTED`): the range data (guest pages) — LiME has no checksum — and a
range's addresses moved together (``s_addr`` and ``e_addr`` changed by the same amount: the
range keeps its length and lands on other frames; nothing in the file repeats them, as with ELF's
``p_paddr``; the slow fuzz run found two such edits in 20,000).

No LiME producer runs in this repository's test environment (LiME is a kernel module loaded
inside the guest); :func:`write_lime` / :func:`lime_from_raw` write files in this layout so
that the reader can be checked against the same guest's raw image.
"""

from __future__ import annotations

import itertools
import os
import struct
from array import array
from pathlib import Path

import numpy as np

from pagecore.dumps._segments import PHYS_ADDR_LIMIT, SegmentReader, SegmentTable
from pagecore.dumps.base import register
from pagecore.errors import InputError

LIME_MAGIC = 0x4C694D45
LIME_VERSION = 1
HEADER = struct.Struct("<IIQQ8s")
#: What no check can protect (module docstring), for the fuzz test.
UNPROTECTED = (
    "range data (guest pages, no checksum)",
    "s_addr and e_addr moved by the same amount (no redundant copy)",
)
#: Sanity cap on the number of ranges (a real dump has a handful to a few hundred).
MAX_RANGES = 1 << 20


@register
class LimeReader(SegmentReader):
    """Reader for LiME dumps; whole pages are zero-copy views of a read-only mmap."""

    name = "lime"
    magic_description = "u32 0x4C694D45 'EMiL' at byte 0"
    overlap_hint = "LiME ranges must not overlap; re-capture the dump"

    @classmethod
    def sniff(cls, head: bytes, size: int) -> bool:
        return len(head) >= 4 and struct.unpack_from("<I", head)[0] == LIME_MAGIC

    def _parse_segments(self, buf: np.ndarray) -> SegmentTable:
        paddr, offset, length_, at = array("q"), array("q"), array("q"), array("q")
        off = 0
        size = self.file_size
        while off < size:
            n = len(paddr)
            if size - off < HEADER.size:
                if n and self.skip_bad_pages:
                    self.stats.bytes_skipped += size - off  # a cut-off header: report it
                    break
                raise InputError(
                    self.path,
                    f"truncated LiME header #{n}: {size - off} bytes left, need {HEADER.size}",
                    offset=off,
                    expected="a 32-byte LiME range header",
                    hint="the dump is truncated; re-capture it"
                    + (", or pass --skip-bad-pages to read the ranges before it" if n else ""),
                )
            magic, version, s_addr, e_addr, _ = HEADER.unpack_from(buf, off)
            if magic != LIME_MAGIC:
                raise InputError(
                    self.path,
                    f"bad magic 0x{magic:08x} in LiME header #{n}",
                    offset=off,
                    expected=f"0x{LIME_MAGIC:08x} ('EMiL'); the previous range's length may be wrong"
                    if n
                    else f"0x{LIME_MAGIC:08x} ('EMiL')",
                    hint="this is not a LiME file (pass --format) or it is corrupt",
                )
            if version != LIME_VERSION:
                raise InputError(
                    self.path,
                    f"unsupported LiME version {version} in header #{n}",
                    offset=off + 4,
                    expected=f"version {LIME_VERSION}",
                    hint="convert the dump to a raw image or LiME version 1",
                )
            if e_addr < s_addr:
                raise InputError(
                    self.path,
                    f"LiME range #{n} ends (0x{e_addr:x}) before it starts (0x{s_addr:x})",
                    offset=off + 8,
                    expected="e_addr >= s_addr (e_addr is inclusive)",
                    hint="the header is corrupt; re-capture the dump",
                )
            if e_addr >= PHYS_ADDR_LIMIT:
                raise InputError(
                    self.path,
                    f"LiME range #{n} (0x{s_addr:x}-0x{e_addr:x}) reaches beyond the 52-bit physical address space",
                    offset=off + 16,
                    expected=f"e_addr < 0x{PHYS_ADDR_LIMIT:x}",
                    hint="the header is corrupt; re-capture the dump",
                )
            length = e_addr - s_addr + 1
            paddr.append(s_addr)
            offset.append(off + HEADER.size)
            length_.append(length)
            at.append(off)
            if len(paddr) > MAX_RANGES:
                raise InputError(
                    self.path,
                    f"more than {MAX_RANGES:,} LiME ranges",
                    offset=off,
                    expected="a few hundred ranges at most",
                    hint="the file is probably corrupt",
                )
            off += HEADER.size + length
        arr = [np.frombuffer(a, np.int64) if len(a) else np.empty(0, np.int64) for a in (paddr, offset, length_, at)]
        return SegmentTable(*arr, np.arange(len(paddr)), "LiME range")


def write_lime(path: str | os.PathLike, ranges) -> Path:
    """Write a LiME file.

    Parameters
    ----------
    path : path-like
        Output file (written whole; not atomic).
    ranges : iterable of (int, bytes-like)
        ``(s_addr, data)`` per range, in file order; ``e_addr = s_addr + len(data) - 1``.
    """
    path = Path(path)
    with open(path, "wb") as fh:
        for s_addr, data in ranges:
            data = memoryview(data).cast("B")
            if len(data) == 0:
                raise ValueError("a LiME range cannot be empty")
            fh.write(HEADER.pack(LIME_MAGIC, LIME_VERSION, s_addr, s_addr + len(data) - 1, b"\0" * 8))
            fh.write(data)
    return path


#: Default split of a raw PC image into LiME ranges: below the legacy VGA window, the
#: window and option ROMs (0xA0000-0xFFFFF), and everything above 1 MiB.
PC_SPLITS = (0xA0000, 0x100000)


def lime_from_raw(raw: str | os.PathLike, out: str | os.PathLike, splits=PC_SPLITS, chunk: int = 1 << 24) -> Path:
    """Write the raw physical image ``raw`` as a LiME file whose ranges cover all of it.

    The ranges are the image cut at ``splits`` (guest-physical addresses), so the LiME file
    holds exactly the raw image's pages, each at its own address. Streams; memory is bounded
    by ``chunk``.
    """
    raw = Path(raw)
    size = raw.stat().st_size
    cuts = [0, *sorted({s for s in splits if 0 < s < size}), size]
    with open(raw, "rb") as fi, open(out, "wb") as fo:
        for lo, hi in itertools.pairwise(cuts):
            fo.write(HEADER.pack(LIME_MAGIC, LIME_VERSION, lo, hi - 1, b"\0" * 8))
            fi.seek(lo)
            left = hi - lo
            while left:
                block = fi.read(min(chunk, left))
                if not block:
                    raise InputError(raw, "raw image shrank while being read", offset=fi.tell())
                fo.write(block)
                left -= len(block)
    return Path(out)
