"""ELF core dumps: QEMU ``dump-guest-memory`` (format ``elf``), ``virsh dump --memory-only``.

Every ``PT_LOAD`` program header with file data is one run of guest memory, placed by its
**physical** address ``p_paddr`` (QEMU writes one per guest RAM block; ``p_vaddr`` is only
meaningful in ``paging=true`` dumps). Holes between segments (the legacy VGA window, PCI
hole) are simply absent. Segments whose start or size is not page-aligned are handled: their
whole pages are zero-copy views of the read-only mmap, their edge pages are assembled with
the missing bytes as zero (``stats.pages_partial``). Bytes in ``p_memsz`` beyond
``p_filesz`` are not in the file; their pages are counted as excluded.

What is checked: the ELF header (magic, class, byte order, ``ET_CORE``, ``e_phentsize``), the
program header table inside the file, ``p_filesz <= p_memsz``, every ``PT_LOAD`` below the
52-bit physical address limit, ``PT_LOAD`` ranges (by ``p_memsz``) disjoint in guest-physical
space, segment data inside the file (else an error, or under ``skip_bad_pages`` the missing
pages are skipped and counted), apart from each other and from the ELF header, the program
header table, the notes and the section header table, no page-sized stretch of the file that
nothing describes (inside it or at its end), and the file not shrinking while read. What no
check can protect (:data:`UNPROTECTED`): ELF has no checksum, so the page data of every
``PT_LOAD`` is taken as is, a changed ``p_paddr`` that still yields disjoint segments moves
pages to other frames undetected (QEMU's ``p_vaddr`` is not a copy of it), and the last
segment's ``p_filesz`` lowered by less than a page reads its lost tail as zeros (``p_memsz``
beyond ``p_filesz``): QEMU's dumps end with a few bytes no header describes, so a short
undescribed tail is accepted.

ELF64 and ELF32, little- and big-endian, and ``e_phnum == PN_XNUM`` (the real count in
section header 0's ``sh_info``, as QEMU writes for guests with > 65,534 blocks) are read.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from pagecore.dumps._segments import MAX_SEGMENTS, PHYS_ADDR_LIMIT, SegmentReader, SegmentTable
from pagecore.dumps.base import register
from pagecore.errors import InputError

ELF_MAGIC = b"\x7fELF"
PT_NULL = 0
PT_LOAD = 1
PT_NOTE = 4
#: Most notes a PT_NOTE may hold (QEMU writes a few per vCPU).
MAX_NOTES = 1 << 16
#: Program header types a memory dump's core file holds.
CORE_TYPES = (PT_NULL, PT_LOAD, PT_NOTE)
PN_XNUM = 0xFFFF
ET_CORE = 4

#: Program header layouts per ELF class (byte order set when read).
_PHDR = {
    2: np.dtype(
        [(f, "u4") for f in ("p_type", "p_flags")]
        + [(f, "u8") for f in ("p_offset", "p_vaddr", "p_paddr", "p_filesz", "p_memsz", "p_align")]
    ),
    1: np.dtype(
        [(f, "u4") for f in ("p_type", "p_offset", "p_vaddr", "p_paddr", "p_filesz", "p_memsz", "p_flags", "p_align")]
    ),
}

#: Byte ranges no check can protect (see the module docstring): names, for the fuzz test.
UNPROTECTED = (
    "PT_LOAD data (guest pages, no checksum)",
    "PT_LOAD p_paddr (no redundant copy)",
    "the last PT_LOAD's p_filesz lowered by less than a page (a short undescribed tail is accepted)",
)

#: (ehdr, phdr, shdr-prefix) struct layouts per ELF class, without the endian prefix.
_LAYOUT = {
    2: ("16sHHIQQQIHHHHHH", "IIQQQQQQ", "IIQQQQII"),  # ELF64
    1: ("16sHHIIIIIHHHHHH", "IIIIIIII", "IIIIIIII"),  # ELF32
}


@register
class ElfReader(SegmentReader):
    """Reader for ELF core files; guest pages are zero-copy views of a read-only mmap."""

    name = "elf"
    magic_description = "'\\x7fELF' at byte 0"
    overlap_hint = (
        "PT_LOAD segments overlap in guest-physical space; a dump taken with paging=true maps "
        "virtual addresses: re-dump with paging=false (virsh dump --memory-only without --paging)"
    )

    @classmethod
    def sniff(cls, head: bytes, size: int) -> bool:
        return head[:4] == ELF_MAGIC

    def _bad(self, problem, offset, expected, hint="the file is not a complete ELF core; re-dump"):
        return InputError(self.path, problem, offset=offset, expected=expected, hint=hint)

    def _parse_segments(self, buf: np.ndarray) -> SegmentTable:
        size = self.file_size
        if size < 16 or bytes(buf[:4]) != ELF_MAGIC:
            raise self._bad(
                "not an ELF file", 0, "'\\x7fELF' magic and a 16-byte e_ident", hint="pass the right --format"
            )
        cls_, data = int(buf[4]), int(buf[5])
        if cls_ not in _LAYOUT:
            raise self._bad(f"unknown ELF class {cls_}", 4, "1 (ELF32) or 2 (ELF64)")
        if data not in (1, 2):
            raise self._bad(f"unknown ELF data encoding {data}", 5, "1 (little) or 2 (big endian)")
        end = "<" if data == 1 else ">"
        eh, ph, sh = (struct.Struct(end + f) for f in _LAYOUT[cls_])
        if size < eh.size:
            raise self._bad(f"truncated ELF header: {size} bytes, need {eh.size}", 0, f"a {eh.size}-byte ELF header")
        (_, e_type, _, _, _, e_phoff, e_shoff, _, _, e_phentsize, e_phnum, _e_shentsize, _e_shnum, _) = eh.unpack_from(
            buf, 0
        )
        if e_type != ET_CORE:
            raise self._bad(
                f"ELF type {e_type} is not a core file",
                16,
                f"e_type {ET_CORE} (ET_CORE)",
                hint="this is an executable or library, not a memory dump",
            )
        if e_phentsize < ph.size:
            raise self._bad(
                f"e_phentsize {e_phentsize} is smaller than a program header", eh.size - 12, f">= {ph.size}"
            )
        if e_phnum == PN_XNUM:
            if e_shoff == 0 or e_shoff + sh.size > size:
                raise self._bad(
                    "e_phnum is PN_XNUM but section header 0 is missing",
                    eh.size - 10,
                    "section header 0 with the program header count in sh_info",
                )
            e_phnum = sh.unpack_from(buf, e_shoff)[7]  # sh_info
        if e_phnum == 0:
            raise self._bad("ELF core has no program headers", eh.size - 10, "PT_LOAD segments")
        table_end = e_phoff + e_phnum * e_phentsize
        if e_phoff < eh.size or table_end > size:
            raise self._bad(
                f"program header table ({e_phnum} x {e_phentsize} bytes at {e_phoff:,}) lies "
                f"outside the file ({size:,} bytes)",
                e_phoff if e_phoff < size else 0,
                "a program header table inside the file",
            )
        if e_phnum > MAX_SEGMENTS:
            raise self._bad(f"e_phnum {e_phnum:,} program headers", eh.size - 10, f"at most {MAX_SEGMENTS:,}")
        table_end = e_phoff + e_phnum * e_phentsize
        t = np.ndarray(
            (e_phnum,), dtype=_PHDR[cls_].newbyteorder(end), buffer=buf, offset=e_phoff, strides=(e_phentsize,)
        )
        ptype = t["p_type"]
        odd = np.flatnonzero(~np.isin(ptype, CORE_TYPES) | ((ptype == PT_NULL) & (t["p_filesz"] > 0)))
        if len(odd):
            j = int(odd[0])
            raise self._bad(
                f"program header #{j} has type 0x{int(ptype[j]):x}"
                + (" with file data" if ptype[j] == PT_NULL else ", not one a core file holds"),
                e_phoff + j * e_phentsize,
                "PT_LOAD (1) or PT_NOTE (4) (or an empty PT_NULL)",
                hint="the header is corrupt; re-create the dump",
            )
        notes = [
            (int(t["p_offset"][j]), int(t["p_filesz"][j]), e_phoff + j * e_phentsize)
            for j in np.flatnonzero(ptype == PT_NOTE)
        ]
        self._check_notes(buf, notes, end)
        # what the headers describe besides the segments: the ELF header, the program header table,
        # the notes and the section header table when there is one in the file (PN_XNUM dumps)
        headers = [(0, eh.size), (e_phoff, table_end), *((o, o + n) for o, n, _ in notes)]
        if e_shoff and e_shoff + max(_e_shnum, 1) * _e_shentsize <= size:
            headers.append((e_shoff, e_shoff + max(_e_shnum, 1) * _e_shentsize))
        load = np.flatnonzero(ptype == PT_LOAD)
        t = t[load]
        paddr, filesz, memsz = (t[f].astype(np.uint64) for f in ("p_paddr", "p_filesz", "p_memsz"))
        offset = np.minimum(t["p_offset"].astype(np.uint64), np.uint64(1 << 62))
        at = e_phoff + load * e_phentsize
        for cond, what, expected in (
            (filesz > memsz, "p_filesz {f:,} is larger than p_memsz {m:,}", "p_filesz <= p_memsz (ELF spec)"),
            (
                (paddr >= PHYS_ADDR_LIMIT) | (memsz > PHYS_ADDR_LIMIT) | (paddr + memsz > PHYS_ADDR_LIMIT),
                "guest-physical 0x{p:x} + p_memsz {m:,} reaches beyond the 52-bit physical address space",
                f"p_paddr + p_memsz <= 0x{PHYS_ADDR_LIMIT:x}",
            ),
        ):
            bad = np.flatnonzero(cond)
            if len(bad):
                j = int(bad[0])
                raise self._bad(
                    f"PT_LOAD #{int(load[j])}: " + what.format(f=int(filesz[j]), m=int(memsz[j]), p=int(paddr[j])),
                    int(at[j]),
                    expected,
                    hint="the header is corrupt; re-create the dump",
                )
        paddr, filesz, memsz, offset = (x.astype(np.int64) for x in (paddr, filesz, memsz, offset))
        full = SegmentTable(paddr, offset, memsz, at, load, "PT_LOAD")
        has_mem = memsz > 0
        self._check_disjoint(
            full.take(has_mem), paddr[has_mem], (paddr + memsz)[has_mem], "guest-physical", self.overlap_hint
        )
        ps = self.page_size

        def touched(a, n):
            return np.where(n > 0, (a + n - 1) // ps - a // ps + 1, 0)

        excluded = int((touched(paddr, memsz) - touched(paddr, filesz)).sum())
        has_data = filesz > 0
        segs = SegmentTable(
            paddr[has_data], offset[has_data], filesz[has_data], at[has_data], load[has_data], "PT_LOAD"
        )
        # segment data must not lie in the ELF header, the program header table, the notes or the
        # section header table (a p_offset lowered into the notes shifted a segment's every page)
        apart = [(0, eh.size, "the ELF header"), (e_phoff, table_end, "the program header table")]
        apart += [(lo, hi, "the section header table") for lo, hi in headers[2 + len(notes) :]]
        # (offset, size, header offset) per PT_NOTE; a note past the file (skipped under skip_bad_pages)
        # may hold any u64 there: clipped so that offset + size stays inside int64
        nt = np.minimum(np.array(notes, np.uint64).reshape(-1, 3), np.uint64(1 << 61)).astype(np.int64)
        nt = nt[nt[:, 1] > 0]
        alo = np.concatenate([np.array([r[0] for r in apart], np.int64), nt[:, 0]])
        ahi = np.concatenate([np.array([r[1] for r in apart], np.int64), nt[:, 0] + nt[:, 1]])
        # O((segments + headers) log): a segment overlaps a header iff, of the headers starting
        # before its end, the one reaching furthest reaches past its start
        order = np.argsort(alo, kind="stable")
        reach = np.maximum.accumulate(ahi[order])
        last = np.searchsorted(alo[order], segs.offset + segs.size, side="left") - 1
        hit = np.flatnonzero((last >= 0) & (reach[np.maximum(last, 0)] > segs.offset))
        if len(hit):
            sg = segs.segment(int(hit[0]))
            k = int(np.flatnonzero((alo < sg.offset + sg.size) & (ahi > sg.offset))[0])
            lo, hi = int(alo[k]), int(ahi[k])
            what = (
                apart[k][2]
                if k < len(apart)
                else f"the notes of PT_NOTE #{(nt[k - len(apart), 2] - e_phoff) // e_phentsize}"
            )
            raise self._bad(
                f"{sg.label} data (file offset {sg.offset:,}, {sg.size:,} bytes) overlaps {what} (bytes {lo:,}-{hi:,})",
                sg.header_offset,
                "segment data apart from the headers",
                hint="the header is corrupt; re-create the dump",
            )
        # no page-sized stretch of the file that nothing describes: a moved e_phoff or a lowered
        # e_phnum can drop a segment's header while its data stays (same rule as the tail below)
        seg_ranges = zip(segs.offset.tolist(), (segs.offset + segs.size).tolist(), strict=True)
        described = sorted([*headers, *seg_ranges])
        cur = 0  # the end of what is described so far; at the loop's end, of all of it
        for lo, hi in described:
            if lo - cur >= ps:
                raise self._bad(
                    f"{lo - cur:,} bytes at file offset {cur:,} that no header describes",
                    cur,
                    "segments, notes and headers back to back, as dump producers write them (a moved "
                    "e_phoff or a lowered e_phnum leaves a segment's data without its header)",
                    hint="the header is corrupt; re-create the dump",
                )
            cur = max(cur, hi)
        last = cur
        # QEMU 7.2's dump-guest-memory ends with a few bytes no header describes (11 in our
        # captures); less than a page cannot hide a page of guest memory, so it is accepted
        if size - last >= ps:
            raise self._bad(
                f"{size - last:,} bytes after the end of the last segment or table (at {last:,})",
                last,
                "the file to end with its last segment, as dump producers write it (a lowered e_phnum "
                "or a program header of the wrong type leaves data unaccounted for)",
                hint="the header is corrupt; re-create the dump",
            )
        if not len(segs) and not excluded:
            raise self._bad(
                "ELF core has no PT_LOAD segment with data",
                e_phoff,
                "at least one PT_LOAD with p_filesz > 0",
                hint="was it written with a filter that matched no memory?",
            )
        self.stats.pages_excluded = excluded
        return segs

    def _check_notes(self, buf, notes, end) -> None:
        """Each PT_NOTE must hold a chain of notes that ends exactly at its p_filesz."""
        for off, n, at in notes:
            if off + n > self.file_size:
                if self.skip_bad_pages:
                    continue
                raise self._bad(
                    f"PT_NOTE ({n:,} bytes at {off:,}) runs past the end of the file ({self.file_size:,} bytes)",
                    at,
                    "note data inside the file",
                    hint="the dump is truncated; re-create it",
                )
            pos, stop = off, off + n
            for _ in range(MAX_NOTES):
                if pos + 12 > stop:
                    break
                namesz, descsz, _ = struct.unpack_from(end + "III", buf, pos)
                pos += 12 + (-(-namesz // 4) * 4) + (-(-descsz // 4) * 4)
            else:
                pos = -1  # more notes than any dump has
            if pos != stop and not (pos < stop and not np.asarray(buf[pos:stop]).any()):
                raise self._bad(
                    f"the notes of a PT_NOTE ({n:,} bytes at {off:,}) do not end at its p_filesz",
                    at,
                    "a chain of ELF notes filling the PT_NOTE exactly",
                    hint="the header is corrupt; re-create the dump",
                )


def write_elf(path: str | os.PathLike, segments, *, align: int = 1) -> Path:
    """Write a minimal ELF64 little-endian core with one PT_LOAD per segment.

    Parameters
    ----------
    path : path-like
        Output file.
    segments : iterable of (int, bytes-like) or (int, bytes-like, int)
        ``(p_paddr, data[, p_memsz])``; data follow the program headers in order.
    align : int
        Align each segment's file offset to this many bytes (QEMU uses 1: its data start right
        after the notes, at no particular alignment).
    """
    segments = [tuple(s) for s in segments]
    eh = struct.Struct("<16sHHIQQQIHHHHHH")
    ph = struct.Struct("<IIQQQQQQ")
    phoff = eh.size
    off = phoff + ph.size * len(segments)
    phdrs = []
    for seg in segments:
        paddr, data = seg[0], memoryview(seg[1]).cast("B")
        memsz = seg[2] if len(seg) > 2 else len(data)
        off += -off % align
        phdrs.append(ph.pack(PT_LOAD, 7, off, paddr, paddr, len(data), memsz, 0))
        off += len(data)
    ident = ELF_MAGIC + bytes([2, 1, 1]) + b"\0" * 9
    with open(path, "wb") as fh:
        fh.write(eh.pack(ident, ET_CORE, 62, 1, 0, phoff, 0, 0, eh.size, ph.size, len(segments), 0, 0, 0))
        for p in phdrs:
            fh.write(p)
        pos = fh.tell()
        for seg in segments:
            data = memoryview(seg[1]).cast("B")
            pad = -pos % align
            fh.write(b"\0" * pad)
            fh.write(data)
            pos += pad + len(data)
    return Path(path)
