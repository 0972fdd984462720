"""Issue 18 audit C: the benchmarks measure the paths the commands run, and refuse up front."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from pagecore.bench.ingest import guest_like_pages
from pagecore.dumps import kdump
from pagecore.dumps.kdump import write_kdump


def _decoding_threads(monkeypatch, run) -> set[str]:
    """Names of the threads that ran the kdump reader's decoding jobs during ``run()``, on a
    machine of (at least) 2 decoding threads."""
    names: set[str] = set()
    real = kdump._run_jobs

    def spy(*a, **kw):
        names.add(threading.current_thread().name)
        return real(*a, **kw)

    monkeypatch.setattr(kdump, "_run_jobs", spy)
    monkeypatch.setattr(kdump, "default_threads", lambda: 2)
    monkeypatch.setattr("pagecore._jit.max_threads", lambda: 2)
    run()
    return names


@pytest.mark.parametrize("threads", [1, None])
def test_hash_dump_decodes_kdump_on_the_threads_it_is_given(tmp_path, monkeypatch, threads):
    """``pagecore hash --threads 1`` decoded a kdump file on every CPU (hash_dump never told the
    reader); ``pagecore bench ingest --threads 1`` did tell its reader, so it timed another path."""
    from pagecore.bench.ingest import _ingest
    from pagecore.pages.ingest import hash_dump

    pages = guest_like_pages(2048, seed=2)
    path = write_kdump(tmp_path / "g.zlib", np.arange(len(pages), dtype=np.uint64), pages, compression="zlib")
    main = threading.current_thread().name
    kw = dict(threads=threads, chunk_pages=256, show_progress=False)
    cmd = _decoding_threads(monkeypatch, lambda: hash_dump(path, tmp_path / "t.parquet", "g", **kw))
    bench = _decoding_threads(monkeypatch, lambda: _ingest(path, threads, 256))
    if threads == 1:
        assert cmd == bench == {main}  # decoded inline, in the calling thread
    else:
        assert cmd and bench and all(n.startswith("kdump") for n in cmd | bench)  # the pool of 2


def _cli(*args, **kw):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "pagecore", *args], capture_output=True, text=True, timeout=300, **kw)


def test_bench_count_refuses_a_run_that_cannot_fit_before_making_pages(monkeypatch):
    """``--pages 1e9`` on a 24 GiB machine met the OOM killer after making the pages (27.5 bytes a
    page measured at 500 M); now one line before anything is made."""
    from pagecore import bench
    from pagecore.bench import count
    from pagecore.errors import PagecoreError

    made = []
    monkeypatch.setattr(count, "make_pages", lambda *a, **k: made.append(a))
    monkeypatch.setattr(bench, "mem_available", lambda: 2 * 10**9)
    with pytest.raises(PagecoreError) as e:
        count.main(["--pages", "1e8", "--no-salts"])
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("bench count --pages 100,000,000 --vms 100 needs about 3.3 GiB")
    assert not made
    # what the measured 500 M run peaked at is within what the check asks for
    assert 13.77e9 < count.count_memory(500_000_000, 100) < 1.3 * 13.77e9


def test_bench_count_one_line_at_the_cli_for_too_many_pages():
    need = 32 * (2**31 - 1)
    from pagecore.bench import mem_available

    if mem_available() > need:
        pytest.skip("this machine has the memory for 2**31 - 1 pages")
    proc = _cli("bench", "count", "--pages", str(2**31 - 1))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("pagecore: error: bench count --pages 2,147,483,647")


@pytest.mark.parametrize(
    ("vms", "words"),
    [("3000000000", "--vms: at most 2**31 - 1 VMs"), ("11", "--vms: 11 VMs of 10 pages leave VMs of no page")],
)
def test_bench_count_refuses_vms_it_cannot_count(vms, words):
    """``--pages 10 --vms 3000000000`` spent 31 s and 5.5 GB making names before "out of memory"."""
    proc = _cli("bench", "count", "--pages", "10", "--vms", vms)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert words in proc.stderr.strip().splitlines()[-1]


def test_bench_count_says_when_the_salted_rows_are_skipped(monkeypatch, capsys):
    """The salted rows were dropped silently when memory was short; the table did not say so."""
    from pagecore.bench import count

    monkeypatch.setattr(count, "mem_available", lambda: 1000)
    rows = count.bench_count(2000, vms=4, repeat=1, threads=1, warm=1)
    assert not any("salts" in r["method"] for r in rows)
    assert "salted rows skipped: they need about" in capsys.readouterr().out
    monkeypatch.setattr(count, "mem_available", lambda: 10**12)
    rows = count.bench_count(2000, vms=4, repeat=1, threads=1, warm=1)
    assert any("salts" in r["method"] for r in rows)
    assert "skipped" not in capsys.readouterr().out


def test_whole_process_alternates_cat_and_hash_and_prints_the_paired_ratio(monkeypatch, tmp_path, capsys):
    """``bench hash --whole-process`` ran ``cat`` all its repeats, then ``pagecore hash`` all of its,
    and divided the best of each: a fast period of the host could meet a slow one. Now they take
    turns and the median of the ratios within a round is printed beside the best-of ratio."""
    from pathlib import Path

    from pagecore.bench import wholeproc

    order, times = [], iter([(1.0, 0.5), (2.0, 2.0), (1.0, 0.5), (4.0, 4.0), (3.0, 0.5), (3.0, 3.0)])
    keep = tmp_path / "keep.raw"

    def child(cmd, stdout=None, env=None):
        if "-o" in cmd:
            Path(cmd[cmd.index("-o") + 1]).write_bytes(b"")
        kind = "cat" if cmd[0] == "cat" else "hash" if str(keep) in cmd else None
        if kind is None:
            return (0.01, 0.01)
        order.append(kind)
        return (0.01, 0.01) if len(order) == 1 else next(times)  # the first cat fills the page cache

    keep = tmp_path / "keep.raw"
    keep.write_bytes(b"\0" * 8192)
    monkeypatch.setattr(wholeproc, "run_child", child)
    monkeypatch.setattr(wholeproc, "kernel_status", lambda env: "stub")
    monkeypatch.setattr(wholeproc, "resident_fraction", lambda p: 1.0)
    monkeypatch.setattr(wholeproc, "imports_and_kernel", lambda env, repeat: (0.1, 0.01))
    monkeypatch.setattr(wholeproc, "parquet_1m_rows", lambda d: (0.1, 0.1))
    r = wholeproc.bench_whole_process(8192, repeat=3, tmpdir=tmp_path, keep=keep)
    assert order[1:] == ["cat", "hash"] * 3, order
    assert r["cat"] == (1.0, 0.5) and r["hash"] == (2.0, 2.0)
    assert wholeproc.print_whole_process(r, 3) is True
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("pagecore hash FILE"))
    best_of, pair = (float(v) for v in line.split()[-2:])
    assert best_of == 0.5 and pair == 0.5  # rounds: 1/2, 1/4, 3/3 -> median 0.5; best 1/2


@pytest.mark.parametrize("threads", [1, 2])
def test_bench_ingest_measures_at_one_thread_keep_the_serial_decoder(threads):
    """With ``--threads 1`` the pool variant was named as the serial measure (``zlib decode 1T``)
    and replaced it: the 1-thread baseline then carried the pool's overhead. At one thread the
    serial call is the only measure; above, each variant has its own name."""
    from pagecore.bench.ingest import _codec_blobs, _codec_measures, _kernel_measures
    from pagecore.dumps import _pagecodec

    class NoPool:  # the serial measures never touch the pool
        def map(self, *a):
            raise AssertionError("the 1-thread measure ran on the pool")

        submit = map

    blobs = _codec_blobs(guest_like_pages(300, seed=4), "zlib")
    codec = _codec_measures(blobs, "zlib", threads, NoPool())
    kern = _kernel_measures(blobs, _pagecodec.inflate_pages, "k", threads, NoPool())
    want = ["1T"] if threads == 1 else ["1T", f"{threads}T"]
    assert [k.split()[-1] for k in codec] == want and [k.split()[-1] for k in kern] == want
    codec["zlib decode 1T"]()
    kern["k 1T"]()


def test_bench_ingest_names_its_measures_honestly_at_one_thread(capsys, tmp_path):
    """The "raw map only" line described a mapped reader's cost, but ``pagecore hash`` reads raw,
    ELF and LiME by pread; and at ``--threads 1`` each decoder had one line, the pool's."""
    from pagecore.bench.ingest import main

    assert main(["--mib", "1", "--repeat", "1", "--threads", "1", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "raw map only" not in out and "raw mmap, 1 byte a page" in out
    names = [line.split("  ")[0] for line in out.splitlines()]
    assert names.count("zlib decode 1T") == 1 and names.count("zlib decode libz-kernel 1T") == 1, out


def test_bench_hash_refuses_mib_with_whole_process():
    """``--mib N --whole-process S`` ignored --mib without a word."""
    proc = _cli("bench", "hash", "--mib", "4", "--whole-process", "8M")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "argument --mib: not used with --whole-process" in proc.stderr.strip().splitlines()[-1]


def test_bench_quickstart_unknown_revision_is_one_line(tmp_path):
    """``--rev nosuch`` printed git's own lines and a CalledProcessError repr, after cloning."""
    proc = _cli("bench", "quickstart", "--rev", "nosuch-rev-1234", "--workdir", str(tmp_path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "CalledProcessError" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pagecore: error: bench quickstart --rev nosuch-rev-1234: no such")
    assert list(tmp_path.iterdir()) == []  # nothing cloned
