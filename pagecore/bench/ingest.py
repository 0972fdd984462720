"""Ingest benchmark: dump reader + page hash, beside the baselines measured in the same run.

``pagecore bench ingest`` writes one synthetic guest image (a mix of zero, text-like,
duplicated and random pages, like guest memory) as raw, ELF, LiME, kdump-zlib and
kdump-snappy (both flattened, as QEMU writes them: page data packed into records of up to
16 KiB, ``write_flattened(pack=True)``; and plain kdump-zlib), kdump-lzo and kdump-zstd (plain
kdump only: these pages go through the same Python codec calls whichever container holds them,
and the flattened container's own cost is measured by the zlib pair) into a scratch
directory, brings every file into the page cache the same way (written, flushed, evicted, then
read back in 1 MiB reads, as a dump read once from disk: see "Page cache" below), then reports
GB/s of guest page data, wall and CPU seconds (all threads of this process), for:

* ``read bandwidth``: ``numpy.sum`` over the pages in memory (one thread reading every byte);
* ``hash only``: the page hash on the in-memory pages, all threads, in one call; and
  ``hash only, chunked``: the same in calls of ``--chunk-pages`` pages, as ingest makes them;
* ``raw mmap, 1 byte a page``: the raw file mapped read-only (``MADV_SEQUENTIAL``) and one byte
  of every page touched: the kernel's share of reading a dump through a mapping (it depends on
  how large the page cache's folios are). ``pagecore hash`` no longer pays it for raw, ELF and
  LiME: their ``ingest+hash`` reads the file by ``pread`` into the hashing threads' buffers
  (:func:`~pagecore.pages.hashing.hash_file_start`); the mapping is the path of ``pagecore hash
  --compress`` (which reads the chunks' pages) and of the kdump readers' raw pages. A reference,
  not any reader's baseline;
* ``<format> ingest+hash``: ``open_dump`` + the page hash over every chunk as ``pagecore hash``
  does it (:func:`~pagecore.pages.ingest.hashed_chunks`, ``--chunk-pages`` defaults to the
  CLI's), Parquet writing excluded (see ``pagecore bench hash --whole-process`` for that);
* ``<kdump format> ingest only``: the same reader without the hash (``for chunk in reader``): its
  decoding, zero fills and raw-page copies alone, so what the hash adds is visible. Under the
  hash (``ingest+hash``) a kdump reader neither fills the shared zero page's rows nor copies its
  raw pages into the chunk: the hash takes a zero page's hash for the former and hashes the
  latter where the mapped file holds them, and the rows are filled only if the chunk's pages are
  read (``pagecore hash`` reads them only for ``--compress``), so ``ingest+hash`` can take less
  CPU than ``ingest only``;
* ``<codec> decode 1T / NT`` (``NT`` only for N > 1: at one thread the serial call is the
  baseline): the codec alone decompressing the same pages from memory, in a
  Python loop on one thread and over a thread pool of N (``zlib``, cramjam's ``snappy``); and
  the reader's own decoders alone, in 256-page batches that N tasks take in turn (as the reader
  runs its batches: no future per batch): ``zlib decode libz-kernel`` (the system libz
  driven by a nogil Numba kernel) and ``snappy decode kernel`` (the nogil snappy decoder);
  ``lzo decode kernel`` (liblzo2) and ``zstd decode kernel`` (python-zstandard's zstd), driven
  by nogil Numba kernels as the reader runs them; and the reader's Python per-page functions for
  lzo and zstd (``kdump.CODECS[flag]``, length checks included: lzokay, zstandard, what the reader
  falls back to where those libraries are missing and for pages the kernels leave to them) in a
  Python loop on one thread and over N threads in 256-page batches.

Baselines (goal: every reader >= 0.8 x its baseline, issue 18). A reader's baseline is what
its decoder alone achieves: for a compressed format, the N-thread speed of the decoder the
reader runs (``libz-kernel`` for zlib, ``kernel`` for snappy, lzo and zstd; ``CODECS[flag]`` for lzo
and zstd where their libraries are missing);
for the uncompressed formats (raw, ELF, LiME), whose "decoding" is getting the file's bytes, the
better of ``hash only`` (hashing pages that are already in memory: the ceiling for anything
that must hash every page) and ``read bandwidth`` -- so the cost of getting the page cache's
bytes into the process (``pread`` for ``pagecore hash``) counts against the reader, not against
the baseline. Ratios against
``hash only, chunked`` are printed too, and every ratio is also given in CPU terms (the
baseline's CPU seconds over the reader's: steadier than wall time on a shared machine, where a
2-thread measure may get one core or two). Each measure's wall and CPU seconds are the least of
its rounds, each taken on its own (not the CPU of the wall-best round). Beside these, the
``paired`` column gives the median over the rounds of the ratio within each round (a reader and
its baseline run seconds apart in a round): this host's speed changes over tens of seconds, and
the best of each measure taken apart can pair a fast period of one with a slow one of the
other, while a slow period that spans a round slows both sides of its ratio. The codec baselines
decode exactly the compressed pages the kdump files hold: a kdump file stores zero pages once
(shared) and incompressible pages raw, which its reader copies instead of decoding, so a
baseline that decoded every page of the image would do work the reader never does and flatter
the reader (kdump-lzo then read at 2 x its codec). GB/s are of guest page data (every page of
the image) for every line, so the ratios are ratios of times.

Page cache: how a file got into the page cache decides the size of its folios (on Linux 6.x
with large folios: a file read from disk gets mostly 2 MiB folios, one written in small writes
4-32 KiB ones), and mapping a cached page costs 30-60 ns with 2 MiB folios and 150-350 ns with
small ones -- against about 600 ns to hash it. Freshly written files would make the ratios
depend on each writer's write sizes (a 2x swing between raw and ELF in earlier runs), so every
file is read back from disk first; the resident share is printed (it must be 100 %).

A benchmark, not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import itertools
import mmap
import os
import shutil
import sys
import tempfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from pagecore import PAGE_SIZE
from pagecore._argtypes import int_at_least, nonneg_int, positive_int
from pagecore._defaults import DEFAULT_CHUNK_PAGES, MAX_CHUNK_PAGES
from pagecore._jit import resolve_threads
from pagecore.bench import paired_ratio, timed
from pagecore.bench.wholeproc import resident_fraction


def guest_like_pages(npages: int, seed: int = 0) -> np.ndarray:
    """``uint8[npages, 4096]``: 30 % zero, 30 % text-like, 20 % duplicates, 20 % random pages."""
    rng = np.random.default_rng(seed)
    pages = np.zeros((npages, PAGE_SIZE), np.uint8)
    kind = rng.random(npages)
    words = rng.integers(97, 123, size=(64, 8), dtype=np.uint8)  # a small "vocabulary"
    text = kind >= 0.3
    for i in np.flatnonzero(text & (kind < 0.6)):
        pick = rng.integers(0, 64, PAGE_SIZE // 8)
        pages[i] = words[pick].reshape(-1)
    rnd = np.flatnonzero(kind >= 0.8)
    pages[rnd] = rng.integers(0, 256, size=(len(rnd), PAGE_SIZE), dtype=np.uint8)
    dup = np.flatnonzero((kind >= 0.6) & (kind < 0.8))
    src = np.flatnonzero(kind >= 0.3)
    if len(src):
        pages[dup] = pages[rng.choice(src, len(dup))]
    return pages


def _write_all(pages: np.ndarray, d: Path) -> dict[str, Path]:
    from pagecore.dumps.elf import write_elf
    from pagecore.dumps.flattened import write_kdump_flat
    from pagecore.dumps.kdump import write_kdump
    from pagecore.dumps.lime import write_lime

    pfns = np.arange(len(pages))
    raw = d / "guest.raw"
    pages.tofile(raw)
    return {
        "raw": raw,
        "elf": write_elf(d / "guest.elf", [(0, pages)]),
        "lime": write_lime(d / "guest.lime", [(0, pages)]),
        "kdump-zlib (flat)": write_kdump_flat(
            d / "guest.zlib.flat", pfns, pages, compression="zlib", record_bytes=16384, pack=True
        ),
        "kdump-zlib (plain)": write_kdump(d / "guest.zlib.kdump", pfns, pages, compression="zlib"),
        "kdump-snappy (flat)": write_kdump_flat(
            d / "guest.snappy.flat", pfns, pages, compression="snappy", record_bytes=16384, pack=True
        ),
        "kdump-lzo (plain)": write_kdump(d / "guest.lzo.kdump", pfns, pages, compression="lzo"),
        "kdump-zstd (plain)": write_kdump(d / "guest.zstd.kdump", pfns, pages, compression="zstd"),
    }


def _as_read_from_disk(path: Path) -> float:
    """Flush ``path``, drop it from the page cache and read it back in 1 MiB reads (as ``cat``
    would read a dump from disk); return the share of its pages then in the page cache."""
    with open(path, "rb", buffering=0) as fh:
        os.fsync(fh.fileno())
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        buf = bytearray(1 << 20)
        while fh.readinto(buf):
            pass
    return resident_fraction(path)


def _map_only(path: Path) -> None:
    """Map ``path`` read-only (``MADV_SEQUENTIAL``, as :class:`~pagecore.dumps.base.MmapReader` maps
    it for ``pagecore hash --compress``) and touch every page; ``pagecore hash`` without
    ``--compress`` reads raw, ELF and LiME files by ``pread`` instead."""
    with open(path, "rb") as fh:
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        if hasattr(mm, "madvise") and hasattr(mmap, "MADV_SEQUENTIAL"):
            mm.madvise(mmap.MADV_SEQUENTIAL)
        view = np.frombuffer(mm, np.uint8)
        int(view[::PAGE_SIZE].sum())
        del view
        mm.close()


def _ingest(path: Path, threads: int, chunk_pages: int) -> int:
    """Read and hash every page as ``pagecore hash`` does (:func:`~pagecore.pages.ingest.hashed_chunks`:
    the next chunk is read while this one is hashed), without writing the table."""
    from pagecore.dumps import open_dump
    from pagecore.pages.ingest import hashed_chunks

    n = 0
    with open_dump(path, chunk_pages=chunk_pages, threads=threads) as r:  # as hash_dump opens it
        for c, _, _ in hashed_chunks(r, threads=threads, pages_used=False):
            n += len(c)
    return n


def _read(path: Path, threads: int, chunk_pages: int) -> int:
    """Read every page as ``pagecore hash`` does, without hashing: the reader alone."""
    from pagecore.dumps import open_dump

    n = 0
    with open_dump(path, chunk_pages=chunk_pages, threads=threads) as r:  # as hash_dump opens it
        for c in r:
            n += len(c)
    return n


def _codec_blobs(pages: np.ndarray, codec: str) -> list[bytes]:
    """The compressed pages a kdump file of ``pages`` holds: what its reader must decode.

    As the writer stores them (:func:`~pagecore.dumps.kdump.stored_page`, like makedumpfile and
    QEMU): all-zero pages point at one shared raw zero page and a page that does not shrink is
    stored raw, so neither is decoded by the reader and neither is in the baseline.
    """
    from pagecore.dumps.kdump import COMPRESSION_FLAGS, stored_page

    flag = {v: k for k, v in COMPRESSION_FLAGS.items()}[codec]
    stored = (stored_page(flag, p.tobytes()) for p in pages if p.any())
    return [c for c, f in stored if f]


def _decode_fn(codec: str):
    if codec == "zlib":
        return lambda b: zlib.decompress(b, bufsize=PAGE_SIZE)
    if codec == "snappy":
        import cramjam

        return cramjam.snappy.decompress_raw
    # lzo, zstd: the reader's own per-page call (kdump._decode_py calls CODECS[flag](data, page size))
    from pagecore.dumps.kdump import CODECS, COMPRESSION_FLAGS

    decode = CODECS[{v: k for k, v in COMPRESSION_FLAGS.items()}[codec]]
    return lambda b: decode(b, PAGE_SIZE)


def _codec_measures(blobs: list[bytes], codec: str, threads: int, pool) -> dict:
    """``{name: fn}``: the codec's Python decoder on one thread and on ``pool`` (N threads)."""
    f = _decode_fn(codec)

    def serial(lo=0, hi=None):
        for b in blobs[lo:hi]:
            f(b)

    step = 256

    def parallel():
        list(pool.map(lambda lo: serial(lo, lo + step), range(0, len(blobs), step)))

    # at 1 thread the pool variant's name was the serial one's and replaced it (audit C): a baseline
    # with the pool's overhead, which flattered the reader
    return {f"{codec} decode 1T": serial, **({f"{codec} decode {threads}T": parallel} if threads > 1 else {})}


def _huge_array(n: int, dtype) -> np.ndarray:
    """``dtype[n]`` in anonymous memory advised into 2 MiB pages (``MADV_HUGEPAGE``) where possible."""
    mm = mmap.mmap(-1, max(n * np.dtype(dtype).itemsize, 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        try:
            mm.madvise(mmap.MADV_HUGEPAGE)
        except OSError:  # pragma: no cover - a kernel without transparent huge pages
            pass
    return np.frombuffer(mm, dtype)[:n]


def _kernel_measures(blobs: list[bytes], decode, name: str, threads: int, pool) -> dict:
    """``{name: fn}``: a reader's own batch decoder (``decode(buf, offs, sizes, idx, out, status)``,
    a nogil kernel of :mod:`pagecore.dumps._pagecodec`) on 1 and N threads, in 256-page batches."""
    sizes = np.array([len(b) for b in blobs], np.int64)
    offs = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    # input and output in 2 MiB pages where the kernel gives them, as the reader decodes into
    # (kdump._ChunkBuffers) and as a dump read from disk lies in the page cache: in 4 KiB pages the
    # decoder alone paid TLB misses the reader does not, a weaker baseline
    buf = _huge_array(int(sizes.sum()), np.uint8)
    buf[:] = np.frombuffer(b"".join(blobs), np.uint8)
    out = _huge_array(len(blobs) * PAGE_SIZE, np.uint8).reshape(len(blobs), PAGE_SIZE)
    status = np.zeros(len(blobs), np.int32)
    idx = np.arange(len(blobs))
    decode(buf, offs, sizes, idx, out, status)  # compile, and check
    if status.any():
        raise RuntimeError(f"{name} failed on the benchmark's own pages")
    # the decoder alone in 256-page batches, as the reader decoded before it hashed each range
    # while in cache (kdump.BATCH_PAGES = 128 since): smaller batches only add task overhead to
    # the decoder alone, and a slower baseline would flatter the reader
    # N tasks that each take the next batch, as the reader runs its batches (kdump._start): one
    # future per batch cost the baseline 3-4 % of its CPU that the reader does not pay
    step = 256
    nbatch = -(-len(idx) // step)

    def pull(take) -> None:
        while (b := take()) < nbatch:
            decode(buf, offs, sizes, idx[b * step : (b + 1) * step], out, status)

    def parallel():
        take = itertools.count().__next__  # atomic under the GIL: each batch decoded once
        for f in [pool.submit(pull, take) for _ in range(min(threads, nbatch))]:
            f.result()

    serial = {f"{name} 1T": lambda: decode(buf, offs, sizes, idx, out, status)}
    return {**serial, f"{name} {threads}T": parallel} if threads > 1 else serial  # one name per measure


def check_ingest(mib: int, workdir=None, available: int | None = None, free: int | None = None) -> str:
    """Refuse in one line, before anything is made, a scratch directory (``--dir``) that is not
    one, dump files that do not fit in it (about 6 x the image: raw, ELF and LiME whole, five
    kdump files) and a run that does not fit in memory (the process peaks at about 10 x the image
    with its codec baselines, measured at 64 MiB, and the files must stay in the page cache).
    Returns the directory."""
    from pagecore.bench import check_dir, check_disk, check_memory

    d = check_dir("--dir", workdir)
    size = mib * (1 << 20)
    what = f"bench ingest --mib {mib}"
    check_disk(d, 6 * size, what, "give a smaller --mib or another --dir", free)
    check_memory(16 * size + (256 << 20), what, "give a smaller --mib", available)
    return d


def bench_ingest(
    mib: int = 256,
    repeat: int = 3,
    threads: int | None = None,
    chunk_pages: int = DEFAULT_CHUNK_PAGES,
    workdir=None,
    reread: bool = True,
) -> dict:
    """Run the ingest benchmark; return ``{measure: GB/s}`` (of the least wall time of the rounds)
    plus ``_cpu`` (``{measure: (least CPU s, least wall s)}``, each the least of the rounds on its
    own), ``_threads``, ``_file_mb``, ``_resident`` and ``_load`` (load averages before and after).
    See the module docstring."""
    from pagecore.pages.hashing import hash_pages

    # as pagecore hash takes --threads: at most the cores ("--threads 1000" printed "1000 threads")
    threads = resolve_threads(threads)
    npages = mib * (1 << 20) // PAGE_SIZE
    pages = guest_like_pages(npages)
    nbytes = pages.nbytes
    load = [os.getloadavg()] if hasattr(os, "getloadavg") else []
    d = Path(tempfile.mkdtemp(prefix="pagecore-bench-", dir=workdir))
    try:
        files = _write_all(pages, d)
        if reread:
            resident = {k: _as_read_from_disk(v) for k, v in files.items()}
        else:  # as the writers left them (the folio sizes their write sizes gave)
            resident = {k: resident_fraction(v) for k, v in files.items()}
        hash_pages(pages[:4], threads=threads)  # compile outside the timing
        hash_pages(pages[:4], threads=1)
        res: dict = {}
        out = (np.empty(npages, np.uint64), np.empty(npages, np.bool_))
        words = pages.view(np.uint64)
        hb, zb = out[0][:chunk_pages], out[1][:chunk_pages]

        def hash_chunked():
            for lo in range(0, npages, chunk_pages):
                k = min(chunk_pages, npages - lo)
                hash_pages(pages[lo : lo + k], threads=threads, out=(hb[:k], zb[:k]))

        measures = {
            "read bandwidth": lambda: words.sum(),
            "hash only": lambda: hash_pages(pages, threads=threads, out=out),
            "hash only, chunked": hash_chunked,
            "raw mmap, 1 byte a page": lambda: _map_only(files["raw"]),
        }
        for name, path in files.items():
            _ingest(path, threads, chunk_pages)  # first run: Numba kernels load outside the timing
            measures[f"{name} ingest+hash"] = lambda p=path: _ingest(p, threads, chunk_pages)
            if name.startswith("kdump-"):
                measures[f"{name} ingest only"] = lambda p=path: _read(p, threads, chunk_pages)
        from pagecore.dumps import _pagecodec

        pool = ThreadPoolExecutor(threads)
        for codec in ("zlib", "snappy", "lzo", "zstd"):
            blobs = _codec_blobs(pages, codec)
            measures.update(_codec_measures(blobs, codec, threads, pool))
            if codec == "zlib" and _pagecodec.HAVE_ZLIB:
                measures.update(
                    _kernel_measures(blobs, _pagecodec.inflate_pages, "zlib decode libz-kernel", threads, pool)
                )
            if codec == "snappy":
                measures.update(
                    _kernel_measures(blobs, _pagecodec.unsnappy_pages, "snappy decode kernel", threads, pool)
                )
            if codec == "lzo" and _pagecodec.HAVE_LZO:
                measures.update(_kernel_measures(blobs, _pagecodec.unlzo_pages, "lzo decode kernel", threads, pool))
            if codec == "zstd" and _pagecodec.HAVE_ZSTD:
                measures.update(_kernel_measures(blobs, _pagecodec.unzstd_pages, "zstd decode kernel", threads, pool))

        # each kdump reader next to its own decoders, so a reader and its baseline run seconds apart
        # (load from other processes changes over tens of seconds), the other measures first
        def codec_of(name: str) -> int:
            return next(
                (
                    i
                    for i, c in enumerate(("zlib", "snappy", "lzo", "zstd"), 1)
                    if f"kdump-{c}" in name or name.startswith(f"{c} decode")
                ),
                0,
            )

        measures = dict(sorted(measures.items(), key=lambda kv: codec_of(kv[0])))  # (a stable sort)
        # interleave the measures, best of `repeat` rounds: load from other processes then
        # hits every measure alike instead of whichever happened to run during it (a reader
        # and its baseline are measured minutes apart otherwise)
        # wall and CPU each the least of the rounds, taken separately: the CPU of the wall-best round
        # swung by 30 % between runs on a shared machine (a 2-thread baseline given one core for a
        # round is slow in wall time but not in CPU), for readers and baselines alike
        best = dict.fromkeys(measures, float("inf"))
        best_cpu = dict.fromkeys(measures, float("inf"))
        rounds: dict[str, list[tuple[float, float]]] = {name: [] for name in measures}
        try:
            for _ in range(repeat):
                for name, fn in measures.items():
                    t, c, _ = timed(fn)
                    best[name] = min(best[name], t)
                    best_cpu[name] = min(best_cpu[name], c)
                    rounds[name].append((t, c))
        finally:
            pool.shutdown()
        res.update({name: nbytes / t / 1e9 for name, t in best.items()})
        cpu = {name: (best_cpu[name], t) for name, t in best.items()}
        if load:
            load.append(os.getloadavg())
        res["_cpu"] = cpu
        res["_rounds"] = rounds
        res["_threads"] = threads
        res["_file_mb"] = {k: v.stat().st_size / 1e6 for k, v in files.items()}
        res["_resident"] = resident
        res["_load"] = load
        return res
    finally:
        shutil.rmtree(d, ignore_errors=True)


def baseline(res: dict, measure: str, threads: int) -> tuple[str, float] | None:
    """``(name, GB/s)`` of the baseline an ``… ingest+hash`` or ``… ingest only`` measure is judged
    against (module docstring): the codec's own N-thread decoder for compressed formats, else the
    better of ``hash only`` and ``read bandwidth``."""
    if not measure.endswith(("ingest+hash", "ingest only")):
        return None
    codec = next((c for c in ("zlib", "snappy", "lzo", "zstd") if f"kdump-{c}" in measure), None)
    if codec is None:
        name = max(("hash only", "read bandwidth"), key=lambda k: res[k])
        return name, res[name]
    ref = f"{codec} decode {threads}T"
    for kernel in (f"{codec} decode libz-kernel {threads}T", f"{codec} decode kernel {threads}T"):
        if kernel in res:
            ref = kernel
    return ref, res[ref]


def paired(rounds: dict, measure: str, base: str) -> tuple[float, float]:
    """:func:`pagecore.bench.paired_ratio` of ``measure`` against ``base`` (names in ``rounds``):
    a reader and its baseline run seconds apart in each round."""
    return paired_ratio(rounds[base], rounds[measure])


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``pagecore bench ingest [--mib N] [--repeat R] [--threads T]``."""
    p = argparse.ArgumentParser(prog="pagecore bench ingest", description=__doc__.split("\n\n")[0])
    p.add_argument("--mib", type=positive_int, default=256, help="guest size in MiB (default 256)")
    p.add_argument("--repeat", type=positive_int, default=3, help="rounds; best-of and paired ratios (default 3)")
    p.add_argument("--threads", type=nonneg_int, default=0, help="threads (0 = all; default 0)")
    p.add_argument(
        "--chunk-pages",
        type=int_at_least(1, MAX_CHUNK_PAGES),
        default=DEFAULT_CHUNK_PAGES,
        help=f"pages per chunk (default {DEFAULT_CHUNK_PAGES}, as pagecore hash)",
    )
    p.add_argument("--dir", help="scratch directory for the dump files (default: the system temp dir)")
    p.add_argument(
        "--as-written",
        action="store_true",
        help="leave the files in the page cache as they were written instead of reading them back from disk "
        "(small folios: shows what mapping a freshly written dump costs)",
    )
    args = p.parse_args(argv)
    check_ingest(args.mib, args.dir)
    res = bench_ingest(args.mib, args.repeat, args.threads or None, args.chunk_pages, args.dir, not args.as_written)
    threads = res.pop("_threads")
    sizes = res.pop("_file_mb")
    cpu = res.pop("_cpu")
    rounds = res.pop("_rounds")
    resident = res.pop("_resident")
    load = res.pop("_load")
    print(
        f"ingest + pcx64-v1 hash of a {args.mib} MiB guest-like image, {threads} threads, "
        f"{args.chunk_pages}-page chunks, best of {args.repeat}"
    )
    print(
        "ratio, CPU: the baseline's best time over the measure's best (each the least of the rounds); "
        "paired: the median over the rounds of the same ratio within each round (wall / CPU)"
    )
    print(f"{'measure':<34}{'GB/s':>8}{'wall s':>8}{'CPU s':>8}{'ratio':>8}{'CPU':>6}{'paired':>12}  vs")
    for k, v in res.items():
        ratio, cratio, pair, vs, wall, c = "", "", "", "", "", ""
        if k in cpu:
            c, t = cpu[k]
            wall, c = f"{t:8.3f}", f"{c:8.3f}"
        base = baseline(res, k, threads)
        if base is not None:
            ratio, vs = f"{v / base[1]:8.2f}", f"  {base[0]}"
            cratio = f"{cpu[base[0]][0] / cpu[k][0]:6.2f}"
            pw, pc = paired(rounds, k, base[0])
            pair = f"{pw:7.2f} /{pc:4.2f}"
            if base[0] in ("hash only", "read bandwidth"):
                vs += f" ({v / res['hash only, chunked']:.2f} x hash only, chunked)"
        print(f"{k:<34}{v:>8.2f}{wall:>8}{c:>8}{ratio:>8}{cratio:>6}{pair:>12}{vs}")
    print("file sizes (MB): " + ", ".join(f"{k} {v:.0f}" for k, v in sizes.items()))
    low = {k: f for k, f in resident.items() if f < 0.999}
    state = (
        ", ".join(f"{k} {100 * f:.1f} %" for k, f in low.items()) + " (NOT all: ratios not valid)" if low else "100 %"
    )
    how = "as written" if args.as_written else "every file written, flushed, evicted and read back"
    print(f"page cache: {how}; resident {state}")
    if load:
        print("load average (1, 5, 15 min): " + " -> ".join(" ".join(f"{x:.2f}" for x in la) for la in load))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
