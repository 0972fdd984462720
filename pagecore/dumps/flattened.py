"""makedumpfile *flattened* dumps: ``makedumpfile -F``, QEMU ``kdump-zlib/-lzo/-snappy``.

A flattened file is a kdump-compressed file cut into writes so that it can go down a pipe:
a 4096-byte header (``signature[16]`` = ``"makedumpfile"`` + NULs, ``type`` i64 big-endian
= 1, ``version`` i64 BE = 1), then records of (``offset`` i64 BE, ``buf_size`` i64 BE,
``buf_size`` bytes) saying "write these bytes at this offset of the kdump file", ended by a
record whose offset and size are both -1 (QEMU 7.2 and makedumpfile 1.7.2 files checked).

What is checked, beyond the kdump checks (:mod:`pagecore.dumps.kdump`): the header's
signature, type and version, every record header (offset and size >= 0, offset + size below
2**62, data inside the file) and the end record, which must end the file (a second dump
appended with ``>>`` was ignored); a read of kdump bytes no record wrote is an error.
Overlapping records are resolved in O(n log n). What no check can protect (:data:`UNPROTECTED`):
those of the kdump file inside the records.

Instead of re-assembling the kdump file (``makedumpfile -R``), the reader scans the record
headers once, builds an index from kdump offsets to file offsets (a later record wins where
two overlap, as a re-assembly would), and runs :class:`~pagecore.dumps.kdump.KdumpReader`
on that virtual file. Any read of bytes no record wrote is an error, so a corrupt index
can never make the reader spin over gigabytes of imaginary zeros.
"""

from __future__ import annotations

import heapq
import os
import struct
from pathlib import Path

import numpy as np

from pagecore.dumps.base import register
from pagecore.dumps.kdump import KdumpReader, kdump_bytes_iter
from pagecore.errors import InputError

#: Byte ranges no check can protect: the kdump file's (see :data:`pagecore.dumps.kdump.UNPROTECTED`).
UNPROTECTED = ("record data: as for kdump (raw pages; lzo, snappy and zstd page data)",)

SIGNATURE = b"makedumpfile"
HEADER_SIZE = 4096
TYPE_FLAT = 1
RECORD = struct.Struct(">qq")
#: Largest kdump offset a record may write up to (keeps offset arithmetic inside int64).
MAX_KDUMP_OFFSET = 1 << 62
#: Release the mapping of scanned records every this many bytes.
RELEASE_EVERY = 64 << 20


class _FlatSource:
    """A kdump file seen through the record index of a flattened file."""

    def __init__(self, buf: np.ndarray, vstart: np.ndarray, vend: np.ndarray, fstart: np.ndarray):
        self.buf = buf
        self.vstart, self.vend, self.fstart = vstart, vend, fstart
        self.size = int(vend[-1]) if len(vend) else 0

    def _find(self, off: int) -> int:
        i = int(np.searchsorted(self.vstart, off, side="right")) - 1
        if i < 0 or off >= self.vend[i]:
            return -1
        return i

    def covered(self, off: int, n: int) -> bool:
        if off < 0:
            return False
        end = off + n
        i = self._find(off)
        if i < 0:
            return n == 0 and off <= self.size
        while end > self.vend[i]:
            i += 1
            if i >= len(self.vstart) or self.vstart[i] != self.vend[i - 1]:
                return False
        return True

    def locate(self, offs: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """File offsets of blobs, and whether each lies whole inside one record."""
        if len(self.vstart) == 0:
            return offs, np.zeros(len(offs), bool)
        from pagecore.dumps import _pagecodec as pc

        return pc.locate_flat(self.vstart, self.vend, self.fstart, offs, sizes)

    def file_offset(self, off: int) -> int | None:
        i = self._find(off)
        return None if i < 0 else int(self.fstart[i] + (off - self.vstart[i]))

    def read(self, off: int, n: int):
        i = self._find(off)
        f0 = int(self.fstart[i] + (off - self.vstart[i]))
        if off + n <= self.vend[i]:
            return self.buf[f0 : f0 + n]  # zero-copy: inside one record
        parts = []
        while n > 0:
            take = min(n, int(self.vend[i]) - off)
            f0 = int(self.fstart[i] + (off - self.vstart[i]))
            parts.append(self.buf[f0 : f0 + take])
            off += take
            n -= take
            i += 1
        return np.concatenate(parts)


@register
class FlattenedReader(KdumpReader):
    """Reader for makedumpfile flattened files, without re-assembling them."""

    name = "kdump-flat"
    magic_description = "'makedumpfile' + NULs at byte 0"

    @classmethod
    def sniff(cls, head: bytes, size: int) -> bool:
        return head[:16] == SIGNATURE + b"\0" * 4

    def _kind(self) -> str:
        return "flattened kdump (re-assembled view)"

    def _where(self, off: int) -> int | None:
        src = getattr(self, "_src", None)
        return None if src is None else src.file_offset(off)

    def close(self) -> None:
        self._src = None  # drop the index's view of the map before unmapping
        super().close()

    def _source(self):
        if getattr(self, "_src", None) is not None:  # scanned already (pages_hint)
            return self._src
        buf = self._map() if self.file_size else None
        size = self.file_size
        if size == 0:
            raise InputError(
                self.path,
                "file is empty",
                offset=0,
                expected="a flattened header",
                hint="check that the dump finished writing",
            )
        if size < HEADER_SIZE:
            raise InputError(
                self.path,
                f"truncated flattened header: {size} bytes",
                offset=0,
                expected=f"a {HEADER_SIZE}-byte makedumpfile header",
                hint="the dump is truncated; re-create it",
            )
        sig, typ, ver = struct.unpack_from(">16sqq", buf, 0)
        if sig != SIGNATURE + b"\0" * 4:
            raise InputError(
                self.path,
                f"bad signature {sig!r}",
                offset=0,
                expected="'makedumpfile' + 4 NULs",
                hint="pass the right --format",
            )
        if typ != TYPE_FLAT:
            raise InputError(
                self.path,
                f"flattened header type {typ}",
                offset=16,
                expected=f"type {TYPE_FLAT} (flattened)",
                hint="re-create the dump",
            )
        if ver < 1:
            raise InputError(
                self.path,
                f"flattened header version {ver}",
                offset=24,
                expected="version >= 1",
                hint="re-create the dump",
            )
        # a kernel walks the records (one Python step per record cost a quarter of the read);
        # it stops at anything unusual, which is then judged here
        from pagecore.dumps import _pagecodec as pc

        cap = 1 << 16
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        off = released = HEADER_SIZE
        ended = False
        while True:
            vs, ve, fs = (np.empty(cap, np.int64) for _ in range(3))
            k, off, code, voff, n = pc.scan_flat(buf, off, released + RELEASE_EVERY, size, MAX_KDUMP_OFFSET, vs, ve, fs)
            if k:
                parts.append((vs[:k], ve[:k], fs[:k]))
            if off - released > RELEASE_EVERY:  # keep the scan's mapped pages bounded
                self._release(released, off - released)
                released = off
            if code == pc.SCAN_MORE:
                continue
            if code == pc.SCAN_END_RECORD:
                ended = True
                if off + RECORD.size < size:  # was ignored: a second dump appended (>>) was never read
                    raise InputError(
                        self.path,
                        f"{size - off - RECORD.size:,} bytes after the end record (at {off:,})",
                        offset=off + RECORD.size,
                        expected="the file to end with its end record (offset = size = -1)",
                        hint="the file holds more than one dump (written with >>?) or is corrupt; re-create it",
                    )
            elif code == pc.SCAN_NEGATIVE:
                raise InputError(
                    self.path,
                    f"flattened record with offset {voff} and size {n}",
                    offset=off,
                    expected="offset >= 0 and size >= 0, or -1/-1 at the end",
                    hint="the dump is corrupt; re-create it",
                )
            elif code == pc.SCAN_TOO_FAR:
                raise InputError(
                    self.path,
                    f"flattened record writes {n:,} bytes at kdump offset {voff:,}, beyond any real dump",
                    offset=off,
                    expected=f"offset + size <= {MAX_KDUMP_OFFSET:,} (2**62)",
                    hint="the dump is corrupt; re-create it",
                )
            elif code == pc.SCAN_PAST_END and not self.skip_bad_pages:
                raise InputError(
                    self.path,
                    f"flattened record of {n:,} bytes runs past the end of the file ({size:,} bytes)",
                    offset=off,
                    expected="record data inside the file",
                    hint="the dump is truncated; re-create it, or pass --skip-bad-pages",
                )
            break
        if not ended and not self.skip_bad_pages:
            raise InputError(
                self.path,
                "flattened file ends without its end record (offset = size = -1)",
                offset=off,
                expected="a 16-byte end record",
                hint="the dump is truncated; re-create it, or pass --skip-bad-pages",
            )
        if parts:
            vstart, vend, fstart = (np.concatenate(col) for col in zip(*parts, strict=True))
        else:
            vstart = vend = fstart = np.empty(0, np.int64)
        vstart, vend, fstart = _resolve(vstart, vend, fstart)
        self._release(HEADER_SIZE, size - HEADER_SIZE)  # the scan touched every record header
        self._src = _FlatSource(buf, vstart, vend, fstart)
        return self._src


def _resolve(vstart, vend, fstart):
    """Sort records by kdump offset; where records overlap, the later one wins.

    A sweep over the records' start and end points with a max-heap of the active records (by
    file order, with lazy deletion): O(n log n) in the number of records n, for any overlap.
    """
    order = np.argsort(vstart, kind="stable")
    s, e = vstart[order], vend[order]
    if len(s) < 2 or np.all(s[1:] >= e[:-1]):
        return s, e, fstart[order]
    pts = np.unique(np.concatenate([vstart, vend])).tolist()
    starts, orders = s.tolist(), order.tolist()
    ends, fs, vs = vend.tolist(), fstart.tolist(), vstart.tolist()
    heap: list[int] = []  # -record index: the latest record on top
    out_s, out_e, out_f, out_r = [], [], [], []
    j, n = 0, len(starts)
    for k in range(len(pts) - 1):
        x = pts[k]
        while j < n and starts[j] == x:
            heapq.heappush(heap, -orders[j])
            j += 1
        while heap and ends[-heap[0]] <= x:
            heapq.heappop(heap)
        if not heap:
            continue
        r = -heap[0]
        y = pts[k + 1]
        if out_r and out_r[-1] == r and out_e[-1] == x:
            out_e[-1] = y  # the same record continues
        else:
            out_s.append(x)
            out_e.append(y)
            out_f.append(fs[r] + (x - vs[r]))
            out_r.append(r)
    return np.array(out_s, np.int64), np.array(out_e, np.int64), np.array(out_f, np.int64)


def write_flattened(path: str | os.PathLike, writes, *, record_bytes: int | None = None, pack: bool = False) -> Path:
    """Write ``writes`` (iterable of (kdump offset, bytes)) as a flattened file.

    Parameters
    ----------
    record_bytes : int, optional
        Cut each write into records of at most this many bytes.
    pack : bool
        Pack consecutive writes (each one where the previous ended) into one record while they
        fit in ``record_bytes``, as QEMU's ``write_cache`` does (``dump/dump.c``: a 16 KiB
        cache flushed when the next write does not fit, so no page is split over records);
        writes longer than ``record_bytes`` are cut as without ``pack``. Without it every write
        starts a record of its own (one record per page).
    """
    with open(path, "wb") as fh:
        head = bytearray(HEADER_SIZE)
        struct.pack_into(">16sqq", head, 0, SIGNATURE, TYPE_FLAT, 1)
        fh.write(head)
        cache, cache_at = bytearray(), 0

        def flush():
            if cache:
                fh.write(RECORD.pack(cache_at, len(cache)))
                fh.write(cache)
                cache.clear()

        for off, data in writes:
            data = memoryview(data).cast("B")
            if pack and record_bytes and len(data) <= record_bytes:
                if not cache or off != cache_at + len(cache) or len(cache) + len(data) > record_bytes:
                    flush()
                    cache_at = off
                cache += data
                continue
            flush()
            step = record_bytes or max(1, len(data))
            for lo in range(0, len(data), step):
                piece = data[lo : lo + step]
                fh.write(RECORD.pack(off + lo, len(piece)))
                fh.write(piece)
        flush()
        fh.write(RECORD.pack(-1, -1))
    return Path(path)


def write_kdump_flat(
    path: str | os.PathLike, pfns, pages, *, record_bytes: int | None = 4096, pack: bool = False, **kw
) -> Path:
    """Write a flattened kdump file; ``record_bytes`` and ``pack`` as :func:`write_flattened`, other
    options as :func:`pagecore.dumps.kdump.kdump_bytes_iter`."""
    return write_flattened(path, kdump_bytes_iter(pfns, pages, **kw), record_bytes=record_bytes, pack=pack)
