"""Fuzz every reader in process: a mutated dump gives a clean error, the same pages, or says so.

For each format — raw, ELF, LiME, kdump with every codec the writers produce (raw pages, zlib,
lzo, snappy, zstd) and flattened kdump — a small valid dump (64 pages, holes and shared zero
pages included; ELF and LiME with a segment that covers pages in part) is mutated
:data:`CASES` times, with and without ``skip_bad_pages``: bits flipped, bytes overwritten,
boundary integers written, the file cut. Each mutant is read in process (``open_dump``,
every chunk hashed with ``hash_pages``) and its result classified against the original's:

* ``error``: a one-line :class:`InputError` naming the file;
* ``identical``: the same frames with the same page hashes and the same reader stats;
* ``reported``: the reader's stats (skipped, excluded, partial, incomplete) differ, so the
  damage is visible to the caller;
* ``silent``: other pages, same stats.

The test fails on any other exception (a traceback), any case slower than
:data:`CASE_LIMIT_S`, and any silent change made by a mutation that touched a byte outside
the ranges the format documents as unprotectable (``UNPROTECTED`` in each format module: the
page data of raw, ELF and LiME dumps and of raw/lzo/snappy/zstd kdump pages, ELF ``p_paddr``,
and — a raw image having no header — its length). The mutations are seeded: a failure prints
the case's seed and mutations, and ``_apply(seed, _mutations(seed, case))`` reproduces it.

``CASES`` = 2,000 per format and mode by default (~36,000 reads, a few minutes); the
``slow`` run uses 20,000 and seeds cut from the real QEMU/makedumpfile dumps.
"""

from __future__ import annotations

import collections
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from dumps_helpers import FIXTURE_ARCHIVE, PS, make_pages, unpack_fixture

from pagecore.dumps import open_dump
from pagecore.dumps.elf import write_elf
from pagecore.dumps.flattened import write_kdump_flat
from pagecore.dumps.kdump import FLAG_LZO, FLAG_SNAPPY, FLAG_ZLIB, FLAG_ZSTD, PAGE_DESC, write_kdump
from pagecore.dumps.lime import HEADER as LIME_HEADER
from pagecore.dumps.lime import write_lime
from pagecore.errors import InputError
from pagecore.pages.hashing import PageKey, hash_pages

CASES = 2000
SLOW_CASES = 20000
CASE_LIMIT_S = 10.0
NPAGES = 64
#: frames of the 64 pages: three runs with holes between them
PFNS = np.r_[np.arange(0, 20), np.arange(30, 50), np.arange(100, 124)]
KDUMP_CODECS = [None, "zlib", "lzo", "snappy", "zstd"]
FORMATS = ["raw", "elf", "lime", *[f"kdump-{c or 'none'}" for c in KDUMP_CODECS], "kdump-flat-zlib"]
INTERESTING = [0, 1, 2, 7, 8, 0x7F, 0x80, 0xFF, 0xFFF, 0x1000, 0x1001, 0xFFFF, 2**31 - 1, 2**31, 2**32 - 1]
INTERESTING += [2**32, 2**52, 2**62, 2**63 - 1, 2**63, 2**64 - 1, -1 % 2**64, -4096 % 2**64]


@dataclass
class Seed:
    """A valid small dump: its bytes, the reader's format name, and which bytes no check can protect."""

    data: bytes
    fmt: str
    unprotected: np.ndarray  # bool[len(data)]
    cut_unprotected: bool = False  # a raw image's length is not checkable
    zlib_bytes: np.ndarray | None = None  # bool[len(data)]: the zlib page blobs (kdump with zlib)
    zlib_blobs: list | None = None  # their (offset, size) in the kdump file

    def __post_init__(self):
        self.protected = np.flatnonzero(~self.unprotected)


def _pages() -> np.ndarray:
    return make_pages(NPAGES, seed=7)


def _mark(mask: np.ndarray, lo: int, hi: int) -> None:
    mask[max(lo, 0) : max(min(hi, len(mask)), 0)] = True


def _kdump_blobs(path: Path, fmt: str, flags) -> set[tuple[int, int]]:
    """(offset, size) in the kdump file of the page blobs whose codec flag is in ``flags``."""
    with open_dump(path, fmt) as r:
        src = r._source()
        h = r._header(src)
        descs = np.frombuffer(bytes(src.read(h["desc_at"], h["ndesc"] * PAGE_DESC.itemsize)), PAGE_DESC)
        return {(int(d["offset"]), int(d["size"])) for d in descs if int(d["flags"]) in flags}


def _kdump_unprotected(path: Path, fmt: str, data: bytes, bitmap2: bool = False, flags=None) -> np.ndarray:
    """Bytes of the raw, lzo, snappy and zstd page blobs (as file offsets) of a kdump file.

    With ``bitmap2``, also the 2nd bitmap (unprotected in dumps that exclude frames); with
    ``flags``, the blobs of those codec flags instead (``{FLAG_ZLIB}``: the zlib pages).
    """
    mask = np.zeros(len(data), bool)
    blobs = _kdump_blobs(path, fmt, {0, FLAG_LZO, FLAG_SNAPPY, FLAG_ZSTD} if flags is None else flags)
    with open_dump(path, fmt) as r:
        src = r._source()
        h = r._header(src)
        if bitmap2:
            blobs.add((h["bitmap2"], h["desc_at"] - h["bitmap2"]))
        if hasattr(src, "vstart"):  # flattened: map kdump ranges through the records
            for a, b in blobs:
                for vs, ve, fs in zip(src.vstart.tolist(), src.vend.tolist(), src.fstart.tolist(), strict=True):
                    lo, hi = max(a, vs), min(a + b, ve)
                    if lo < hi:
                        _mark(mask, fs + (lo - vs), fs + (hi - vs))
        else:
            for a, b in blobs:
                _mark(mask, a, a + b)
    return mask


def make_seed(fmt: str, d: Path) -> Seed:
    pages = _pages()
    path = d / f"seed.{fmt}"
    if fmt == "raw":
        path.write_bytes(pages.tobytes())
        return Seed(path.read_bytes(), "raw", np.ones(path.stat().st_size, bool), cut_unprotected=True)
    runs = [(0, 20), (20, 40), (40, 63)]
    # one extra segment covering two pages in part (0x100 bytes into frame 200 .. 0x300 into 201)
    odd = (200 * PS + 0x100, pages[63].tobytes()[: PS + 0x200 - 0x100])
    segs = [(int(PFNS[a]) * PS, pages[a:b]) for a, b in runs] + [odd]
    if fmt == "elf":
        write_elf(path, segs)
        data = path.read_bytes()
        mask = np.zeros(len(data), bool)
        phoff = 64
        off = phoff + 56 * len(segs)
        for i, s in enumerate(segs):
            n = memoryview(s[1]).nbytes
            _mark(mask, off, off + n)  # the segment's data
            _mark(mask, phoff + 56 * i + 24, phoff + 56 * i + 32)  # its p_paddr
            if i == len(segs) - 1:  # the last one's p_filesz, lowered by less than a page (elf.UNPROTECTED)
                _mark(mask, phoff + 56 * i + 32, phoff + 56 * i + 40)
            off += n
        return Seed(data, "elf", mask)
    if fmt == "lime":
        write_lime(path, segs)
        data = path.read_bytes()
        mask = np.zeros(len(data), bool)
        off = 0
        for s in segs:
            n = memoryview(s[1]).nbytes
            _mark(mask, off + LIME_HEADER.size, off + LIME_HEADER.size + n)  # the range's data
            _mark(mask, off + 8, off + 24)  # s_addr, e_addr: moved together, nothing can tell
            off += LIME_HEADER.size + n
        return Seed(data, "lime", mask)
    codec = fmt.rsplit("-", 1)[1]
    codec = None if codec == "none" else codec
    if fmt.startswith("kdump-flat"):
        write_kdump_flat(path, PFNS, pages, compression=codec)
        name = "kdump-flat"
    else:
        write_kdump(path, PFNS, pages, compression=codec)
        name = "kdump"
    data = path.read_bytes()
    seed = Seed(data, name, _kdump_unprotected(path, name, data))
    if codec == "zlib":
        seed.zlib_bytes = _kdump_unprotected(path, name, data, flags={FLAG_ZLIB})
        seed.zlib_blobs = sorted(_kdump_blobs(path, name, {FLAG_ZLIB}))
    return seed


def _adler_blind(seed: Seed, path: Path) -> bool:
    """Whether the mutant at ``path`` differs from ``seed`` only inside zlib page blobs and
    every zlib page still passes zlib's own check (Python's :func:`zlib.decompress` verifies
    the stream and its Adler-32): a change the format itself cannot see, so no reader can.
    Adler-32 misses, for instance, three bytes permuted so that both of its sums stay equal
    ((1, 0, 2) -> (0, 2, 1)), which a one-bit flip of a deflate code can produce."""
    import zlib

    data = path.read_bytes()
    if seed.zlib_bytes is None or len(data) != len(seed.data):
        return False
    changed = np.flatnonzero(np.frombuffer(data, np.uint8) != np.frombuffer(seed.data, np.uint8))
    if not len(changed) or not seed.zlib_bytes[changed].all():
        return False
    with open_dump(path, seed.fmt) as r:
        src = r._source()
        for off, size in seed.zlib_blobs:
            try:
                if len(zlib.decompress(bytes(src.read(off, size)))) != PS:
                    return False
            except zlib.error:
                return False
    return True


# ------------------------------------------------------------------ mutations
def _mutations(seed: Seed, case: int) -> list[tuple]:
    """The mutations of case number ``case``: (kind, position, argument) each, applied in order."""
    rng = np.random.default_rng([case, len(seed.data)])
    protected = seed.protected
    size = len(seed.data)
    muts = []
    for _ in range(int(rng.integers(1, 4))):
        r = rng.random()
        kind = "flip" if r < 0.37 else "set" if r < 0.57 else "int" if r < 0.94 else "cut"
        # aim most mutations at the structures a reader trusts, the rest anywhere
        if len(protected) and rng.random() < 0.7:
            pos = int(protected[rng.integers(0, len(protected))])
        else:
            pos = int(rng.integers(0, size))
        if kind == "cut":
            muts.append(("cut", pos, None))
        elif kind == "flip":
            muts.append(("flip", pos, int(rng.integers(0, 8))))
        elif kind == "set":
            muts.append(("set", pos, rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8).tobytes()))
        else:
            v = INTERESTING[int(rng.integers(0, len(INTERESTING)))]
            width = 8 if v >= 2**32 or rng.random() < 0.3 else 4
            order = "big" if seed.fmt == "kdump-flat" and rng.random() < 0.5 else "little"
            muts.append(("int", pos - pos % width, (v % 2 ** (8 * width)).to_bytes(width, order)))
    return muts


def _apply(seed: Seed, muts, protected_only: bool = False) -> tuple[bytes, bool]:
    """Apply ``muts`` to the seed; also say whether they touched unprotected bytes only.

    With ``protected_only``, bytes the mutations changed in unprotected ranges are put back.
    """
    buf = bytearray(seed.data)
    only_unprotected = True
    for kind, pos, arg in muts:
        if kind == "cut":
            del buf[pos:]
            only_unprotected &= seed.cut_unprotected
            continue
        if pos >= len(buf):
            continue
        if kind == "flip":
            buf[pos] ^= 1 << arg
            hi = pos + 1
        else:
            arg = arg[: len(buf) - pos]
            buf[pos : pos + len(arg)] = arg
            hi = pos + len(arg)
        only_unprotected &= bool(seed.unprotected[pos:hi].all())
        if protected_only:
            for i in range(pos, min(hi, len(seed.data))):
                if seed.unprotected[i]:
                    buf[i] = seed.data[i]
    return bytes(buf), only_unprotected


# ------------------------------------------------------------------ reading
KEY = PageKey.default()
STAT_FIELDS = ("pages_skipped", "pages_excluded", "pages_partial", "bytes_skipped", "incomplete")


def read_digest(path: Path, fmt: str, skip: bool):
    """(sorted gpfns, their page hashes, stats tuple) of a whole read; raises what the reader raises."""
    gp, hs = [], []
    with open_dump(path, fmt, chunk_pages=24, skip_bad_pages=skip) as r:
        r.threads = 1  # kdump: decode in this thread (the same decoders; no thread start per case)
        for c in r:
            assert c.pages.shape == (len(c), PS) and c.pages.dtype == np.uint8
            h, _ = hash_pages(np.ascontiguousarray(c.pages), KEY, threads=1)
            gp.append(c.gpfn.astype(np.uint64))
            hs.append(h)
        st = r.stats
        assert sum(len(g) for g in gp) == st.pages_read
        stats = tuple(getattr(st, f) for f in STAT_FIELDS)
    g = np.concatenate(gp) if gp else np.empty(0, np.uint64)
    h = np.concatenate(hs) if hs else np.empty(0, np.uint64)
    order = np.argsort(g, kind="stable")
    g, h = g[order], h[order]
    assert np.all(np.diff(g.astype(np.int64)) > 0) if len(g) > 1 else True, "a frame was yielded twice"
    return g, h, stats


def classify(path: Path, fmt: str, skip: bool, base) -> tuple[str, str]:
    try:
        g, h, stats = read_digest(path, fmt, skip)
    except InputError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg and str(path) in msg, f"not a one-line error naming the file: {msg!r}"
        return "error", msg
    bg, bh, bstats = base
    same_pages = len(g) == len(bg) and np.array_equal(g, bg) and np.array_equal(h, bh)
    if stats != bstats:
        return "reported", f"stats {stats} (was {bstats})"
    return ("identical", "") if same_pages else ("silent", f"{len(g)} frames, stats unchanged")


def run_fuzz(fmt: str, skip: bool, cases: int, d: Path, seed: Seed | None = None) -> collections.Counter:
    seed = seed or make_seed(fmt, d)
    path = d / f"mut.{fmt}"
    path.write_bytes(seed.data)
    base = read_digest(path, seed.fmt, skip)
    counts: collections.Counter = collections.Counter()
    failures = []
    for case in range(cases):
        muts = _mutations(seed, case)
        data, only_unprotected = _apply(seed, muts)
        path.write_bytes(data)
        t0 = time.perf_counter()
        try:
            kind, detail = classify(path, seed.fmt, skip, base)
        except Exception as exc:  # a traceback: the failure this test exists to find
            failures.append(f"case {case} {muts}: {type(exc).__name__}: {exc}")
            counts["traceback"] += 1
            continue
        dt = time.perf_counter() - t0
        if dt > CASE_LIMIT_S:
            failures.append(f"case {case} {muts}: took {dt:.1f} s")
        if kind == "silent" and not only_unprotected:
            # edits of both kinds: their protected bytes alone must not change pages silently
            protected_data = _apply(seed, muts, protected_only=True)[0]
            if protected_data != data:
                path.write_bytes(protected_data)
                only_unprotected = classify(path, seed.fmt, skip, base)[0] != "silent"
        if kind == "silent" and not only_unprotected and _adler_blind(seed, path):
            kind = "silent (zlib's Adler-32 cannot see it)"
        elif kind == "silent":
            kind = "silent (unprotected bytes)" if only_unprotected else "silent"
            if not only_unprotected:
                failures.append(f"case {case} {muts}: silent change outside the unprotected ranges: {detail}")
        counts[kind] += 1
    print(f"\n{fmt} skip={skip}: {dict(counts)}")
    assert not failures, f"{len(failures)} failures, first: " + " | ".join(failures[:5])
    return counts


@pytest.fixture
def scratch(tmp_path):
    """A scratch directory in memory when the machine has one (each case writes its mutant)."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        with tempfile.TemporaryDirectory(dir=shm, prefix="pagecore-fuzz-") as d:
            yield Path(d)
    else:
        yield tmp_path


@pytest.mark.parametrize("skip", [False, True], ids=["strict", "skip"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_fuzz(scratch, fmt, skip):
    counts = run_fuzz(fmt, skip, CASES, scratch)
    assert sum(counts.values()) == CASES
    assert counts["error"] + counts["reported"] > 0  # the mutations do reach the checks


# ------------------------------------------------------------------ slow: more cases, real seeds
@pytest.mark.slow
@pytest.mark.parametrize("skip", [False, True], ids=["strict", "skip"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_fuzz_long(scratch, fmt, skip):
    run_fuzz(fmt, skip, SLOW_CASES, scratch)


@pytest.mark.slow
@pytest.mark.skipif(not FIXTURE_ARCHIVE.exists(), reason=f"{FIXTURE_ARCHIVE} not present")
@pytest.mark.parametrize("skip", [False, True], ids=["strict", "skip"])
@pytest.mark.parametrize("name", ["guest.kdump-zlib.kdump", "guest.d31-lzo.kdump", "guest.kdump-zlib.flat"])
def test_fuzz_real_kdump(tmp_path, name, skip):
    """Seeds cropped from QEMU's and makedumpfile's own files (their headers, notes, bitmaps).

    These dumps leave frames out (the 1st bitmap has frames the 2nd lacks), so an edit of the
    2nd bitmap that keeps its count can move pages onto excluded frames: that region is
    declared unprotected here (see the kdump module docstring).
    """
    from pagecore.dumps.crop import crop_kdump

    d, manifest = unpack_fixture(tmp_path / "fx")
    lo = manifest["windows_pfn"][0][0]
    out = crop_kdump(d / name, tmp_path / "seed", [(lo, lo + NPAGES)], flattened=name.endswith(".flat"))
    fmt = "kdump-flat" if name.endswith(".flat") else "kdump"
    data = out.read_bytes()
    mask = _kdump_unprotected(out, fmt, data, bitmap2=True)
    run_fuzz(fmt, skip, SLOW_CASES // 4, tmp_path, Seed(data, fmt, mask))


def test_adler_blind_edits_are_told_apart(scratch):
    """The one kind of silent change allowed in a zlib page: one that zlib's own check accepts.

    Case 2924 of the slow run flips one bit of a deflate code; the page inflates with three bytes
    permuted ((1, 0, 2) -> (0, 2, 1)), which leaves both Adler-32 sums unchanged, so zlib itself
    cannot see it. A flip that zlib does see must not be excused.
    """
    import zlib

    seed = make_seed("kdump-zlib", scratch)
    path = scratch / "mut.kdump"
    data, only_unprotected = _apply(seed, _mutations(seed, 2924))
    assert not only_unprotected  # a zlib blob is protected bytes
    path.write_bytes(data)
    base_path = scratch / "base.kdump"
    base_path.write_bytes(seed.data)
    base = read_digest(base_path, seed.fmt, False)
    assert classify(path, seed.fmt, False, base)[0] == "silent"
    assert _adler_blind(seed, path)
    (off, size) = next((o, s) for o, s in seed.zlib_blobs if o <= _mutations(seed, 2924)[0][1] < o + s)
    a, b = zlib.decompress(seed.data[off : off + size]), zlib.decompress(data[off : off + size])
    assert a != b and zlib.adler32(a) == zlib.adler32(b)
    # the last byte of a blob is the Adler-32's: changing it is an error zlib sees
    off, size = seed.zlib_blobs[0]
    bad = bytearray(seed.data)
    bad[off + size - 1] ^= 1
    path.write_bytes(bytes(bad))
    assert classify(path, seed.fmt, False, base)[0] == "error"
    assert not _adler_blind(seed, path)
    # a change outside the zlib blobs is never excused
    other = bytearray(seed.data)
    i = int(np.flatnonzero(~seed.zlib_bytes)[-1])
    other[i] ^= 1
    path.write_bytes(bytes(other))
    assert not _adler_blind(seed, path)


def test_elf_segment_data_without_its_header_is_an_error(scratch):
    """Case 8636 of the slow run: e_phoff moved onto the 2nd program header drops the 1st
    segment's header while its data stays (20 of 65 frames vanished without an error before)."""
    seed = make_seed("elf", scratch)
    path = scratch / "mut.elf"
    path.write_bytes(seed.data)
    base = read_digest(path, seed.fmt, False)
    data = bytearray(seed.data)
    data[32:40] = (64 + 56).to_bytes(8, "little")  # e_phoff: the 2nd program header
    path.write_bytes(bytes(data))
    kind, msg = classify(path, seed.fmt, False, base)
    assert kind == "error" and "no header describes" in msg
