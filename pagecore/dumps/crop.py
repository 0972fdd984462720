"""Crop real dumps to a few guest-physical windows, keeping the producer's bytes.

Used to make the small fixtures under ``data/dumps/`` from full captures (a 128 MiB guest's
kdump-zlib file alone is ~20 MB, mostly the kernel image). Each format is cropped the way a
producer could have written it, with as little rewriting as possible:

* **raw**: truncated after the last window; bytes outside the windows are set to zero (a
  raw image cannot express holes).
* **ELF**: the original bytes up to the first segment's data (ELF header, section headers,
  notes) are kept verbatim; the data of every PT_LOAD is cut to the windows, one PT_LOAD per
  piece, and a new program header table is appended (``e_phoff``/``e_phnum`` updated).
* **kdump** (plain or flattened input): the header, sub-header, notes and VMCOREINFO blocks
  and the 1st bitmap are kept verbatim; the 2nd bitmap keeps only frames inside the windows,
  so the others are reported as *excluded*, exactly as makedumpfile's ``dump_level`` does;
  the page-descriptor table is rewritten for the kept frames, pointing at the producer's
  compressed page bytes, copied verbatim (QEMU's shared zero page stays shared). The output
  is plain kdump, or flattened (records of at most ``record_bytes``) when ``flattened``.

``dst`` is never ``src`` (refused before anything is read or written).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from pagecore._util import check_output
from pagecore.dumps.elf import ElfReader
from pagecore.dumps.flattened import write_flattened
from pagecore.dumps.kdump import PAGE_DESC, KdumpReader
from pagecore.errors import InputError

Windows = list[tuple[int, int]]  # [(first_pfn, end_pfn), ...]


def _in_windows(pfns: np.ndarray, windows: Windows) -> np.ndarray:
    keep = np.zeros(len(pfns), bool)
    for lo, hi in windows:
        keep |= (pfns >= lo) & (pfns < hi)
    return keep


def crop_raw(src: str | os.PathLike, dst: str | os.PathLike, windows: Windows, ps: int = 4096) -> Path:
    """Copy the raw image ``src`` to ``dst`` up to the last window, zero outside the windows."""
    check_output(dst, [src])  # crop_raw(f, f) truncated f before reading it
    end = max(hi for _, hi in windows)
    size = min(Path(src).stat().st_size // ps, end)
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        fo.truncate(size * ps)
        for lo, hi in windows:
            hi = min(hi, size)
            if hi <= lo:
                continue
            fi.seek(lo * ps)
            fo.seek(lo * ps)
            fo.write(fi.read((hi - lo) * ps))
    return Path(dst)


def crop_elf(src: str | os.PathLike, dst: str | os.PathLike, windows: Windows, ps: int = 4096) -> Path:
    """Cut the PT_LOAD data of the ELF core ``src`` to ``windows``; see the module docstring."""
    check_output(dst, [src])
    reader = ElfReader(Path(src))
    segs = reader._segments()
    raw = Path(src).read_bytes()
    head_end = min(s.offset for s in segs)
    eh = struct.Struct("<16sHHIQQQIHHHHHH")
    fields = list(eh.unpack_from(raw, 0))
    if raw[4] != 2 or raw[5] != 1:
        raise InputError(src, "crop_elf handles ELF64 little-endian only")
    out = bytearray(raw[:head_end])
    phdrs = []
    # keep the non-PT_LOAD headers (notes) verbatim
    e_phoff, e_phentsize, e_phnum = fields[5], fields[9], fields[10]
    if e_phnum == 0xFFFF:
        e_phnum = struct.unpack_from("<I", raw, fields[6] + 44)[0]
    for i in range(e_phnum):
        ph = raw[e_phoff + i * e_phentsize : e_phoff + i * e_phentsize + 56]
        if struct.unpack_from("<I", ph)[0] != 1:
            phdrs.append(ph)
    for s in segs:
        for lo, hi in windows:
            a = max(s.paddr, lo * ps)
            b = min(s.paddr + s.size, hi * ps)
            if b <= a:
                continue
            off = len(out)
            out += raw[s.offset + (a - s.paddr) : s.offset + (b - s.paddr)]
            phdrs.append(struct.pack("<IIQQQQQQ", 1, 7, off, 0, a, b - a, b - a, 0))
    reader.close()
    fields[5] = len(out)
    fields[10] = len(phdrs)
    out += b"".join(phdrs)
    eh.pack_into(out, 0, *fields)
    Path(dst).write_bytes(bytes(out))
    return Path(dst)


def crop_kdump(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    windows: Windows,
    *,
    flattened: bool = False,
    record_bytes: int = 16384,
) -> Path:
    """Keep only the frames of ``windows`` in the kdump file ``src`` (plain or flattened)."""
    check_output(dst, [src])
    from pagecore.dumps import open_dump

    reader = open_dump(src)
    if not isinstance(reader, KdumpReader):
        raise InputError(src, f"not a kdump file ({reader.name})")
    s = reader._source()
    h = reader._parse(s)
    bs = h["block_size"]
    writes = [(0, bytes(s.read(0, h["bitmap1"])))]
    half = h["bitmap2"] - h["bitmap1"]
    writes.append((h["bitmap1"], bytes(s.read(h["bitmap1"], half))))
    bm2 = np.unpackbits(np.asarray(s.read(h["bitmap2"], half)), bitorder="little").astype(bool)
    pfns = np.flatnonzero(bm2)
    descs = np.frombuffer(bytes(s.read(h["desc_at"], len(pfns) * PAGE_DESC.itemsize)), PAGE_DESC)
    keep = _in_windows(pfns, windows)
    new_bm2 = np.zeros_like(bm2)
    new_bm2[pfns[keep]] = True
    writes.append((h["bitmap2"], np.packbits(new_bm2, bitorder="little").tobytes()))
    kept = descs[keep].copy()
    data_at = h["desc_at"] + -(-len(kept) * PAGE_DESC.itemsize // bs) * bs
    moved: dict[int, int] = {}
    blobs = []
    off = data_at
    for d in kept:
        o = int(d["offset"])
        if o not in moved:
            moved[o] = off
            blob = bytes(s.read(o, int(d["size"])))
            blobs.append(blob)
            off += len(blob)
        d["offset"] = moved[o]
    writes.append((h["desc_at"], kept.tobytes()))
    writes.append((data_at, b"".join(blobs)))
    reader.close()
    if flattened:
        return write_flattened(dst, writes, record_bytes=record_bytes)
    with open(dst, "wb") as fh:
        for o, b in writes:
            fh.seek(o)
            fh.write(b)
    return Path(dst)
