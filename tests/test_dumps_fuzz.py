"""Fuzz every reader with mutated headers: only clear InputErrors, no crash, no hang.

Each example takes a small valid dump of one format, overwrites, flips or truncates bytes in
its header region (where the structures a reader trusts live) and reads the whole result.
Anything but success or :class:`InputError` fails the test, and so does an example slower
than the hypothesis deadline (a hang). About 2,500 mutated files in all, ~30 s.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from dumps_helpers import PS, write_dump
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pagecore.dumps import open_dump
from pagecore.dumps.kdump import PAGE_DESC, KdumpReader
from pagecore.errors import InputError

FORMATS = ["elf", "lime", "kdump", "kdump-flat", "raw"]
EXAMPLES = 500


def _pages(n=6):
    pages = np.zeros((n, PS), np.uint8)
    for i in range(1, n):
        pages[i, :: i + 1] = i
    return pages


def _seed_file(fmt: str, d: Path) -> bytes:
    pages = _pages()
    if fmt == "raw":
        pfns = np.arange(len(pages))
    else:
        pfns = np.array([0, 1, 2, 7, 8, 40])
    kw = {"compression": "zlib"} if fmt.startswith("kdump") else {}
    return write_dump(fmt, d / "seed", pfns, pages, **kw).read_bytes()


def _regions(fmt: str, data: bytes, d: Path) -> list[tuple[int, int]]:
    """Byte ranges holding the structures each reader parses (mutations aim there)."""
    if fmt == "elf":
        return [(0, 64 + 6 * 56)]
    if fmt == "lime":
        return [(0, 32), (32 + 3 * PS, 32 + 3 * PS + 32)]
    if fmt == "kdump":
        p = d / "k"
        p.write_bytes(data)
        r = KdumpReader(p)
        h = r._parse(r._source())
        r.close()
        return [
            (0, 464),
            (PS, PS + 104),
            (h["bitmap1"], h["bitmap1"] + 16),
            (h["bitmap2"], h["bitmap2"] + 16),
            (h["desc_at"], h["desc_at"] + 6 * PAGE_DESC.itemsize),
        ]
    if fmt == "kdump-flat":
        return [(0, 64), (PS, min(len(data), PS + 2048))]
    return [(0, 64)]


SEEDS: dict[str, tuple[bytes, list]] = {}


def _seed(fmt):
    if fmt not in SEEDS:
        with tempfile.TemporaryDirectory() as td:
            data = _seed_file(fmt, Path(td))
            SEEDS[fmt] = (data, _regions(fmt, data, Path(td)))
    return SEEDS[fmt]


mutation = st.one_of(
    st.tuples(st.just("set"), st.integers(0, 1 << 20), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("flip"), st.integers(0, 1 << 20), st.integers(0, 7)),
    st.tuples(
        st.just("int"),
        st.integers(0, 1 << 20),
        st.sampled_from([0, 1, 2, 0x7F, 0xFF, 0xFFFF, 2**31 - 1, 2**32 - 1, 2**63 - 1, 2**64 - 1, -1, 4096]),
    ),
    st.tuples(st.just("cut"), st.integers(0, 1 << 20), st.just(0)),
)


def _apply(data: bytes, regions, muts) -> bytes:
    buf = bytearray(data)
    for kind, where, arg in muts:
        lo, hi = regions[where % len(regions)]
        hi = min(hi, len(buf))
        if hi <= lo:
            continue
        pos = lo + (where // len(regions)) % (hi - lo)
        if kind == "set":
            buf[pos : pos + len(arg)] = arg
        elif kind == "flip":
            buf[pos] ^= 1 << arg
        elif kind == "int":
            size = 8 if abs(arg) > 2**32 - 1 or arg < 0 else 4
            raw = (arg % (1 << (8 * size))).to_bytes(size, "little")
            buf[pos : pos + size] = raw
        elif kind == "cut":
            del buf[pos:]
    return bytes(buf)


def _read(path: Path, fmt: str, skip: bool) -> None:
    with open_dump(path, fmt, chunk_pages=3, skip_bad_pages=skip) as r:
        n = 0
        for c in r:
            assert c.pages.shape == (len(c), PS)
            n += len(c)
        assert n == r.stats.pages_read


@pytest.mark.parametrize("fmt", FORMATS)
@settings(
    max_examples=EXAMPLES,
    deadline=5000,  # an example slower than 5 s counts as a hang
    derandomize=True,  # same examples every run: CI is reproducible
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
@given(muts=st.lists(mutation, min_size=1, max_size=4), skip=st.booleans(), auto=st.booleans())
def test_mutated_headers_give_clear_errors(tmp_path, fmt, muts, skip, auto):
    data, regions = _seed(fmt)
    path = tmp_path / f"m.{fmt}"
    path.write_bytes(_apply(data, regions, muts))
    try:
        _read(path, "auto" if auto else fmt, skip)
    except InputError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg and str(path) in msg
