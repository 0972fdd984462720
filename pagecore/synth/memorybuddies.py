"""Import the UMass "Memory Buddies" memory traces as hash-only page tables.

The traces (Wood et al., "Memory Buddies: Exploiting Page Sharing for Smart Colocation in
Virtualized Data Centers", VEE '09; released as ``memtraces`` by the UMass trace repository)
describe one machine's memory per file: an ASCII header (OS type, running processes), then
one 32-bit hash per page, stored as consecutive 32-bit values; some files end with a Bloom
filter segment "that can be ignored" (the repository's readme).

The readme does not say where the header ends or how long the hash list is, and the
repository's ``traceReader.c`` is not available here, so this importer:

* takes the header to be the text lines (printable ASCII, tab, CR, LF) at the start of the
  file, ending with a newline — or exactly ``header_bytes`` bytes when given. Hash values can
  look like text too (a 32-bit hash whose bytes are text up to a newline, about 1 trace in 160
  with random hashes), so the longest such prefix may have swallowed the first hashes: every
  line end within :data:`SWALLOW_WINDOW` bytes before the end of that prefix is a possible
  header end, and each one the file fits (whole 32-bit hashes after it, or room for the page
  count) is a candidate. The longest prefix, when it is the only candidate, is the header;
  several candidates are refused, naming them, with the advice to pass ``--header-bytes``, and
  so is one shorter candidate alone: a file cut short (or damaged) by a few bytes fits a header
  that ends one text line early as well as one whose hashes look like text, and taking it
  read the last header line as hashes and misaligned every hash, exit 0 (hashes are never
  silently dropped or misaligned). A swallow longer than the window needs ~4 more hash bytes,
  all text, per extra byte: with random hashes, about one trace in 10^9;
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


#: How far before the end of the longest text prefix an earlier line end is still a possible
#: header end (the hashes after it looking like text lines): a swallow of ``d`` bytes needs
#: ``d - 1`` text bytes (98 of 256 values) and a newline, so one of more than 16 bytes has a
#: chance of about 0.383^16 / 256 / 0.62 ≈ 1e-9 per trace with random hashes.
SWALLOW_WINDOW = 16


def line_ends(data: bytes) -> list[int]:
    """Ends (offsets just past the newline) of the whole text lines at the start of ``data``."""
    ends = []
    i = 0
    n = len(data)
    while i < n:
        j = data.find(b"\n", i)
        if j < 0:
            break
        line = data[i:j]
        if not all(b in _TEXT for b in line):
            break
        ends.append(j + 1)
        i = j + 1
    return ends


def split_header(data: bytes) -> int:
    """Length of the longest prefix of whole text lines (the header, unless it swallowed hashes
    that look like text: :func:`header_candidates`)."""
    ends = line_ends(data)
    return ends[-1] if ends else 0


def _fits(header: bytes, size: int, max_pages: int | None) -> bool:
    """Whether a header of these bytes fits a file of ``size`` bytes: whole 32-bit hashes after
    it, or (with a page count, given or in the header) room for that many."""
    count = max_pages
    if count is None:
        m = _COUNT.search(header)
        count = int(m.group(1)) if m else None
    body = size - len(header)
    if count is None:
        return body > 0 and body % 4 == 0
    return count > 0 and count * 4 <= body


def header_candidates(data: bytes, size: int, max_pages: int | None = None) -> list[int]:
    """Header lengths the start of a trace (``data``, of a file of ``size`` bytes) allows: the
    line ends within :data:`SWALLOW_WINDOW` bytes of the end of the longest text prefix that the
    file fits (:func:`_fits`), shortest first. One is the header; more than one is ambiguous."""
    ends = line_ends(data)
    if not ends:
        return []
    last = ends[-1]
    return [e for e in ends if last - e <= SWALLOW_WINDOW and _fits(data[:e], size, max_pages)]


def _refuse_non_ascii_line(path, data: bytes, end: int) -> None:
    """Refuse a header that ends where a text line with non-ASCII characters begins (a process
    name in UTF-8): the header is ASCII lines, so such a line was taken for hashes ("Linux\n"
    then "proccé\n" read as 2 more pages, every later hash in place, exit 0)."""
    j = data.find(b"\n", end, end + 4096)
    if j <= end:
        return
    try:
        line = data[end:j].decode("utf-8")
    except UnicodeDecodeError:
        return
    if line.isascii() or not all(ch.isprintable() or ch in "\t\r" for ch in line):
        return
    if sum(ch.isascii() and ch.isalpha() for ch in line) < 3:  # hashes pass the tests above about 1 in 5,000
        return
    raise InputError(
        path,
        f"the text header ends after {end:,} bytes, where a line of non-ASCII text ({line[:40]!r}) follows: "
        "it may be part of the header",
        offset=end,
        expected="a text header of ASCII lines followed by 32-bit page hashes",
        hint=f"pass --header-bytes {j + 1} if that line is part of the header, or --header-bytes {end} if not",
    )


def detect_header(path, data: bytes, size: int, max_pages: int | None = None) -> int:
    """The header length of the trace at ``path`` (``data``: its start; ``size``: its length).

    The longest text prefix when it is the one candidate of :func:`header_candidates`, or when
    there is none (the caller then says what does not fit); an :class:`InputError` naming them
    when there are several, or when the one candidate is shorter (a cut file or hashes that look
    like text: only the user can tell).
    """
    cands = header_candidates(data, size, max_pages)
    longest = split_header(data)
    if cands == [longest]:
        _refuse_non_ascii_line(path, data, longest)
        return longest
    if not cands:
        _refuse_non_ascii_line(path, data, longest)
        return longest
    if len(cands) == 1:  # only a shorter header fits: hashes that look like text, or a cut file
        c = cands[0]
        raise InputError(
            path,
            f"the text lines end after {longest:,} bytes, but the hashes after them do not fit the file; only a "
            f"header of {c:,} bytes does (the file is cut short or damaged, or its first hashes look like text)",
            offset=c,
            expected="a text header followed by 32-bit page hashes",
            hint=f"look at the start of the file (head -c 200 FILE | od -c): if bytes {c:,} to {longest:,} are "
            f"hashes, pass --header-bytes {c}; otherwise get the trace again",
        )
    listed = ", ".join(f"{c:,}" for c in cands[:-1]) + f" or {cands[-1]:,}"
    raise InputError(
        path,
        f"cannot tell where the text header ends: after {listed} bytes all fit the file "
        "(page hashes can look like text lines)",
        offset=cands[0],
        expected="a text header followed by 32-bit page hashes",
        hint="look at the start of the file (head -c 200 FILE | od -c) and pass --header-bytes N",
    )


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
    vm = path.stem if vm is None else vm
    from pagecore.pages.names import check_vm_name

    check_vm_name(vm)  # as `hash --vm` does: a name with a line break printed forged report rows
    size = path.stat().st_size
    if size == 0:
        raise InputError(path, "file is empty", offset=0, expected="a text header followed by 32-bit page hashes")
    with open(path, "rb") as fh:
        head = fh.read(min(size, 1 << 20))
    hdr = detect_header(path, head, size, max_pages) if header_bytes is None else header_bytes
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
        "source_path": os.path.abspath(path),  # absolute: `-o` naming the trace is refused from any directory
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


__all__ = ["detect_header", "expected_false_matches", "header_candidates", "import_trace", "line_ends", "split_header"]
