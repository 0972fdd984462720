"""Import the UMass "Memory Buddies" memory traces as hash-only page tables.

The traces (Wood et al., "Memory Buddies: Exploiting Page Sharing for Smart Colocation in
Virtualized Data Centers", VEE '09; released as ``memtraces`` by the UMass trace repository)
describe one machine's memory per file: an ASCII header (OS type, running processes), then
one 32-bit hash per page, stored as consecutive 32-bit values; some files end with a Bloom
filter segment "that can be ignored" (the repository's readme).

The readme does not say where the header ends or how long the hash list is, and the
repository's ``traceReader.c`` is not available here, so this importer:

* takes the header to be the longest prefix of text lines (printable ASCII, tab, CR, LF) that
  ends with a newline — or exactly ``header_bytes`` bytes when given;
* reads 32-bit little-endian hashes from there to the end of the file — or ``max_pages`` of
  them when given (to leave out a Bloom filter) — and rejects a trailing partial value unless
  ``max_pages`` is set;
* takes the page count from a header line ``pages: N`` / ``num_pages=N`` / ``hashes N`` when
  one is present and ``max_pages`` is not given.

Tables are flagged ``hash_only`` with ``hash_bits = 32``: they cannot be byte-verified, and
the analysis reports the expected number of false matches for 32-bit hashes (about d²/2³³ for
d distinct pages). The traces do not mark zero pages, so ``zero`` is False for every page and
the table says ``zero_known: false``.
"""

from __future__ import annotations

import os
import re

import numpy as np

from pagecore.dumps.base import check_input_path
from pagecore.errors import InputError
from pagecore.pages.tables import PageTableWriter

_TEXT = set(range(0x20, 0x7F)) | {0x09, 0x0A, 0x0D}
_COUNT = re.compile(rb"^\s*(?:pages|num_pages|hashes|npages)\s*[:=]?\s*(\d+)\s*$", re.IGNORECASE | re.MULTILINE)


def split_header(data: bytes) -> int:
    """Length of the text header: the longest prefix of whole text lines."""
    end = 0
    i = 0
    n = len(data)
    while i < n:
        j = data.find(b"\n", i)
        if j < 0:
            break
        line = data[i:j]
        if not all(b in _TEXT for b in line):
            break
        end = j + 1
        i = j + 1
    return end


def import_trace(
    path: str | os.PathLike,
    out: str | os.PathLike,
    vm: str | None = None,
    *,
    header_bytes: int | None = None,
    max_pages: int | None = None,
) -> dict:
    """Convert one Memory Buddies trace into a hash-only page table; return its metadata."""
    path = check_input_path(path)
    vm = vm or path.stem
    size = path.stat().st_size
    if size == 0:
        raise InputError(path, "file is empty", offset=0, expected="a text header followed by 32-bit page hashes")
    with open(path, "rb") as fh:
        head = fh.read(min(size, 1 << 20))
    hdr = split_header(head) if header_bytes is None else header_bytes
    if not 0 <= hdr <= size:
        raise InputError(path, f"header length {hdr} is outside the file ({size:,} bytes)")
    header = head[:hdr]
    if max_pages is None:
        m = _COUNT.search(header)
        if m:
            max_pages = int(m.group(1))
    body = size - hdr
    if max_pages is None:
        if body % 4:
            raise InputError(
                path,
                f"{body:,} bytes after the {hdr:,}-byte header are not whole 32-bit hashes",
                offset=size - body % 4,
                expected="consecutive 32-bit page hashes",
                hint="pass --max-pages N to stop before a trailing Bloom filter, or --header-bytes",
            )
        npages = body // 4
    else:
        if max_pages * 4 > body:
            raise InputError(
                path,
                f"{max_pages:,} pages need {max_pages * 4:,} bytes after the header, the file has {body:,}",
                offset=hdr,
                expected="that many 32-bit hashes",
                hint="check --max-pages / --header-bytes",
            )
        npages = max_pages
    if npages == 0:
        raise InputError(path, "no page hashes after the header", offset=hdr)
    hashes = np.memmap(path, dtype="<u4", mode="r", offset=hdr, shape=(npages,))
    text = header.decode("ascii", "replace")
    os_line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    meta = {
        "format": "memorybuddies",
        "source_path": str(path),
        "source_size": size,
        "header_bytes": hdr,
        "header_first_line": os_line[:200],
        "hash_algorithm": "memorybuddies-32",
        "hash_bits": 32,
        "hash_only": True,
        "zero_known": False,
        "verified": False,
        "pages_read": int(npages),
        "bytes_skipped": int(body - npages * 4),
        "pages_skipped": 0,
        "pages_excluded": 0,
    }
    step = 1 << 20
    with PageTableWriter(out, vm, meta) as w:
        for lo in range(0, npages, step):
            hi = min(npages, lo + step)
            w.write(np.arange(lo, hi, dtype=np.uint64), hashes[lo:hi].astype(np.uint64), np.zeros(hi - lo, np.bool_))
        w.metadata["pages"] = w.rows
    del hashes
    return {"vm": vm, **meta}


def expected_false_matches(distinct: int, bits: int = 32) -> float:
    """Expected number of colliding pairs among ``distinct`` contents for a ``bits``-bit hash."""
    d = float(distinct)
    return d * (d - 1) / 2 / 2.0**bits


__all__ = ["expected_false_matches", "import_trace", "split_header"]
