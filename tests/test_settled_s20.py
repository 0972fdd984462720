"""Session 20: KSM's emulator says whether its counters settled (as the ESX scanner did), and
`pagecore host` neither reports an unfinished scan as converged nor runs one that cannot finish."""

from __future__ import annotations

import numpy as np
import pytest

from pagecore.errors import ConfigError
from pagecore.experiments import host as H
from pagecore.sharing.ksm import KsmSettings, emulate_ksm
from pagecore.sharing.pagehistory import PageHistory


def _history(n=2000, contents=50, seed=0):
    rng = np.random.default_rng(seed)
    h = rng.integers(0, contents, size=n).astype(np.uint64)
    return PageHistory.from_pages(h, h == 0, np.repeat(np.arange(2), n // 2), ["a", "b"])


def test_ksm_result_says_whether_it_settled():
    hist = _history()
    done = emulate_ksm(hist, KsmSettings())
    assert done.settled and done.to_dict()["settled"] is True
    # stopped by time: 0.5 s is a fraction of the 1.6 s the counters need to settle here
    early = emulate_ksm(hist, KsmSettings(), until_s=0.5)
    assert early.timeline["t"].iloc[-1] < done.timeline["t"].iloc[-1]
    assert not early.settled and early.to_dict()["settled"] is False
    # stopped by the full-scan limit before settle_scans equal scans
    assert not emulate_ksm(hist, KsmSettings(), max_full_scans=1, settle_scans=5).settled


def test_ksm_with_nothing_to_scan_is_settled():
    empty = PageHistory.from_pages(np.zeros(0, np.uint64), np.zeros(0, bool), np.zeros(0, np.int64), ["a"])
    assert emulate_ksm(empty, KsmSettings()).settled
    zeros = PageHistory.from_pages(np.zeros(100, np.uint64), np.ones(100, bool), np.zeros(100, np.int64), ["a"])
    r = emulate_ksm(zeros, KsmSettings(use_zero_pages=True))  # every page on the zero page: nothing left to visit
    assert r.settled and r.final["ksm_zero_pages"] == 100


def _vms(pages=300):
    import pandas as pd

    rng = np.random.default_rng(3)
    out = []
    for i in range(3):
        h = rng.integers(1, 40, size=pages).astype(np.uint64)
        frame = pd.DataFrame({"vm": f"v{i}", "gpfn": np.arange(pages, dtype=np.uint64), "hash": h, "zero": h == 0})
        out.append(H.HostVM(name=f"v{i}", frame=frame, size_mb=pages / 256))
    return out


def _members(vms):
    return H.replicate(vms, [v.frame["hash"].to_numpy(np.uint64) for v in vms], len(vms), "distinct")


@pytest.mark.parametrize("policy", ["esx2002", "kvm-ksm"])
def test_host_scan_says_it_settled(policy):
    got = H.scan_over_time(_members(_vms()), policy, H.HostSettings(kvm_thp=False))
    assert got["settled"] is True


def test_host_refuses_a_scanner_that_cannot_finish_a_pass():
    st = H.HostSettings(scanner={"scan_rate_vm": 1e-6, "scan_rate_total": 1e-6})
    with pytest.raises(ConfigError, match=r"host\.scanner \(esx2002\).*raise the scan rates"):
        H.scan_over_time(_members(_vms()), "esx2002", st)


def test_host_notes_an_unsettled_scan(monkeypatch):
    """A scan stopped by a limit (here: KSM's, forced) is said to be unfinished in every fit of its policy."""
    import pagecore.sharing.ksm as K

    real = K.KsmEmulator.run
    monkeypatch.setattr(K.KsmEmulator, "run", lambda self, **kw: real(self, **{**kw, "until_s": 0.05}))
    vms = _vms()
    st = H.HostSettings(kvm_thp=False, policies=("kvm-ksm",), memory_mb=(64.0,))
    out = H.host_report(vms, st)
    assert out["scan"]["kvm-ksm"]["settled"] is False
    assert all("stopped before it settled" in f["notes"][0] for f in out["fits"])


def test_host_replay_says_which_policies_it_cross_checks(tmp_path):
    """--replay runs the ESX memory manager only: asked with no ESX policy it was skipped without a word."""
    import subprocess
    import sys

    from pagecore.pages.tables import write_page_table

    rng = np.random.default_rng(1)
    t = tmp_path / "a.parquet"
    h = rng.integers(1, 50, 256).astype(np.uint64)
    write_page_table(t, "a", np.arange(256, dtype=np.uint64), h, h == 0, {"hash_only": True})

    def run(*a):
        return subprocess.run([sys.executable, "-m", "pagecore", "host", str(t), "--memory", "8", "--verify", "no",
                               "-q", "--replay", *a], capture_output=True, text=True, timeout=600)  # fmt: skip

    p = run("--policy", "kvm-ksm")
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert "--replay cross-checks the esx2002 and esxi policies only" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def _parser_running(func):
    """A stand-in for the parser: whatever the command line, the command is ``func``."""
    import argparse

    class P:
        def parse_args(self, argv):
            return argparse.Namespace(func=func)

    return lambda only=None: P()


def test_an_interrupt_after_an_output_was_renamed_names_it(tmp_path, monkeypatch, capsys):
    """Ctrl-C after a command had renamed its output into place said "no output written"."""
    import pagecore.cli as cli
    from pagecore._util import atomic_path

    out = tmp_path / "report.json"

    def after_rename(args):
        with atomic_path(out) as tmp:
            tmp.write_text("{}")
        raise KeyboardInterrupt  # after the rename, before the command returns

    monkeypatch.setattr(cli, "build_parser", _parser_running(after_rename))
    assert cli.main(["anything"]) == 130
    err = capsys.readouterr().err
    assert out.read_text() == "{}"
    assert "no output written" not in err and str(out) in err and "nothing else written" in err

    def before_any(args):
        raise KeyboardInterrupt

    # the next command (same process) interrupted before any rename still says so
    monkeypatch.setattr(cli, "build_parser", _parser_running(before_any))
    assert cli.main(["anything"]) == 130
    assert "no output written" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, what",
    [
        (["share", "{d}"], "page table"),
        (["ksm", "{d}"], "page table"),
        (["compress", "{d}"], "memory dump or page table"),
        (["host", "{d}", "--memory", "1G"], "dump (host VM #1)"),
    ],
)
def test_a_directory_given_as_an_input_is_called_one(tmp_path, argv, what):
    """A directory named as an input said "no such page table" (or "no such file") though it exists."""
    import subprocess
    import sys

    d = tmp_path / "guests"
    d.mkdir()
    p = subprocess.run(
        [sys.executable, "-m", "pagecore", *[a.format(d=d) for a in argv]], capture_output=True, text=True, timeout=300
    )
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert f"is a directory, not a {what}" in p.stderr and "no such" not in p.stderr


def test_not_a_file_says_what_is_there(tmp_path):
    from pagecore.errors import not_a_file

    assert "no such page table" in str(not_a_file(tmp_path / "missing.parquet", "page table"))
    assert "is a directory, not a page table" in str(not_a_file(tmp_path, "page table"))
    assert "is not a regular file" in str(not_a_file("/dev/null", "page table"))


def _write_rows(path, n, chunk=4096, fail_at=None, monkeypatch=None):
    from pagecore.pages import tables as T

    if fail_at is not None:
        real = T.PageTableWriter._write
        calls = []

        def failing(self, batches):
            calls.append(1)
            if len(calls) == fail_at:
                raise OSError(28, "No space left on device")
            return real(self, batches)

        monkeypatch.setattr(T.PageTableWriter, "_write", failing)
    rng = np.random.default_rng(2)
    g = np.arange(n, dtype=np.uint64)
    h = rng.integers(0, 2**63, size=n, dtype=np.uint64)
    z = rng.random(n) < 0.1
    h[z] = 12345  # the zero pages' one hash (tables are checked for it when read)
    with T.PageTableWriter(path, "vm") as w:
        for a in range(0, n, chunk):
            w.write(g[a : a + chunk], h[a : a + chunk], z[a : a + chunk])
    return g, h, z


def test_row_groups_written_behind_keep_their_order_and_rows(tmp_path, monkeypatch):
    """Whole row groups are written on a thread of their own while the caller goes on (issue 18:
    they held the hashing threads idle): the table has every row in order, in 1 M-row groups."""
    from pagecore.pages import tables as T

    monkeypatch.setattr(T.PageTableWriter, "ROW_GROUP", 1000)
    p = tmp_path / "t.parquet"
    g, h, z = _write_rows(p, 10_500, chunk=333)
    t = T.read_page_table(p)
    assert t["gpfn"].to_numpy().tolist() == g.tolist() and (t["hash"].to_numpy() == h).all()
    assert (t["zero"].to_numpy() == z).all() and z.any()
    import pyarrow.parquet as pq

    sizes = [pq.ParquetFile(p).metadata.row_group(i).num_rows for i in range(pq.ParquetFile(p).num_row_groups)]
    assert sizes == [1000] * 10 + [500]


@pytest.mark.parametrize("fail_at", [1, 2, 4])
def test_a_row_group_that_fails_behind_fails_the_table(tmp_path, monkeypatch, fail_at):
    """An error of the writing thread (disk full) is the caller's error, and no table appears."""
    from pagecore.errors import InputError
    from pagecore.pages import tables as T

    monkeypatch.setattr(T.PageTableWriter, "ROW_GROUP", 1000)
    p = tmp_path / "t.parquet"
    with pytest.raises((OSError, InputError)):
        _write_rows(p, 3500, chunk=250, fail_at=fail_at, monkeypatch=monkeypatch)
    assert not p.exists() and not list(tmp_path.iterdir())


def test_fig05_zero_labels_follow_the_configs_os_kinds():
    """Which hosts share an OS kind came from the paper's guest text ("WinNT" or else linux); it
    comes from the config's guests, and a host of mixed kinds has no one fitted fraction."""
    from pathlib import Path

    import yaml

    from pagecore import paper
    from pagecore.experiments.sharing_figures import fig05_os_kinds, fig05_records

    cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "workflow/config/config.yaml").read_text())
    kinds = fig05_os_kinds(cfg["fig05"]["scenarios"])
    assert kinds == {"A": "winnt4", "B": "linux", "C": "linux"}
    table = paper.FIG05.copy()  # any numbers: only the labels are checked
    fitted = cfg["fig05"]["fitted_to"]
    recs = {r.quantity: r for r in fig05_records(table, fitted, kinds)}
    assert recs["zero_reclaimed_mb@C"].kind == "input"
    mixed = dict(cfg["fig05"]["scenarios"])
    mixed["C"] = {"guests": [*mixed["C"]["guests"], {"name": "cx", "os": "winnt4", "mem_mb": 64, "apps": []}]}
    recs = {r.quantity: r for r in fig05_records(table, fitted, fig05_os_kinds(mixed))}
    assert recs["zero_reclaimed_mb@C"].kind == "predicted"
