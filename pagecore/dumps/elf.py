"""ELF core dumps: QEMU ``dump-guest-memory`` (format ``elf``), ``virsh dump --memory-only``.

Every ``PT_LOAD`` program header with file data is one run of guest memory, placed by its
**physical** address ``p_paddr`` (QEMU writes one per guest RAM block; ``p_vaddr`` is only
meaningful in ``paging=true`` dumps). Holes between segments (the legacy VGA window, PCI
hole) are simply absent. Segments whose start or size is not page-aligned are handled: their
whole pages are zero-copy views of the read-only mmap, their edge pages are assembled with
the missing bytes as zero (``stats.pages_partial``). Bytes in ``p_memsz`` beyond
``p_filesz`` are not in the file; their pages are counted as excluded.

ELF64 and ELF32, little- and big-endian, and ``e_phnum == PN_XNUM`` (the real count in
section header 0's ``sh_info``, as QEMU writes for guests with > 65,534 blocks) are read.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from pagecore.dumps._segments import Segment, SegmentReader, _pages_touched
from pagecore.dumps.base import register
from pagecore.errors import InputError

ELF_MAGIC = b"\x7fELF"
PT_LOAD = 1
PN_XNUM = 0xFFFF
ET_CORE = 4

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

    def _parse_segments(self, buf: np.ndarray) -> list[Segment]:
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
        segs = []
        excluded = 0
        for i in range(e_phnum):
            at = e_phoff + i * e_phentsize
            f = ph.unpack_from(buf, at)
            if cls_ == 2:
                p_type, _flags, p_offset, _vaddr, p_paddr, p_filesz, p_memsz, _align = f
            else:
                p_type, p_offset, _vaddr, p_paddr, p_filesz, p_memsz, _flags, _align = f
            if p_type != PT_LOAD:
                continue
            if p_memsz > p_filesz:
                excluded += _pages_touched(p_paddr, p_memsz) - _pages_touched(p_paddr, p_filesz)
            if p_filesz == 0:
                continue
            if p_paddr + p_filesz > 1 << 64:
                raise self._bad(
                    f"PT_LOAD #{i} wraps around the 64-bit address space",
                    at,
                    "p_paddr + p_filesz < 2**64",
                    hint="the header is corrupt",
                )
            segs.append(Segment(p_paddr, p_offset, p_filesz, at, f"PT_LOAD #{i}"))
        if not segs and not excluded:
            raise self._bad(
                "ELF core has no PT_LOAD segment with data",
                e_phoff,
                "at least one PT_LOAD with p_filesz > 0",
                hint="was it written with a filter that matched no memory?",
            )
        self.stats.pages_excluded = excluded
        return segs


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
