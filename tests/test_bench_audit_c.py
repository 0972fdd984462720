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
