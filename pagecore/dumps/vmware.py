"""VMware ``.vmem`` guest memory placed by the memory-region map of its ``.vmss``/``.vmsn`` checkpoint.

A suspended or snapshotted VMware guest keeps its RAM in ``NAME.vmem`` (raw pages, no header)
and its state in ``NAME.vmss`` (suspend) or ``NAME.vmsn`` (snapshot). Guests whose RAM reaches
the PCI hole are *not* flat: the checkpoint's ``memory`` group says which run of ``.vmem`` pages
lies at which guest-physical page. Open the ``.vmss``/``.vmsn`` (detected by its magic), or the
``.vmem`` with ``format="vmware"``; the other file is found beside it by name.

Checkpoint layout (little-endian; as documented by Volatility's ``vmware`` layer and the
community notes on the format)::

    u32 magic       0xbed2bed0, 0xbad1bad1, 0xbed2bed2 or 0xbed3bed3 (low nibble of byte 0: version)
    u32 unknown     u32 group_count
    group_count x { char name[64]; u64 tags_offset; u64 size }
    tags of a group, until a tag with flags == 0 and name_len == 0:
      u8 flags      bits 0-5: data length (62/63: "big" data), bits 6-7: number of u32 indices
      u8 name_len   name; indices (u32 each)
      data          small: (flags & 0x3f) bytes; big: u64 size (u32 for version 0), the same
                    width again, 2 bytes, then size bytes

In group ``memory``: ``regionsCount``; per region ``i``: ``regionPPN[i]`` (first guest page),
``regionPageNum[i]`` (first ``.vmem`` page) and ``regionSize[i]`` (pages). ``regionsCount`` 0:
the ``.vmem`` is flat from guest-physical 0. Regions must not overlap, must
lie inside the ``.vmem`` and below the 52-bit physical limit, and must place every page of it (a
page no region places, or a tail that is not a whole page, is an error; under ``skip_bad_pages``
it is skipped and counted); region tags must be integers and appear once; ``regionsCount`` must
be there (0 for a flat ``.vmem``: a map without it is not taken as flat) and no region tag may
name a region at or beyond it. Memory stored inside the checkpoint itself (no ``.vmem``) is not
supported. Both files are inputs: an output may be neither (:attr:`VmwareReader.input_paths`).
"""

from __future__ import annotations

import itertools
import mmap
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pagecore import PAGE_SIZE
from pagecore.dumps import _sigbus
from pagecore.dumps.base import DumpReader, PageChunk, refuse_shrunk, register
from pagecore.errors import InputError

MAGICS = (0xBED2BED0, 0xBAD1BAD1, 0xBED2BED2, 0xBED3BED3)
HEADER = struct.Struct("<III")
GROUP = struct.Struct("<64sQQ")
MAX_GROUPS = 4096
#: longest "big" tag value kept by :func:`parse_checkpoint` (none it uses is anywhere near this)
BIG_TAG_KEEP = 1 << 16
#: the memory group's tags that place the ``.vmem``: each must be an integer and appear once
REGION_TAGS = ("regionsCount", "regionPPN", "regionPageNum", "regionSize")
#: most memory regions a checkpoint may have (VMware writes a few: RAM below and above the PCI hole)
MAX_REGIONS = 1 << 16
#: guest pages end below this (the 52-bit physical address limit of ``_segments``)
MAX_GUEST_PAGES = (1 << 52) // PAGE_SIZE


def parse_checkpoint(path: Path) -> dict:
    """Groups and the ``memory`` group's tags of a ``.vmss``/``.vmsn`` file.

    Returns ``{"version", "groups": {name: (offset, size)}, "memory": {(name, indices): value}}``
    with the ``memory`` group's region tags (:data:`REGION_TAGS`; the others are skipped), where
    small 4/8-byte values are ints, other values of up to :data:`BIG_TAG_KEEP` bytes bytes,
    and longer ones ``None``. The file is mapped, not read: a checkpoint that holds the guest's
    memory itself (gigabytes, in one big tag) cost its size in memory, twice.
    """
    size = path.stat().st_size
    if size < HEADER.size:
        raise InputError(path, "file shorter than a VMware checkpoint header", offset=0, expected="12 bytes")
    _sigbus.install_async()  # the checkpoint cut while it is parsed: one line, not a silent death
    _sigbus.set_current(path)
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return _parse_checkpoint(path, data, min(size, len(data)))


def _parse_checkpoint(path: Path, data, size: int) -> dict:
    magic, _unknown, ngroups = HEADER.unpack_from(data, 0)
    if magic not in MAGICS:
        raise InputError(path, f"bad magic {magic:#x}", offset=0, expected=" or ".join(f"{m:#x}" for m in MAGICS))
    version = magic & 0xF
    if not 0 < ngroups <= MAX_GROUPS or HEADER.size + ngroups * GROUP.size > size:
        raise InputError(
            path, f"group count {ngroups}", offset=8, expected=f"1-{MAX_GROUPS} groups whose table fits the file"
        )
    groups = {}
    for i in range(ngroups):
        name, off, gsize = GROUP.unpack_from(data, HEADER.size + i * GROUP.size)
        groups[name.split(b"\0", 1)[0].decode("ascii", "replace")] = (off, gsize)
    if "memory" not in groups:
        raise InputError(path, "no 'memory' group", offset=HEADER.size, expected="a group named memory")
    off, gsize = groups["memory"]
    end = min(size, off + gsize) if gsize else size
    tags = {}
    pos = off
    width = 4 if version == 0 else 8
    while True:
        if pos + 2 > end:
            raise InputError(path, "memory group ends without its end tag", offset=pos, expected="flags 0, name 0")
        flags, nlen = data[pos], data[pos + 1]
        if flags == 0 and nlen == 0:
            break
        at = pos
        pos += 2
        nidx = (flags >> 6) & 3
        if pos + nlen + 4 * nidx > end:  # a cut or corrupt group: one line, never struct.error
            raise InputError(path, "tag name and indices run past the memory group", offset=at)
        name = data[pos : pos + nlen].decode("ascii", "replace")
        pos += nlen
        idx = struct.unpack_from(f"<{nidx}I", data, pos) if nidx else ()
        pos += 4 * nidx
        dlen = flags & 0x3F
        if dlen in (62, 63):
            if pos + 2 * width + 2 > end:
                raise InputError(path, f"tag {name} data size runs past the memory group", offset=at)
            (big,) = struct.unpack_from("<Q" if width == 8 else "<I", data, pos)
            pos += 2 * width + 2
            if pos + big > end:
                raise InputError(path, f"tag {name} data of {big:,} bytes runs past its group", offset=at)
            value = data[pos : pos + big] if big <= BIG_TAG_KEEP else None
            pos += big
        else:
            if pos + dlen > end:
                raise InputError(path, f"tag {name} runs past its group", offset=at)
            raw = data[pos : pos + dlen]
            value = int.from_bytes(raw, "little") if dlen in (4, 8) else raw
            pos += dlen
        if name not in REGION_TAGS:  # never used: kept, a 30 MB group of tiny tags took 960 MB of memory
            continue
        if (name, tuple(idx)) in tags:
            raise InputError(path, f"tag {name}{list(idx)} appears twice", offset=at, expected="each region tag once")
        if len(tags) > 3 * MAX_REGIONS:
            raise InputError(
                path,
                f"more than {MAX_REGIONS:,} memory regions' tags",
                offset=at,
                expected="a few memory regions",
                hint="the checkpoint is corrupt",
            )
        tags[(name, tuple(idx))] = value
    return {"version": version, "groups": groups, "memory": tags}


def regions_of(path: Path, tags: dict, vmem_pages: int) -> list[tuple[int, int, int]]:
    """``[(first guest page, first .vmem page, pages)]``, checked; flat if regionsCount is 0."""
    if ("regionsCount", ()) not in tags:
        # VMware writes it in every checkpoint (0 for a flat .vmem); without it the map was taken
        # as flat, so a damaged memory group (a renamed tag, a group offset pointing at another
        # group) moved every page above the PCI hole to other frames with exit 0
        raise InputError(
            path,
            "the memory group has no regionsCount tag, so where the .vmem's pages lie is unknown",
            expected="a regionsCount tag (0 for a flat .vmem) in the memory group",
            hint="the checkpoint is damaged; pass --format raw to read the .vmem as a flat image",
        )
    count = tags[("regionsCount", ())]
    if not isinstance(count, int):
        raise InputError(path, "regionsCount is not an integer", expected="a 4- or 8-byte tag")
    if count > MAX_REGIONS:
        raise InputError(
            path,
            f"regionsCount {count:,}",
            expected=f"at most {MAX_REGIONS:,} regions",
            hint="the checkpoint is corrupt",
        )
    stray = [f"{n}{list(i)}" for n, i in tags if n in REGION_TAGS[1:] and (len(i) != 1 or i[0] >= count)]
    if stray:  # a lowered regionsCount (0: read flat) left regions out with exit 0
        raise InputError(
            path,
            f"regionsCount is {count:,} but the memory group also has tag {stray[0]}",
            expected=f"region tags with one index below {count:,}" if count else "no region tags in a flat map",
            hint="the checkpoint is damaged",
        )
    if count == 0:
        return [(0, 0, vmem_pages)]
    out = []
    for i in range(count):
        try:
            ppn, fpn, n = (tags[(k, (i,))] for k in ("regionPPN", "regionPageNum", "regionSize"))
        except KeyError as e:
            raise InputError(path, f"region {i} lacks tag {e.args[0][0]}", expected="regionPPN/PageNum/Size") from None
        if not all(isinstance(v, int) for v in (ppn, fpn, n)):  # a 2-byte tag was bytes: a TypeError
            raise InputError(path, f"region {i}'s tags are not all integers", expected="4- or 8-byte tags")
        if ppn + n > MAX_GUEST_PAGES:
            raise InputError(
                path,
                f"region {i} (guest pages {ppn:#x}+{n:#x}) reaches beyond the 52-bit physical address space",
                expected=f"guest pages below {MAX_GUEST_PAGES:#x}",
                hint="the checkpoint is corrupt",
            )
        if fpn + n > vmem_pages:
            raise InputError(
                path,
                f"region {i} (.vmem pages {fpn:#x}+{n:#x}) lies beyond the .vmem ({vmem_pages:#x} pages)",
                expected="regions inside the .vmem",
                hint="the .vmem is truncated or belongs to another checkpoint",
            )
        out.append((ppn, fpn, n))
    for key in (0, 1):
        spans = sorted((r[key], r[key] + r[2]) for r in out)
        for (_a, b), (c, _d) in itertools.pairwise(spans):
            if c < b:
                what = "guest-physical" if key == 0 else ".vmem"
                raise InputError(path, f"memory regions overlap in {what} pages at {c:#x}", expected="disjoint regions")
    return out


def beside(path: Path, suffixes) -> list[Path]:
    """The existing files of ``path``'s name with each of ``suffixes``: beside ``path``, then (a
    symbolic link) beside the file it resolves to, under that file's name."""
    out = []
    for where in dict.fromkeys([Path(path), Path(path).resolve()]):
        for suffix in suffixes:
            c = where.with_suffix(suffix)
            if c.is_file() and c not in out:
                out.append(c)
    return out


@register
class VmwareReader(DumpReader):
    """VMware ``.vmem`` with the region map of its ``.vmss``/``.vmsn``."""

    name = "vmware"
    magic_description = "VMware checkpoint (.vmss/.vmsn) magic 0xbed2bed0/0xbad1bad1/0xbed2bed2/0xbed3bed3"

    @classmethod
    def sniff(cls, head: bytes, size: int) -> bool:
        return len(head) >= 4 and struct.unpack_from("<I", head)[0] in MAGICS

    def __init__(self, path: Path, **kw):
        super().__init__(path, **kw)
        p = Path(path)
        if p.suffix.lower() == ".vmem" or p.resolve().suffix.lower() == ".vmem":
            meta = next(iter(beside(p, (".vmss", ".vmsn"))), None)
            if meta is None:
                raise InputError(p, "no .vmss or .vmsn beside this .vmem", hint="read it as raw if the guest is flat")
            self.vmem, self.checkpoint = p, meta
        else:
            vmem = next(iter(beside(p, (".vmem",))), None)
            if vmem is None:
                raise InputError(
                    p, f"no {p.with_suffix('.vmem').name} beside this checkpoint", hint="copy the .vmem next to it"
                )
            self.vmem, self.checkpoint = vmem, p
        vsize = self.vmem.stat().st_size
        if vsize == 0:  # was a table of 0 pages, exit 0
            raise InputError(
                self.path, f"{self.vmem.name} is empty", expected="guest pages", hint="copy the .vmem again"
            )
        self.info = parse_checkpoint(self.checkpoint)
        self.regions = regions_of(self.checkpoint, self.info["memory"], vsize // PAGE_SIZE)
        # every byte of the .vmem must be a page some region places (regions are disjoint in it):
        # a .vmem of another checkpoint, or a cut one, was read in part with exit 0
        unplaced = vsize // PAGE_SIZE - sum(n for _, _, n in self.regions)
        rem = vsize % PAGE_SIZE
        if unplaced or rem:
            if not self.skip_bad_pages:
                raise InputError(
                    self.path,
                    f"{self.vmem.name}: {unplaced:,} of its {vsize // PAGE_SIZE:,} pages are placed by no region of "
                    f"{self.checkpoint.name}"
                    + (f", and it ends with {rem:,} bytes that are not a whole page" if rem else ""),
                    expected="a .vmem whose every page the checkpoint's memory regions place",
                    hint="the .vmem belongs to another checkpoint or is damaged; pass --skip-bad-pages to read "
                    "only the placed pages",
                )
            self.stats.pages_skipped = unplaced + (rem > 0)
        self.stats.bytes_skipped = unplaced * PAGE_SIZE + rem
        self._vmem_size = vsize
        self._fh = None
        self._mm = None

    @property
    def input_paths(self) -> list[Path]:
        return [self.checkpoint, self.vmem]

    @property
    def pages_hint(self) -> int:
        return sum(n for _, _, n in self.regions)

    def _check_size(self) -> None:
        """As :meth:`MmapReader._check_size`: a .vmem cut while read was a silent SIGBUS death."""
        refuse_shrunk(
            self.vmem, self._vmem_size, os.fstat(self._fh.fileno()).st_size,
            "wait until the VM is suspended or powered off (or copy the files)",
        )  # fmt: skip

    def chunks(self) -> Iterator[PageChunk]:
        _sigbus.install_async()  # a cut while a view is in use: one line, not a silent death
        _sigbus.set_current(self.vmem)
        self._fh = open(self.vmem, "rb")
        self._check_size()
        self._mm = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)
        buf = np.frombuffer(self._mm, np.uint8)
        pages = buf[: len(buf) // PAGE_SIZE * PAGE_SIZE].reshape(-1, PAGE_SIZE)
        for ppn, fpn, n in self.regions:
            for first in range(0, n, self.chunk_pages):
                k = min(self.chunk_pages, n - first)
                self._check_size()
                self.stats.pages_read += k
                yield PageChunk(
                    np.arange(ppn + first, ppn + first + k, dtype=np.uint64), pages[fpn + first :][:k],
                    file_at=(self._fh.fileno(), (fpn + first) * PAGE_SIZE),
                )  # fmt: skip

    def close(self) -> None:
        if self._mm is not None:
            try:
                self._mm.close()
            except BufferError:
                pass
            self._mm = None
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def metadata(self) -> dict:
        meta = super().metadata()
        meta.update(
            vmem_path=os.path.abspath(self.vmem),  # absolute, as source_path: read from anywhere
            checkpoint_path=os.path.abspath(self.checkpoint),
            checkpoint_version=self.info["version"],
            regions=[list(r) for r in self.regions],
        )
        return meta


def write_vmware(vmem: str | Path, regions: list[tuple[int, int, int]], pages: np.ndarray, version: int = 2) -> Path:
    """Write ``NAME.vmem`` and ``NAME.vmss`` laid out as documented (for tests; no VMware producer runs here).

    ``regions``: ``(first guest page, first .vmem page, pages)``; ``pages``: the ``.vmem`` content,
    ``uint8[n, 4096]``. The checkpoint holds groups ``Checkpoint``, ``memory`` (with the region
    tags, a big-data tag and 8-byte values, as VMware writes for version != 0) and ``cpu``.
    """
    vmem = Path(vmem)
    pages.tofile(vmem)
    magic = {0: 0xBED2BED0, 1: 0xBAD1BAD1, 2: 0xBED2BED2, 3: 0xBED3BED3}[version]
    width = 4 if (magic & 0xF) == 0 else 8

    def tag(name: str, value, idx=()):
        nb = name.encode()
        if isinstance(value, bytes):
            head = bytes([62 | (len(idx) << 6), len(nb)]) + nb + struct.pack(f"<{len(idx)}I", *idx)
            sz = struct.pack("<Q" if width == 8 else "<I", len(value))
            return head + sz + sz + b"\0\0" + value
        return (
            bytes([width | (len(idx) << 6), len(nb)])
            + nb
            + struct.pack(f"<{len(idx)}I", *idx)
            + value.to_bytes(width, "little")
        )

    mem = tag("align_mask", 0xFFFF) + tag("regionsCount", len(regions))
    for i, (ppn, fpn, n) in enumerate(regions):
        mem += tag("regionPageNum", fpn, (i,)) + tag("regionPPN", ppn, (i,)) + tag("regionSize", n, (i,))
    mem += tag("hotSetSize", 0) + tag("pagecoreNote", b"written by pagecore.dumps.vmware.write_vmware") + b"\0\0"
    groups = [("Checkpoint", tag("Version", 8) + b"\0\0"), ("memory", mem), ("cpu", tag("cpu:numVCPUs", 1) + b"\0\0")]
    off = HEADER.size + len(groups) * GROUP.size
    table, body = b"", b""
    for name, blob in groups:
        table += GROUP.pack(name.encode(), off + len(body), len(blob))
        body += blob
    vmss = vmem.with_suffix(".vmss")
    vmss.write_bytes(HEADER.pack(magic, 0, len(groups)) + table + body)
    return vmss


__all__ = ["VmwareReader", "parse_checkpoint", "regions_of", "write_vmware"]
