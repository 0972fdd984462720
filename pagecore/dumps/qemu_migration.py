"""QEMU's migration stream saved to a file (``QEVM``): decode its RAM sections, list its devices.

Written by ``migrate "exec:cat > FILE"`` (and after the header of a libvirt save image; see
:mod:`pagecore.dumps.libvirt_save`). Layout, as QEMU 7.2 writes it (``migration/savevm.c``,
``migration/ram.c``; all integers big-endian)::

    be32 0x5145564d "QEVM"   be32 version = 3
    [0x07 CONFIGURATION: be32 len, machine name, then subsections 0x05 <len><name> be32 version ...]
    sections, each one of
      0x01 START / 0x04 FULL   be32 section_id, u8 len, idstr, be32 instance_id, be32 version_id, data
      0x02 PART / 0x03 END     be32 section_id, data
      0x08 COMMAND             be16 command, be16 len, len bytes
    each START/FULL/PART/END followed by a footer 0x7e be32 section_id (all current machine types)
    0x00 EOF
    [0x06 VMDESCRIPTION: be32 len, JSON describing the device sections]

RAM is the iterable section ``"ram"`` (version 4); its data is a run of records, each a be64
whose page-aligned part is an offset in a RAM block and whose low 12 bits are flags:

============  ======  ==================================================================
flag          value   payload
============  ======  ==================================================================
ZERO          0x002   u8 fill byte (0: a zero page)
MEM_SIZE      0x004   (START only) total RAM bytes; then per block: u8 len, name, be64 size
PAGE          0x008   4096 bytes of page data
EOS           0x010   end of this section's RAM data
CONTINUE      0x020   ORed in: same block as the previous record (else u8 len + block name)
MULTIFD_FLUSH 0x200   (QEMU >= 8.1) none
============  ======  ==================================================================

XBZRLE (0x40), RDMA hooks (0x80), compressed pages (0x100), the obsolete FULL (0x01), postcopy,
``x-ignore-shared`` and ``mapped-ram`` streams are refused with a clear error; so is any unknown
section type, version, flag or configuration subsection: nothing is guessed. After the EOF
section only the VM description may follow, and a second ``QEVM`` stream in the same file (two
saves written with ``>>``) is refused, not ignored. The first pass reads the stream to its very
end, so a compressed image's own checks (end-of-stream marker, CRC) are made before any page is
used; a decompressor's error is one line naming the file. Every RAM page is sent at least
once (zero pages as ZERO records) and a page dirtied during migration again later; the last
record of a page wins, so the reader makes two passes (the first only indexes which record of
each page is the last; memory: 8 bytes per guest page). Device sections (``FULL`` after RAM)
are listed from the stream's own VM description, never parsed; a stream with a configuration
section (machine types >= 2.4, which send the description unless QEMU ran with ``-machine
suppress-vmdesc=on``) that has device sections but neither the description nor a whole
stream's end (the last section's footer and EOF) is cut in the device state, and refused.

Guest-physical addresses: block ``pc.ram`` of a PC machine (i440fx or q35, named by the
configuration section) starts at 0; RAM beyond the machine's below-4 GiB limit continues at
4 GiB (QEMU's default ``max-ram-below-4g``; ``pc_piix.c``: 3 GiB below 4 GiB from 3.5 GiB of
RAM on, but 3.5 GiB on ``pc-i440fx-1.x``, which lack ``gigabyte_align``; ``pc_q35.c``: 2 GiB
from 2.75 GiB on; a stream without a configuration section, machine types <= 2.3, names no
machine type, so one with 2.75 GiB or more, where the two differ, is refused); ``pc.bios``
is mapped just below 4 GiB, as in QEMU's ELF dumps. Other blocks (option ROMs, ACPI tables,
video RAM: :data:`NOT_GUEST_RAM_ENDINGS`, :data:`NOT_GUEST_RAM_PREFIXES`) have no fixed guest
address: their pages are counted in ``pages_not_guest_ram`` and not yielded. Any other block
(a memory backend's: hot-plugged DIMMs, virtio-mem) is guest RAM the stream does not place, so
the stream is refused rather than read without it. On a paused 128 MiB guest (QEMU 7.2, TCG)
this gives exactly the pages of ``dump-guest-memory`` (ELF).
"""

from __future__ import annotations

import io
import json
import lzma
import os
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from pagecore import PAGE_SIZE
from pagecore._util import check_output
from pagecore.dumps.base import DumpReader, PageChunk, register
from pagecore.errors import InputError

MAGIC = b"QEVM"
FILE_VERSION = 3

SEC_EOF, SEC_START, SEC_PART, SEC_END, SEC_FULL = 0x00, 0x01, 0x02, 0x03, 0x04
SEC_SUB, SEC_VMDESC, SEC_CONFIG, SEC_COMMAND, SEC_FOOTER = 0x05, 0x06, 0x07, 0x08, 0x7E
SECTION_NAMES = {0: "EOF", 1: "START", 2: "PART", 3: "END", 4: "FULL", 5: "SUBSECTION", 6: "VMDESCRIPTION",
                 7: "CONFIGURATION", 8: "COMMAND", 0x7E: "FOOTER"}  # fmt: skip

F_FULL, F_ZERO, F_MEM_SIZE, F_PAGE, F_EOS, F_CONTINUE = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
F_XBZRLE, F_HOOK, F_COMPRESS, F_MULTIFD_FLUSH = 0x40, 0x80, 0x100, 0x200
FLAG_MASK = PAGE_SIZE - 1
UNSUPPORTED_FLAGS = {
    F_FULL: "the obsolete FULL page record (QEMU < 1.0)",
    F_XBZRLE: "an XBZRLE-compressed page (migration capability xbzrle)",
    F_HOOK: "an RDMA hook record (rdma: migration)",
    F_COMPRESS: "a zlib-compressed page (migration capability compress)",
}
RAM_SECTION_VERSION = 4
#: QEMU's migration commands that carry no page data and may be skipped.
SKIPPABLE_COMMANDS = {1: "OPEN_RETURN_PATH", 2: "PING"}
#: configuration subsections known to QEMU 7.2, with how to read them
KNOWN_CONFIG_SUBSECTIONS = ("configuration/target-page-bits", "configuration/capabilities", "configuration/uuid")
#: capabilities that change the RAM setup record (extra fields per block; mapped-ram, QEMU >= 9.0,
#: also moves the pages out of the stream to fixed file offsets)
LAYOUT_CAPABILITIES = ("x-ignore-shared", "postcopy-ram", "mapped-ram")
#: RAM blocks that are not guest RAM (firmware, option ROMs, fw_cfg blobs, video memory), by the
#: end of their name's last component (QEMU names PCI devices' blocks ``0000:00:02.0/vga.vram``)
NOT_GUEST_RAM_ENDINGS = ("rom", "bios", "vram", ".fifo")
#: ... or by the start of their name (fw_cfg ROM blobs; OVMF's pflash devices)
NOT_GUEST_RAM_PREFIXES = ("/rom@", "system.flash")
#: most RAM blocks a stream may list (QEMU has one per RAM region: RAM, firmware, option ROMs, DIMMs)
MAX_RAM_BLOCKS = 1 << 16
#: most migration capabilities a configuration may list (QEMU 9 has some 30)
MAX_CAPABILITIES = 1024
#: RAM sections and commands listed in :attr:`StreamInfo.sections` (all are counted)
SECTIONS_KEPT = 1024
#: most RAM records a stream may hold per guest page (and :data:`RECORDS_SLACK` more): QEMU sends
#: each page once, and again each time a running guest dirtied it during a live migration's
#: iterations, so a stream far beyond this re-sends without end; a compressed save image of a few KB
#: could take hours of CPU (1.5 KB of xz-compressed ZERO records took 3.3 s to read)
MAX_RECORDS_PER_PAGE = 256
RECORDS_SLACK = 1 << 16
#: most bytes of device state kept while looking for the VM description at the end
DEVICE_TAIL_MAX = 64 << 20
#: what a decompressor (or the disk) raises on damaged input: Python's gzip, bz2 and lzma modules
#: raise EOFError for a cut stream, zlib.error/LZMAError/OSError for corrupt data
_READ_ERRORS = (EOFError, OSError, zlib.error, lzma.LZMAError)


@dataclass
class RamBlock:
    name: str
    size: int
    gpa_ranges: list[tuple[int, int, int]] = field(default_factory=list)  # (block offset, gpa, length)

    @property
    def pages(self) -> int:
        return self.size // PAGE_SIZE


@dataclass
class StreamInfo:
    """What a walk over a migration stream found (everything but the page data)."""

    machine: str = ""
    capabilities: list[str] = field(default_factory=list)
    blocks: list[RamBlock] = field(default_factory=list)
    ram_total: int = 0
    ram_section_id: int | None = None
    footers: bool | None = None
    sections: list[dict] = field(default_factory=list)  # the first SECTIONS_KEPT RAM sections and commands
    section_count: int = 0  # all of them (a list of every one grew without bound: 14 bytes of file each)
    devices: list[dict] = field(default_factory=list)
    devices_source: str = ""
    records: int = 0
    zero_records: int = 0
    page_records: int = 0


class _In:
    """Sequential big-endian reads with a byte offset for error messages and one-byte peek."""

    def __init__(self, fh: BinaryIO, path: Path, base: int = 0, what: str = "migration stream"):
        self.fh = fh
        self.path = path
        self.pos = base  # offset in the *file* (or in the decompressed stream, see ``what``)
        self.what = what
        self._peek = b""

    def err(self, problem: str, expected: str | None = None, hint: str | None = None, at: int | None = None):
        where = self.pos if at is None else at
        if self.what != "migration stream":
            problem = f"{problem} ({self.what})"
        return InputError(self.path, problem, offset=where, expected=expected, hint=hint)

    def raw_read(self, n: int) -> bytes:
        """Up to ``n`` bytes from the file (no peeked byte, no offset update); a decompressor's or
        the disk's error on damaged input becomes an InputError saying where it happened."""
        try:
            return self.fh.read(n)
        except Exception as e:
            if not isinstance(e, _READ_ERRORS) and type(e).__name__ != "ZstdError":  # zstandard is optional
                raise
            raise self.err(
                f"the data cannot be read ({'zlib.error' if isinstance(e, zlib.error) else type(e).__name__}: {e})",
                expected="an intact file",
                hint="the file is truncated or corrupt; re-create it",
            ) from None

    def read(self, n: int, what: str) -> bytes:
        if self._peek:
            b = self._peek + self.raw_read(n - 1) if n > 1 else self._peek
            self._peek = b""
        else:
            b = self.raw_read(n)
        while len(b) < n:  # decompressors may return short reads before the end
            more = self.raw_read(n - len(b))
            if not more:
                break
            b += more
        if len(b) != n:
            raise self.err(
                f"migration stream ends inside {what}",
                expected=f"{n} more bytes",
                hint="the file is truncated (was the migration completed?)",
            )
        self.pos += n
        return b

    def peek(self) -> int | None:
        if not self._peek:
            self._peek = self.raw_read(1)
        return self._peek[0] if self._peek else None

    def u8(self, what: str) -> int:
        return self.read(1, what)[0]

    def be16(self, what: str) -> int:
        return struct.unpack(">H", self.read(2, what))[0]

    def be32(self, what: str) -> int:
        return struct.unpack(">I", self.read(4, what))[0]

    def be64(self, what: str) -> int:
        return struct.unpack(">Q", self.read(8, what))[0]

    def name(self, what: str) -> str:
        n = self.u8(f"{what} length")
        at = self.pos
        raw = self.read(n, what)
        if n == 0 or not all(0x20 <= c < 0x7F for c in raw):
            raise self.err(f"{what} {raw!r} is not a printable name", expected="1-255 printable ASCII bytes", at=at)
        return raw.decode("ascii")


def _pc_layout(blocks: list[RamBlock], machine: str, raw: _In) -> None:
    """Place ``pc.ram`` in guest-physical memory as QEMU's PC machines do (defaults only)."""
    ram = next((b for b in blocks if b.name == "pc.ram"), None)
    if ram is None:
        names = ", ".join(b.name for b in blocks)
        raise raw.err(
            f"no RAM block 'pc.ram' (blocks: {names})",
            expected="a PC guest whose RAM is the block pc.ram (QEMU -m, or libvirt's memory backend)",
            hint="NUMA and other multi-backend guests are not supported; dump them with dump-guest-memory",
        )
    if machine == "" and ram.size >= 0xB0000000:
        # machine types <= 2.3 send no configuration; below 2.75 GiB every PC machine keeps all RAM
        # below 4 GiB, above it q35 and i440fx split it differently (the stream was read as i440fx)
        raise raw.err(
            f"the stream names no machine type and its guest has {ram.size:,} bytes of RAM",
            expected="a configuration section (machine types >= 2.4), or less than 2.75 GiB of RAM",
            hint="where RAM continues above 4 GiB depends on the machine type; dump with dump-guest-memory",
        )
    if machine.startswith("pc-q35") or machine == "q35":
        lowmem = 0x80000000 if ram.size >= 0xB0000000 else 0xB0000000
    elif re.fullmatch(r"pc-(i440fx-)?1\.[0-7]", machine):
        lowmem = 0xE0000000  # no gigabyte_align before pc-i440fx-2.0: 3.5 GiB below 4 GiB, always
    elif machine.startswith("pc-i440fx") or machine == "pc" or machine == "":
        lowmem = 0xC0000000 if ram.size >= 0xE0000000 else 0xE0000000
    else:
        raise raw.err(
            f"machine type {machine!r} has no known guest-physical layout",
            expected="a PC machine (pc-i440fx-*, pc-q35-*)",
            hint="dump the guest with dump-guest-memory instead",
        )
    for b in blocks:
        last = b.name.rsplit("/", 1)[-1].lower()
        if b is ram or b.name.startswith(NOT_GUEST_RAM_PREFIXES) or last.endswith(NOT_GUEST_RAM_ENDINGS):
            continue
        # a pc-dimm, virtio-mem or NUMA memory backend is named by its id: guest RAM that sits at
        # an address only its device state knows; it was left out of the table without a word
        raise raw.err(
            f"RAM block {b.name!r} ({b.size:,} bytes) is neither pc.ram nor firmware, an option ROM or "
            "video memory: guest RAM pagecore cannot place (a pc-dimm, virtio-mem or NUMA memory backend?)",
            expected="pc.ram, with firmware (pc.bios, /rom@..., *.rom, system.flash*) and video RAM (*vram)",
            hint="its pages would be missing from the table; dump the guest with dump-guest-memory (ELF) instead",
        )
    below = min(ram.size, lowmem)
    ram.gpa_ranges = [(0, 0, below)]
    if ram.size > below:
        ram.gpa_ranges.append((below, 1 << 32, ram.size - below))
    bios = next((b for b in blocks if b.name == "pc.bios"), None)
    if bios is not None and bios.size <= 16 << 20:
        # the firmware image is mapped (read-only) just below 4 GiB; dump-guest-memory includes it
        bios.gpa_ranges = [(0, (1 << 32) - bios.size, bios.size)]


class QevmWalker:
    """One pass over a migration stream: :meth:`pages` yields its RAM records in stream order."""

    def __init__(self, raw: _In):
        self.raw = raw
        self.info = StreamInfo()
        self._cur: int | None = None
        self._record_cap = RECORDS_SLACK  # set from the RAM setup (MAX_RECORDS_PER_PAGE a page)
        #: (start, end, carries the block name, header word) of the record just yielded
        self.span: tuple[int, int, bool, int] = (0, 0, False, 0)

    # -- header, configuration ------------------------------------------------
    def _header(self) -> None:
        raw = self.raw
        at = raw.pos
        magic = raw.read(4, "magic")
        if magic != MAGIC:
            raise raw.err(f"bad magic {magic!r}", expected="b'QEVM' (QEMU_VM_FILE_MAGIC)", at=at)
        at = raw.pos
        ver = raw.be32("file version")
        if ver != FILE_VERSION:
            hint = "version 2 is QEMU's pre-0.13 format" if ver == 2 else "not a stream pagecore knows"
            raise raw.err(f"migration stream version {ver}", expected=f"{FILE_VERSION}", hint=hint, at=at)

    def _configuration(self) -> None:
        raw, info = self.raw, self.info
        n = raw.be32("machine name length")
        if not 0 < n < 256:
            raise raw.err(f"machine name length {n}", expected="1-255", at=raw.pos - 4)
        info.machine = raw.read(n, "machine name").decode("ascii", "replace")
        while raw.peek() == SEC_SUB:
            raw.u8("subsection")
            at = raw.pos
            name = raw.name("configuration subsection name")
            ver = raw.be32("subsection version")
            if name not in KNOWN_CONFIG_SUBSECTIONS or ver != 1:
                raise raw.err(
                    f"unknown configuration subsection {name!r} version {ver}",
                    expected=", ".join(f"{s} v1" for s in KNOWN_CONFIG_SUBSECTIONS),
                    hint="written by a QEMU newer than pagecore knows; please report it",
                    at=at,
                )
            if name.endswith("target-page-bits"):
                bits = raw.be32("target page bits")
                if bits != 12:
                    raise raw.err(f"target page size 2**{bits}", expected="4096-byte pages", at=raw.pos - 4)
            elif name.endswith("capabilities"):
                n = raw.be32("capability count")
                if n > MAX_CAPABILITIES:  # each was kept: a compressed stream could list billions
                    raise raw.err(
                        f"{n:,} migration capabilities", expected=f"at most {MAX_CAPABILITIES}", at=raw.pos - 4
                    )
                for _ in range(n):
                    info.capabilities.append(raw.name("capability"))
            else:
                raw.read(16, "uuid")
        bad = [c for c in info.capabilities if c in LAYOUT_CAPABILITIES]
        if bad:
            raise raw.err(
                f"stream made with migration capability {', '.join(bad)}",
                expected="a plain precopy stream",
                hint="these add fields to the RAM setup that pagecore does not decode; migrate without them",
            )

    def _section(self, entry: dict) -> None:
        info = self.info
        info.section_count += 1
        if len(info.sections) < SECTIONS_KEPT:
            info.sections.append(entry)

    def _footer(self, section_id: int) -> None:
        raw, info = self.raw, self.info
        nxt = raw.peek()
        if info.footers is None:
            info.footers = nxt == SEC_FOOTER
        if not info.footers:
            return
        at = raw.pos
        if raw.u8("section footer") != SEC_FOOTER:
            raise raw.err("missing section footer", expected="0x7e after every section", at=at)
        sid = raw.be32("footer section id")
        if sid != section_id:
            raise raw.err(f"footer names section {sid}", expected=f"section {section_id}", at=at)

    # -- RAM ------------------------------------------------------------------
    def _ram_setup(self) -> None:
        raw, info = self.raw, self.info
        at = setup_at = raw.pos
        word = raw.be64("RAM setup")
        if word & FLAG_MASK != F_MEM_SIZE:
            raise raw.err(f"RAM section starts with flags {word & FLAG_MASK:#x}", expected="MEM_SIZE (0x4)", at=at)
        total = word & ~FLAG_MASK
        info.ram_total = total
        seen = 0
        names: set[str] = set()
        while seen < total:
            at = raw.pos
            if len(info.blocks) == MAX_RAM_BLOCKS:  # each was compared with every other: hours for 10**6
                raise raw.err(
                    f"more than {MAX_RAM_BLOCKS:,} RAM blocks in the RAM setup",
                    expected="a few to a few hundred blocks (RAM, firmware, option ROMs, DIMMs)",
                    hint="the RAM setup record is corrupt",
                    at=at,
                )
            name = raw.name("RAM block name")
            size = raw.be64("RAM block size")
            if size % PAGE_SIZE or size == 0 or seen + size > total:
                raise raw.err(
                    f"RAM block {name!r} of {size:,} bytes",
                    expected=f"a non-zero multiple of 4096, within the {total:,} bytes announced",
                    at=at,
                )
            if name in names:
                raise raw.err(f"RAM block {name!r} listed twice", expected="unique block names", at=at)
            names.add(name)
            info.blocks.append(RamBlock(name, size))
            seen += size
        need = 16 * (total // PAGE_SIZE)  # the first pass's index, 8 bytes a page: at most half the memory
        have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        if need > have:  # was a MemoryError, or swapping, on a header claiming petabytes
            raise raw.err(
                f"the stream's RAM blocks total {total:,} bytes: reading it needs {need >> 20:,} MiB for its "
                f"index, more than this machine's {have >> 20:,} MiB",
                expected="a guest whose RAM is at most 256 times this machine's memory",
                hint="read it on a machine with more memory (or the RAM setup record is corrupt)",
                at=setup_at,
            )
        self._record_cap = MAX_RECORDS_PER_PAGE * (total // PAGE_SIZE) + RECORDS_SLACK

    def _ram_data(self, setup: bool) -> Iterator[tuple[int, int, bytes | None, int]]:
        raw, info = self.raw, self.info
        if setup:
            self._ram_setup()
        by_name = {b.name: i for i, b in enumerate(info.blocks)}
        cur = self._cur  # like QEMU's loader, the current block carries over from section to section
        while True:
            at = raw.pos
            word = raw.be64("RAM record")
            flags = word & FLAG_MASK
            off = word & ~FLAG_MASK
            kind = flags & ~F_CONTINUE
            if kind == F_EOS:
                self._cur = cur
                return
            if kind == F_MULTIFD_FLUSH:
                continue
            if kind not in (F_ZERO, F_PAGE):
                what = UNSUPPORTED_FLAGS.get(kind, f"unknown RAM record flags {flags:#x}")
                raise raw.err(
                    f"RAM record with {what}",
                    expected="ZERO (0x2) or PAGE (0x8), optionally with CONTINUE (0x20), or EOS (0x10)",
                    hint="migrate without compression/xbzrle/rdma; unknown flags mean a QEMU pagecore does not know",
                    at=at,
                )
            named = not flags & F_CONTINUE
            if not named:
                if cur is None:
                    raise raw.err("CONTINUE record with no block before it", expected="a block name", at=at)
            else:
                name = raw.name("RAM block name")
                if name not in by_name:
                    raise raw.err(f"page of unknown RAM block {name!r}", expected=", ".join(by_name), at=at)
                cur = by_name[name]
            blk = info.blocks[cur]
            if off >= blk.size:
                raise raw.err(
                    f"page offset {off:#x} beyond RAM block {blk.name!r} ({blk.size:#x} bytes)",
                    expected="an offset inside the block",
                    at=at,
                )
            info.records += 1
            if info.records > self._record_cap:
                raise raw.err(
                    f"more than {self._record_cap:,} RAM records for {info.ram_total // PAGE_SIZE:,} guest pages",
                    expected=f"at most {MAX_RECORDS_PER_PAGE} records a page (each page once, and again each "
                    "time a running guest dirtied it during a live migration)",
                    hint="the stream re-sends pages without end (a migration that never converged, or a "
                    "corrupt or crafted stream)",
                    at=at,
                )
            if kind == F_ZERO:
                fill = raw.u8("zero-page fill byte")
                info.zero_records += 1
                self.span = (at, raw.pos, named, word)
                yield cur, off // PAGE_SIZE, None, fill
            else:
                data = raw.read(PAGE_SIZE, "page data")
                info.page_records += 1
                self.span = (at, raw.pos, named, word)
                yield cur, off // PAGE_SIZE, data, 0

    # -- the stream -----------------------------------------------------------
    def pages(self, *, stop_at_devices: bool = False) -> Iterator[tuple[int, int, bytes | None, int]]:
        """Yield ``(block index, page index, data or None, fill byte)`` per RAM record; fills :attr:`info`.

        ``data`` is None for a ZERO record (the page is ``fill`` repeated). With
        ``stop_at_devices`` the device sections are not listed (the pages are all before them).
        """
        raw, info = self.raw, self.info
        self._header()
        ram_done = False
        while True:
            at = raw.pos
            kind = raw.u8("section type")
            if kind == SEC_CONFIG:
                if info.section_count or info.machine:
                    raise raw.err("configuration section after other sections", expected="it first", at=at)
                self._configuration()
            elif kind in (SEC_START, SEC_FULL):
                sid = raw.be32("section id")
                idstr = raw.name("section name")
                inst = raw.be32("instance id")
                ver = raw.be32("version id")
                if kind == SEC_FULL and idstr != "ram":
                    if not ram_done:
                        raise raw.err(
                            f"device section {idstr!r} before the end of RAM",
                            expected="RAM (START ... END) before device state",
                            at=at,
                        )
                    info.devices = [{"section_id": sid, "name": idstr, "instance_id": inst, "version": ver}]
                    info.devices_source = "first device header only"
                    if not stop_at_devices:
                        self._list_devices(at)
                    return
                if idstr != "ram" or kind != SEC_START:
                    raise raw.err(
                        f"{SECTION_NAMES[kind]} section {idstr!r}",
                        expected="the iterable section 'ram' (no block, dirty-bitmap or vfio migration)",
                        hint="migrate with only RAM as an iterable section",
                        at=at,
                    )
                if ver != RAM_SECTION_VERSION or inst != 0 or info.ram_section_id is not None:
                    raise raw.err(
                        f"RAM section version {ver} instance {inst}",
                        expected=f"one RAM section, version {RAM_SECTION_VERSION}, instance 0",
                        at=at,
                    )
                info.ram_section_id = sid
                self._section({"type": "START", "offset": at})
                yield from self._ram_data(setup=True)
                self._footer(sid)
            elif kind in (SEC_PART, SEC_END):
                sid = raw.be32("section id")
                if sid != info.ram_section_id or ram_done:
                    raise raw.err(
                        f"{SECTION_NAMES[kind]} of section {sid}",
                        expected=f"PART/END of the RAM section {info.ram_section_id}",
                        at=at,
                    )
                self._section({"type": SECTION_NAMES[kind], "offset": at})
                yield from self._ram_data(setup=False)
                self._footer(sid)
                ram_done = kind == SEC_END
            elif kind == SEC_COMMAND:
                cmd = raw.be16("command")
                n = raw.be16("command length")
                if cmd not in SKIPPABLE_COMMANDS:
                    raise raw.err(
                        f"migration command {cmd}",
                        expected="OPEN_RETURN_PATH (1) or PING (2); postcopy and COLO streams are not read",
                        at=at,
                    )
                raw.read(n, "command data")
                self._section({"type": "COMMAND", "command": SKIPPABLE_COMMANDS[cmd], "offset": at})
            elif kind == SEC_EOF:
                if not ram_done:
                    raise raw.err("stream ends before its RAM section ends", expected="a RAM END section", at=at)
                info.devices_source = "no device sections"
                if not stop_at_devices:
                    self._after_eof()
                return
            else:
                raise raw.err(
                    f"unknown section type {kind:#04x}",
                    expected="CONFIGURATION, START, PART, END, FULL, COMMAND or EOF",
                    hint="not a stream pagecore can read (or a QEMU newer than it knows)",
                    at=at,
                )

    def _rest(self, first_at: int) -> bytes:
        """The rest of the stream (at most :data:`DEVICE_TAIL_MAX` bytes), read to its very end, so
        that a compressed image's checksums are checked; refuses a second stream appended to it."""
        raw = self.raw
        tail = bytearray(raw._peek)
        raw._peek = b""
        while True:
            block = raw.raw_read(1 << 20)
            if not block:
                break
            tail += block
            if len(tail) > DEVICE_TAIL_MAX:
                raise raw.err(
                    f"more than {DEVICE_TAIL_MAX >> 20} MiB of device state",
                    expected="device sections of at most that size",
                    at=first_at,
                )
        second = tail.find(MAGIC + struct.pack(">I", FILE_VERSION))
        if second >= 0:
            raise raw.err(
                "a second migration stream starts here, after the first one's RAM",
                expected="one stream per file",
                hint="the file holds two saves (written with >> or saved twice); split it, only the first was read",
                at=raw.pos + second,
            )
        return bytes(tail)

    def _after_eof(self) -> None:
        """After the EOF marker QEMU writes at most its VM description (0x06, be32 length, JSON)."""
        raw = self.raw
        at = raw.pos
        end = self._rest(at)
        if end and not (end[0] == SEC_VMDESC and len(end) >= 5 and struct.unpack_from(">I", end, 1)[0] == len(end) - 5):
            raise raw.err(
                f"{len(end):,} bytes after the end of the stream (the EOF section)",
                expected="nothing, or the VM description (0x06, its length, JSON to the end of the file)",
                hint="the file is corrupt or holds more than one stream",
                at=at,
            )

    def _list_devices(self, first_at: int) -> None:
        """Device sections from the VM description (JSON) at the stream's end; never parsed."""
        raw, info = self.raw, self.info
        end = self._rest(first_at)
        desc = None
        for m in re.finditer(rb"\x00\x06", end):
            p = m.start() + 1
            if p + 5 <= len(end) and struct.unpack_from(">I", end, p + 1)[0] == len(end) - p - 5:
                try:
                    desc = json.loads(end[p + 5 :])
                except ValueError:
                    continue
                break
        # no description, but the stream ends as a whole one does: the last section's footer (when
        # the stream has footers) and EOF: QEMU ran with -machine suppress-vmdesc=on (a valid file)
        ends_whole = len(end) >= 6 and end[-1] == SEC_EOF and (not info.footers or end[-6] == SEC_FOOTER)
        if desc is None:
            # machine types >= 2.4 (the ones that send a configuration) end with it unless suppressed
            if info.machine and not ends_whole:
                raise raw.err(
                    "the stream ends without QEMU's VM description after its device sections: it is cut "
                    "(or corrupt) in the device state",
                    expected="device sections, EOF, then the VM description (0x06, its length, JSON) at the end",
                    hint="the save did not finish (a full disk?); the RAM pages came before the damage, but "
                    "QEMU cannot restore this file: save the guest again",
                    at=first_at,
                )
            info.devices_source += "; no VM description at the end of the stream, so the list stops there"
            if ends_whole:
                info.devices_source += " (the stream ends whole: saved with -machine suppress-vmdesc=on?)"
            return
        if not (
            isinstance(desc, dict)
            and isinstance(desc.get("devices"), list)
            and all(isinstance(d, dict) for d in desc["devices"])
        ):  # was an AttributeError/TypeError traceback
            raise raw.err(
                "the VM description at the end of the stream is not QEMU's (no list of device objects)",
                expected='JSON {"devices": [{"name": ..., "instance_id": ...}, ...]}',
                hint="the stream is corrupt",
                at=first_at,
            )
        devices = []
        for d in desc["devices"]:
            devices.append(
                {
                    "name": d.get("name"),
                    "instance_id": d.get("instance_id"),
                    "vmsd_name": d.get("vmsd_name"),
                    "version": d.get("version"),
                }
            )
        first = info.devices[0]
        if not devices or devices[0]["name"] != first["name"]:
            raise raw.err(
                "the VM description does not start with the first device section "
                f"({devices[0]['name'] if devices else 'none'} vs {first['name']})",
                expected="one entry per device section, in order",
                at=first_at,
            )
        devices[0]["section_id"] = first["section_id"]
        info.devices = devices
        info.devices_source = "VM description (JSON) at the end of the stream"


def _frame_of(block: RamBlock, page: int) -> int:
    """Guest frame of page ``page`` of ``block`` (-1: not guest RAM). Computed from the block's
    (at most two) ranges: a map of every page cost 8 bytes a page and 16 more while it was
    built, so a stream of a few KiB claiming terabytes of RAM took more than the machine had."""
    off = page * PAGE_SIZE
    for start, gpa, length in block.gpa_ranges:
        if start <= off < start + length:
            return (gpa + off - start) // PAGE_SIZE
    return -1


def crop_stream(src: str | Path, dst: str | Path, windows: list[tuple[int, int]]) -> Path:
    """Copy an uncompressed migration stream keeping only RAM records of guest frames in ``windows``.

    Everything else (header, configuration, RAM setup, section headers and footers, device
    sections, VM description) is copied verbatim; a kept CONTINUE record whose block is not the
    block of the previous kept record gets its block name written back (CONTINUE cleared), so
    the result decodes to exactly the kept pages; the dropped ones then count as excluded.
    """
    src, dst = Path(src), Path(dst)
    check_output(dst, [src])  # crop_stream(f, f) emptied f before reading it
    info = QemuMigrationReader(src).describe()
    with open(src, "rb") as fh, open(dst, "wb") as out:
        data = fh.read()
        w = QevmWalker(_In(io.BytesIO(data), src))
        pos, prev = 0, None
        for b, p, _d, _f in w.pages():
            at, end, named, word = w.span
            out.write(data[pos:at])
            g = _frame_of(info.blocks[b], p)
            if g >= 0 and any(lo <= g < hi for lo, hi in windows):
                if named or prev == b:
                    out.write(data[at:end])
                else:
                    name = info.blocks[b].name.encode()
                    payload = data[end - (1 if word & F_ZERO else PAGE_SIZE) : end]
                    out.write(struct.pack(">QB", word & ~F_CONTINUE, len(name)) + name + payload)
                prev = b
            pos = end
        out.write(data[pos:])
    return dst


def _chunk(gp: np.ndarray, buf: np.ndarray, n: int) -> PageChunk:
    """A read-only copy of the first ``n`` collected pages."""
    pages = buf[:n].copy()
    pages.flags.writeable = False
    return PageChunk(gp[:n].copy(), pages)


def _sniff_qevm(head: bytes) -> bool:
    return head[:4] == MAGIC and len(head) >= 8 and struct.unpack_from(">I", head, 4)[0] == FILE_VERSION


class StreamReader(DumpReader):
    """Two-pass reading of a migration stream that starts somewhere in a file (see the module doc)."""

    def _open_stream(self) -> tuple[BinaryIO, int, str]:
        """A fresh binary stream positioned at the QEVM magic, its file offset and a description."""
        return open(self.path, "rb", buffering=1 << 20), 0, "migration stream"  # the caller closes it

    def _walker(self, fh: BinaryIO, base: int, what: str) -> QevmWalker:
        return QevmWalker(_In(fh, self.path, base, what))

    def _index(self) -> tuple[StreamInfo, list[np.ndarray]]:
        """First pass: for every page of every block, the number of its last record (-1: none)."""
        fh, base, what = self._open_stream()
        with fh:
            w = self._walker(fh, base, what)
            last: list[np.ndarray] = []
            for seq, (b, p, _data, _fill) in enumerate(w.pages(), 1):
                while len(last) <= b:
                    last.append(np.full(w.info.blocks[len(last)].pages, -1, np.int64))
                last[b][p] = seq
        for i in range(len(last), len(w.info.blocks)):
            last.append(np.full(w.info.blocks[i].pages, -1, np.int64))
        return w.info, last

    def _stamp(self) -> tuple[int, ...]:
        st = os.stat(self.path)
        return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns

    def _check_unchanged(self, stamp: tuple[int, ...], first: StreamInfo, second: StreamInfo) -> None:
        """The stream is read twice: refuse a file that changed in between (a save rewritten in place
        while it was hashed mixed the pages of two saves, with exit 0)."""
        if self._stamp() != stamp or second.records != first.records:
            raise InputError(
                self.path,
                "the file changed while being read (a migration stream is read twice: "
                f"{first.records:,} RAM records the first time, {second.records:,} the second)",
                expected="an input that nothing writes while pagecore reads it",
                hint="wait until the save has finished (or copy the file) and run again",
            )

    def chunks(self) -> Iterator[PageChunk]:
        stamp = self._stamp()
        info, last = self._index()
        fh, base, what = self._open_stream()
        with fh:
            w = self._walker(fh, base, what)
            _pc_layout(info.blocks, info.machine, w.raw)
            self.info = info
            blocks = info.blocks
            self._not_ram = sum(b.pages - sum(n for _, _, n in b.gpa_ranges) // PAGE_SIZE for b in blocks)
            missing = sum(
                int(np.count_nonzero(lst[o // PAGE_SIZE : (o + n) // PAGE_SIZE] < 0))
                for lst, b in zip(last, blocks, strict=True)
                for o, _, n in b.gpa_ranges
            )
            k = self.chunk_pages
            buf = np.empty((k, PAGE_SIZE), np.uint8)
            gp = np.empty(k, np.uint64)
            n = 0
            for seq, (b, p, data, fill) in enumerate(w.pages(stop_at_devices=True), 1):
                if last[b][p] != seq:
                    continue
                g = _frame_of(blocks[b], p)
                if g < 0:
                    continue
                if data is None:
                    buf[n].fill(fill)
                else:
                    buf[n] = np.frombuffer(data, np.uint8)
                gp[n] = g
                n += 1
                if n == k:
                    self.stats.pages_read += n
                    yield _chunk(gp, buf, n)
                    n = 0
            self._check_unchanged(stamp, info, w.info)
            if n:
                self.stats.pages_read += n
                yield _chunk(gp, buf, n)
        self.stats.pages_excluded += missing

    def metadata(self) -> dict:
        meta = super().metadata()
        info = getattr(self, "info", None)
        if info is not None:
            meta.update(
                machine=info.machine,
                ram_blocks=[
                    {"name": b.name, "bytes": b.size, "gpa": [[o, g, n] for o, g, n in b.gpa_ranges]}
                    for b in info.blocks
                ],
                ram_records={"zero": info.zero_records, "page": info.page_records},
                ram_sections=info.section_count,
                pages_not_guest_ram=getattr(self, "_not_ram", 0),
                device_sections=[d["name"] for d in info.devices],
                device_sections_source=info.devices_source,
            )
        return meta

    def describe(self) -> StreamInfo:
        """Walk the whole stream without keeping pages: blocks, sections and the device list."""
        fh, base, what = self._open_stream()
        with fh:
            w = self._walker(fh, base, what)
            for _ in w.pages():
                pass
        _pc_layout(w.info.blocks, w.info.machine, w.raw)
        return w.info


@register
class QemuMigrationReader(StreamReader):
    """QEMU migration stream (``migrate exec:cat > FILE``)."""

    name = "qemu-migration"
    magic_description = "QEMU migration stream 'QEVM' version 3"

    @classmethod
    def sniff(cls, head: bytes, size: int) -> bool:
        return _sniff_qevm(head)


__all__ = ["QemuMigrationReader", "QevmWalker", "StreamInfo", "StreamReader", "crop_stream"]
