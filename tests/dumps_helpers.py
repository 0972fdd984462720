"""Shared helpers for the dump-reader tests: page generators, writers per format, fixtures."""

from __future__ import annotations

import itertools
import json
import tarfile
from pathlib import Path

import numpy as np

from pagecore.dumps import open_dump
from pagecore.dumps.elf import write_elf
from pagecore.dumps.flattened import write_kdump_flat
from pagecore.dumps.kdump import write_kdump
from pagecore.dumps.lime import write_lime

PS = 4096
REPO = Path(__file__).resolve().parents[1]
FIXTURE_ARCHIVE = REPO / "data" / "dumps" / "qemu-guest.tar.xz"


def make_pages(n: int, seed: int = 0) -> np.ndarray:
    """``uint8[n, 4096]`` pages: a mix of zero, duplicated, compressible and random pages."""
    rng = np.random.default_rng(seed)
    pages = np.zeros((n, PS), np.uint8)
    for i in range(n):
        kind = i % 5
        if kind == 0:
            continue  # zero page
        if kind == 1:
            pages[i] = (np.arange(PS) * (i + 1)) % 251  # compressible
        elif kind == 2:
            pages[i] = pages[i - 1]  # duplicate
        elif kind == 3:
            pages[i] = rng.integers(0, 256, PS, dtype=np.uint8)  # incompressible
        else:
            pages[i, : PS // 2] = rng.integers(0, 4, PS // 2, dtype=np.uint8)
    return pages


def read_all(path, fmt: str = "auto", **kw) -> tuple[dict[int, bytes], object]:
    """Every page of a dump as {gpfn: bytes}, and the reader's stats."""
    out: dict[int, bytes] = {}
    with open_dump(path, fmt, **kw) as r:
        for c in r:
            assert c.pages.dtype == np.uint8 and c.pages.shape == (len(c), PS)
            assert not c.pages.flags.writeable
            for g, p in zip(c.gpfn.tolist(), c.pages, strict=True):
                assert g not in out, f"gpfn {g:#x} yielded twice"
                out[g] = p.tobytes()
        return out, r.stats


def expected(pfns, pages) -> dict[int, bytes]:
    return {int(g): pages[i].tobytes() for i, g in enumerate(pfns)}


def write_dump(fmt: str, path: Path, pfns, pages, **kw) -> Path:
    """Write ``pages`` at frames ``pfns`` in format ``fmt`` (raw needs pfns 0..n-1)."""
    pfns = np.asarray(pfns, np.int64)
    if fmt == "raw":
        assert np.array_equal(pfns, np.arange(len(pfns)))
        path.write_bytes(pages.tobytes())
        return path
    runs = _runs(pfns)
    if fmt == "elf":
        return write_elf(path, [(int(pfns[a]) * PS, pages[a:b]) for a, b in runs], **kw)
    if fmt == "lime":
        return write_lime(path, [(int(pfns[a]) * PS, pages[a:b]) for a, b in runs])
    if fmt == "kdump":
        return write_kdump(path, pfns, pages, **kw)
    if fmt == "kdump-flat":
        return write_kdump_flat(path, pfns, pages, **kw)
    raise ValueError(fmt)


def _runs(pfns: np.ndarray) -> list[tuple[int, int]]:
    """Index ranges of consecutive frame numbers (pfns must be sorted)."""
    if len(pfns) == 0:
        return []
    cuts = np.flatnonzero(np.diff(pfns) != 1) + 1
    bounds = [0, *cuts.tolist(), len(pfns)]
    return list(itertools.pairwise(bounds))


def unpack_fixture(dest: Path) -> tuple[Path, dict]:
    """Unpack the committed real-dump archive into ``dest``; return (dir, manifest)."""
    with tarfile.open(FIXTURE_ARCHIVE, "r:xz") as tar:
        tar.extractall(dest, filter="data")
    return dest, json.loads((dest / "manifest.json").read_text())
