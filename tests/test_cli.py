"""The pagecore command: help everywhere, version, JSON output, one-line errors."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import yaml

import pagecore
from pagecore.cli import build_parser, main


def run(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "pagecore", *args], capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_version():
    assert run("--version").stdout.strip() == f"pagecore {pagecore.__version__}"


def _subcommands(parser, prefix=()):
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _subcommands(sub, (*prefix, name))


def test_every_subcommand_has_help(capsys):
    cmds = list(_subcommands(build_parser()))
    assert ("hash",) in cmds and ("share",) in cmds and ("synth", "fig04") in cmds
    for cmd in cmds:
        with pytest.raises(SystemExit) as ei:
            main([*cmd, "--help"])
        assert ei.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: pagecore " + " ".join(cmd)), cmd


def test_groups_name_the_commands_each_module_registers():
    """`pagecore.cli.GROUPS` (the map that lets one command line build one module's parser) says
    exactly which top-level commands each module adds, and together they are the full parser's."""
    import argparse

    from pagecore.cli import GROUPS, group_module

    full = [n for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction) for n in a.choices]
    assert sorted(full) == sorted(c for cmds in GROUPS.values() for c in cmds)
    for name, commands in GROUPS.items():
        p = argparse.ArgumentParser()
        sub = p.add_subparsers()
        group_module(name).register(sub)
        assert tuple(sub.choices) == commands, name


@pytest.mark.parametrize(
    "argv, only",
    [
        (["hash", "x.raw", "-o", "y.parquet"], "hash"),
        (["ksm", "--help"], "overtime"),
        (["import", "x"], "synth"),
        (["--help"], None),
        (["nosuchcommand"], None),
        ([], None),
    ],
)
def test_a_command_line_builds_only_its_module(argv, only):
    from pagecore.cli import _named_group

    assert _named_group(argv) == only


def test_one_command_parser_equals_the_full_one(capsys):
    """What a command's own parser prints (usage, help, errors) is what the full parser prints."""
    for argv in (["hash", "--help"], ["ksm", "run", "--help"], ["share"], ["hash", "a", "--bogus"]):
        outs = []
        for only in (None, __import__("pagecore.cli", fromlist=["x"])._named_group(argv)):
            with pytest.raises(SystemExit) as ei:
                build_parser(only).parse_args(argv)
            outs.append((ei.value.code, *capsys.readouterr()))
        assert outs[0] == outs[1], argv


def test_unknown_command_lists_every_command():
    proc = run("nosuchcommand", check=False)
    assert proc.returncode == 2 and "hash" in proc.stderr and "qemu" in proc.stderr and "ksm" in proc.stderr


def test_the_command_starts_blas_with_one_thread_unless_told():
    code = "import os, pagecore.cli as c; c._one_blas_thread(); print(os.environ.get('OPENBLAS_NUM_THREADS'))"
    env = {
        k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")
    }
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "1"
    out = subprocess.run(
        [sys.executable, "-c", code], env={**env, "OMP_NUM_THREADS": "2"}, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "None"


@pytest.fixture
def two_guests(tmp_path):
    run("synth", "fig04", "-o", str(tmp_path), "--vms", "2", "--mem-mb", "2")
    tables = []
    for i in (1, 2):
        out = tmp_path / f"vm0{i}.parquet"
        proc = run("hash", str(tmp_path / f"vm0{i}.raw"), "-o", str(out), "--vm", f"vm0{i}")
        assert f"{512:,} pages of vm0{i}" in proc.stderr
        tables.append(out)
    return tables


def test_hash_and_share_json(two_guests):
    from pagecore.experiments.analyze import analyze_page_tables

    proc = run("share", *map(str, two_guests), "--format", "json")
    got = json.loads(proc.stdout)
    for k in ("total_pages", "zero_pages", "shared_pages", "reclaimed_pages", "shared_minus_reclaimed_pages"):
        assert isinstance(got[k], int)
    assert got["total_pages"] == 1024
    assert got["shared_minus_reclaimed_pages"] == got["shared_pages"] - got["reclaimed_pages"]
    lib = analyze_page_tables(two_guests)
    lib.pop("by_vm")
    assert got["verified"] is True and got["false_matches"] == 0
    assert got == json.loads(json.dumps(lib))
    for t in ("1", "2"):  # all cores by default; the report does not depend on it
        assert json.loads(run("share", *map(str, two_guests), "--format", "json", "--threads", t).stdout) == got
    by_vm = json.loads(run("share", *map(str, two_guests), "--format", "json", "--by", "vm").stdout)
    assert set(by_vm["by_vm"]) == {"vm01", "vm02"}


def test_share_table_is_readable(tmp_path):
    """Long VM names that differ only at the end stay apart; one unit; each header once; a legend."""
    run("synth", "fig04", "-o", str(tmp_path), "--vms", "2", "--mem-mb", "1")
    names = ["production-webserver-frontend-01", "production-webserver-frontend-02"]
    tables = []
    for i, name in enumerate(names, 1):
        out = tmp_path / f"{name}.parquet"
        run("hash", str(tmp_path / f"vm0{i}.raw"), "-o", str(out), "--vm", name)
        tables.append(str(out))
    out = run("share", *tables, "--by", "vm").stdout
    lines = out.splitlines()
    for name in names:
        assert sum(line.startswith(f"{name} alone") for line in lines) == 1, out
    head = re.split(r"\s{2,}", lines[0].strip())
    assert len(head) == len(set(head)), head  # no header twice
    assert "MiB" in out and not re.search(r"\bMB\b", out), out  # one unit, said the same way everywhere
    assert "MiB = 2^20 bytes" in out and "reclaimed = saved" in out  # the legend
    rep = json.loads(run("share", *tables, "--format", "json", "--by", "vm").stdout)
    rows = list(csv.DictReader(io.StringIO(run("share", *tables, "--format", "csv", "--by", "vm").stdout)))
    assert [r["set"] for r in rows] == [f"{n} alone" for n in names] + ["all"]
    assert int(rows[-1]["reclaimed_pages"]) == rep["reclaimed_pages"]
    assert float(rows[-1]["saved_mib"]) == pytest.approx(rep["reclaimed_mb"], rel=1e-5)
    assert int(rows[0]["reclaimed_pages"]) == rep["by_vm"][names[0]]["alone_reclaimed_pages"]
    out_csv = tmp_path / "share.csv"
    run("share", *tables, "--format", "csv", "-o", str(out_csv))
    assert [r["set"] for r in csv.DictReader(io.StringIO(out_csv.read_text()))] == ["all"]


def test_progress_is_silent_when_not_a_terminal(tmp_path):
    (tmp_path / "g.raw").write_bytes(np.zeros(4096 * 3, np.uint8).tobytes())
    proc = run("hash", str(tmp_path / "g.raw"), "-o", str(tmp_path / "g.parquet"))
    assert "\r" not in proc.stderr and "%|" not in proc.stderr


def test_progress_off_a_terminal_neither_draws_nor_imports_tqdm(tmp_path):
    """Without a terminal `pagecore hash` counts with a SilentBar: tqdm (about 0.05 s of
    import) is not imported; the run's own output is unchanged."""
    (tmp_path / "g.raw").write_bytes(np.zeros(4096 * 3, np.uint8).tobytes())
    code = (
        "import sys; from pagecore.cli import main; "
        f"rc = main(['hash', {str(tmp_path / 'g.raw')!r}, '-o', {str(tmp_path / 'g.parquet')!r}]); "
        "print(rc, 'tqdm' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.split()[-2:] == ["0", "False"]


def test_progress_bar_on_a_terminal_and_silent_bar_off_it(monkeypatch):
    import io

    from pagecore._util import SilentBar, progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    with progress(10, desc="x") as bar:
        assert isinstance(bar, SilentBar)
        bar.update(3)
        bar.update()
    assert (bar.n, bar.total) == (4, 10)
    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    with progress(10, desc="drawn") as bar:
        bar.update(10)
    assert not isinstance(bar, SilentBar) and "drawn" in term.getvalue()


@pytest.mark.parametrize(
    "args,needle",
    [
        (["hash", "/nonexistent/dump.raw", "-o", "x.parquet"], "no such file"),
        (["share", "/nonexistent/pages.parquet"], "no such page table"),
    ],
)
def test_errors_are_one_line_without_traceback(args, needle, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pagecore", *args], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pagecore: error: ") and needle in lines[0]
    assert "Traceback" not in proc.stderr


def test_bad_option_value_exits_2(tmp_path):
    proc = run("hash", "x", "-o", "y", "--chunk-pages", "0", check=False)
    assert proc.returncode == 2 and "expected a number >= 1" in proc.stderr


def test_key_env_missing_is_a_clear_error(tmp_path):
    (tmp_path / "g.raw").write_bytes(bytes(4096))
    proc = run(
        "hash",
        str(tmp_path / "g.raw"),
        "-o",
        str(tmp_path / "g.parquet"),
        "--key-env",
        "PAGECORE_NO_SUCH_VAR",
        check=False,
    )
    assert proc.returncode == 1 and "PAGECORE_NO_SUCH_VAR" in proc.stderr
    assert not (tmp_path / "g.parquet").exists()


def test_synth_fig05_and_trace_subcommands(tmp_path):
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    cfg = root / "workflow/config/config.yaml"
    out = tmp_path / "c.parquet"
    run("synth", "fig05", "C", "-o", str(out), "--config", str(cfg))
    rep = json.loads(run("share", str(out), "--format", "json").stdout)
    guests = yaml.safe_load(cfg.read_text())["fig05"]["scenarios"]["C"]["guests"]
    assert rep["vms"] == len(guests)
    assert rep["total_pages"] == sum(round(g["mem_mb"] * 256) for g in guests)
    bad = run("synth", "fig05", "Z", "-o", str(out), "--config", str(cfg), check=False)
    assert bad.returncode == 1 and "unknown Figure 5 scenario 'Z'" in bad.stderr
    missing = run("synth", "trace", "fig06", "-o", str(tmp_path / "t.parquet"), "--config", "/nope.yaml", check=False)
    assert missing.returncode == 1 and "no such config file" in missing.stderr


def test_synth_works_outside_the_repository(tmp_path):
    """No --config: the default config and schema installed with the package (symlinks in the tree)."""
    from pathlib import Path

    from pagecore.config import default_config_path, default_schema_path

    root = Path(__file__).resolve().parents[1]
    assert default_config_path().read_bytes() == (root / "workflow/config/config.yaml").read_bytes()
    assert default_schema_path().read_bytes() == (root / "workflow/schemas/config.schema.yaml").read_bytes()
    env = {**os.environ, "PYTHONPATH": str(root)}
    for args in (["synth", "fig05", "A", "-o", "a.parquet"], ["synth", "trace", "fig07", "-o", "t.parquet"]):
        proc = subprocess.run(
            [sys.executable, "-m", "pagecore", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "a.parquet").stat().st_size > 0 and (tmp_path / "t.parquet").stat().st_size > 0


def test_help_texts_name_one_program(capsys):
    """Every usage line starts with `pagecore`, including the benchmarks' and the QEMU tools'."""
    for argv in (["bench", "hash", "--help"], ["bench", "count", "--help"], ["bench", "sim", "--help"],
                 ["bench", "ingest", "--help"], ["bench", "guest", "--help"], ["bench", "quickstart", "--help"],
                 ["qemu", "capture", "--help"],
                 ["qemu", "realguests", "--help"], ["qemu", "ksmcheck", "--help"]):  # fmt: skip
        with pytest.raises(SystemExit):
            main(argv)
        out = capsys.readouterr().out
        assert out.startswith(f"usage: pagecore {argv[0]} {argv[1]}"), (argv, out[:80])
        # no other program name (pagecore-bench …); a file path such as /run/pagecore-ksmcheck.json is fine
        assert "python -m" not in out and not re.search(r"(?<![/\w])pagecore-[a-z]", out), argv


def test_bench_hash_says_when_xxhash_is_missing():
    from pagecore.bench.hashing import format_hash_result

    res = {"read_bandwidth": 10.0, "hash_1_thread": 8.0}
    out = format_hash_result(res, 8, 1)
    assert "xxhash is not installed" in out and "x xxh3 loop" not in out
    out = format_hash_result({**res, "xxh3_python_loop": 4.0}, 8, 1)
    assert "xxhash is not installed" not in out and "x xxh3 loop" in out and "2.00" in out


def test_whole_process_bench_helpers(tmp_path):
    """`pagecore bench hash --whole-process SIZE`: sizes parse to whole pages, the dump it writes
    has distinct pages, and mincore finds a file just written (and read) in the page cache."""
    import numpy as np

    from pagecore.bench.wholeproc import make_raw, parse_size, resident_fraction

    assert parse_size("8G") == parse_size("8GiB") == 8 << 30
    assert parse_size("512M") == 512 << 20 and parse_size("4096") == 4096
    for bad in ("100", "0", "-4K"):
        with pytest.raises(ValueError, match="whole number"):
            parse_size(bad)
    path = tmp_path / "d.raw"
    make_raw(path, 64 * 4096)
    pages = np.fromfile(path, np.uint64).reshape(64, 512)
    nonzero = pages[pages.any(axis=1)]
    assert len(np.unique(nonzero, axis=0)) == len(nonzero) > 0
    path.read_bytes()
    assert resident_fraction(path) > 0.9
