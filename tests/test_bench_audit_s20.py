"""Careless runs of ``pagecore bench`` found by the session-20 audit of issue 18 (the benchmarks
other than ``count``'s counting, and ``share``'s verification report): each test failed on the
code before its fix (a traceback, a wrong baseline without a word, a child left running, a
ratio printed as valid on a file out of the page cache, a disk or memory filled before failing).
"""

from __future__ import annotations

import numpy as np
import pytest

from pagecore import PAGE_SIZE


def _guest(n: int = 96, seed: int = 3) -> np.ndarray:
    """``uint8[n, 4096]``: zero pages, copies of a few contents and compressible unique pages."""
    rng = np.random.default_rng(seed)
    pages = rng.integers(0, 24, size=(n, PAGE_SIZE), dtype=np.uint8)
    pages[::5] = 0
    pages[1::7] = pages[1]
    return pages


# ----------------------------------------------------------------------------- bench compress
def test_compress_baseline_reads_the_pages_of_a_dump_in_any_format(tmp_path):
    """``bench compress --real g.elf`` mapped the ELF file as a raw image: a NumPy traceback
    (cannot reshape) after the whole measurement, and the wrong pages for an ELF file whose size
    is whole pages. The baseline's pages are now read through the dump's reader."""
    from pagecore.bench.compress import _args, distinct_nonzero_pages
    from pagecore.dumps.elf import write_elf
    from pagecore.experiments.compression import collect

    pages = _guest()
    raw = tmp_path / "g.raw"
    pages.tofile(raw)
    elf = write_elf(tmp_path / "g.elf", [(0, pages)])
    got = {}
    for path in (raw, elf):
        ps, _ = collect(_args([path], "lz4", 1))
        got[path.suffix] = distinct_nonzero_pages([path], ps.frame)
    want = np.unique(pages[pages.any(axis=1)], axis=0)
    for k, v in got.items():
        assert np.array_equal(np.unique(v, axis=0), want), k
        assert len(v) == len(want), k


def test_bench_compress_on_an_elf_dump_and_refusing_a_page_table(tmp_path, capsys):
    from pagecore.bench.compress import main
    from pagecore.dumps.elf import write_elf
    from pagecore.pages import hash_dump

    elf = write_elf(tmp_path / "g.elf", [(1 << 20, _guest())])
    assert main(["--real", str(elf), "--vms", "0", "--no-cli", "--repeat", "1"]) == 0
    assert "g.elf" in capsys.readouterr().out
    table = tmp_path / "g.parquet"
    hash_dump(elf, table, "g", show_progress=False)
    with pytest.raises(SystemExit) as e:
        main(["--real", str(table), "--vms", "0", "--no-cli", "--repeat", "1"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "argument --real: " in err and "page table" in err, err
