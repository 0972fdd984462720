"""Careless and hostile command lines found by an audit (`bench`, `import memorybuddies`,
`synth fig04`, `ksm`/`scan --interval`), each once a traceback, a silently ignored option, a
wrong page count with exit 0 or a directory of mixed runs; all called in-process.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from pagecore.cli import main
from pagecore.pages import hash_dump


def _bench_usage_error(capsys, argv: list[str]) -> str:
    """Run ``pagecore bench …``; it must stop in argument parsing (exit 2) with one error line."""
    with pytest.raises(SystemExit) as ei:
        main(["bench", *argv])
    assert ei.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1, err
    return errors[0]


# ------------------------------------------------------------------------------ bench
# Each bad value once gave a traceback (ZeroDivisionError, ValueError, TypeError), or ran and
# printed numbers ("best of 0"). Companion options keep a run short should the bad value be
# accepted again (so that the test fails fast rather than benchmarking for minutes).
BAD_BENCH_OPTIONS = [
    ("hash", "--mib", "0", []),  # ZeroDivisionError
    ("hash", "--mib", "-1", []),  # ValueError
    ("hash", "--repeat", "0", ["--mib", "1"]),  # exit 0, GB/s "best of 0"
    ("hash", "--repeat", "-3", ["--mib", "1"]),
    ("hash", "--whole-process", "0", []),  # ValueError from parse_size
    ("hash", "--whole-process", "lots", []),
    ("hash", "--whole-process", "nan", []),
    ("ingest", "--mib", "0", []),  # TypeError
    ("ingest", "--repeat", "0", ["--mib", "1"]),
    ("ingest", "--threads", "-1", ["--mib", "1"]),
    ("ingest", "--chunk-pages", "0", ["--mib", "1"]),
    ("ingest", "--chunk-pages", str(2**21), ["--mib", "1"]),  # past hash's own bound
    ("count", "--pages", "0", []),  # ValueError
    ("count", "--pages", "2.5", []),  # truncated to 2 before
    ("count", "--pages", "nan", []),
    ("count", "--pages", "-5e6", []),
    ("count", "--vms", "0", ["--pages", "10"]),  # ValueError
    ("count", "--repeat", "0", ["--pages", "10"]),
    ("count", "--warm", "0", ["--pages", "10"]),
    ("count", "--seed", "-1", ["--pages", "10"]),
    ("count", "--threads", "-1", ["--pages", "10"]),
    ("count", "--verify-mib", "0", ["--pages", "10", "--verify"]),
    ("guest", "--refs", "0", []),  # ValueError
    ("guest", "--ios", "0", ["--refs", "1"]),
    ("guest", "--repeat", "0", ["--refs", "1"]),
    ("sim", "--events", "-1", ["--scenario", "none"]),  # ValueError
    ("sim", "--events", "0", ["--scenario", "none"]),
    ("scan", "--host", "0x64", ["--rate-host", "1x1", "--twin-host", "1x1", "--no-twins", "--repeat", "1"]),
    ("scan", "--host", "2x0", ["--rate-host", "1x1", "--twin-host", "1x1", "--no-twins", "--repeat", "1"]),
    ("scan", "--host", "2xnan", ["--rate-host", "1x1", "--twin-host", "1x1", "--no-twins", "--repeat", "1"]),
    ("scan", "--twin-host", "2x-1", ["--rate-host", "1x1", "--host", "1x1", "--repeat", "1"]),
    ("scan", "--repeat", "0", ["--rate-host", "1x1", "--host", "1x1", "--no-twins"]),
    ("scan", "--seed", "-1", ["--rate-host", "1x1", "--host", "1x1", "--no-twins", "--repeat", "1"]),
    ("compress", "--vms", "-1", ["--real", "/nonexistent/dump", "--no-cli"]),
    ("compress", "--threads", "-1", ["--real", "/nonexistent/dump", "--no-cli", "--vms", "0"]),
    ("compress", "--repeat", "0", ["--real", "/nonexistent/dump", "--no-cli", "--vms", "0"]),
    ("quickstart", "--top", "0", ["--repo", "/nonexistent/repo"]),
]


@pytest.mark.parametrize(
    "what,option,value,rest", BAD_BENCH_OPTIONS, ids=[f"{w} {o} {v}" for w, o, v, _ in BAD_BENCH_OPTIONS]
)
def test_bench_refuses_a_bad_number_naming_its_option(capsys, what, option, value, rest):
    line = _bench_usage_error(capsys, [what, *rest, f"{option}={value}"])
    assert line.startswith(f"pagecore bench {what}: error: argument {option}: "), line


@pytest.mark.parametrize("option", ["--rate-host", "--twin-host", "--host"])
def test_bench_scan_blames_the_host_option_given(capsys, option):
    """`bench scan --rate-host -1` said "--host wants VMSxMIB": the wrong option."""
    line = _bench_usage_error(capsys, ["scan", f"{option}=-1"])
    _, _, message = line.partition(f"argument {option}: ")
    assert message and "VMSxMIB" in message, line
    assert "--" not in message, line  # argparse names the option; the message names no other


def test_bench_guest_refuses_a_trace_too_short_for_host_paging(capsys):
    """`bench guest --refs 1` passed the warm-up 10 references of a 1-reference trace (ValueError),
    and its host-paging row needs more pages resident than the host takes away."""
    line = _bench_usage_error(capsys, ["guest", "--refs", "1", "--ios", "1", "--repeat", "1", "--no-twins"])
    assert "argument --refs: " in line and "16,384" in line, line


def test_bench_count_runs_on_fewer_pages_than_its_warm_up(capsys):
    """`bench count --pages 10` compiled on a 1,000-page salt beside 10 hashes (ValueError)."""
    assert main(["bench", "count", "--pages", "10", "--vms", "3", "--repeat", "1", "--warm", "1"]) == 0
    out = capsys.readouterr().out
    assert "10 pages" in out or "10 hashes" in out or "count_sharing" in out, out


def test_bench_count_pages_are_whole_numbers_given_or_not(monkeypatch):
    from pagecore.bench import count

    seen = []
    monkeypatch.setattr(count, "bench_count", lambda n, *a: seen.append(n) or [])
    monkeypatch.setattr(count, "print_count", lambda *a: None)
    assert count.main([]) == 0 and count.main(["--pages", "5e2", "7"]) == 0
    assert seen == [5_000_000, 500, 7] and all(type(n) is int for n in seen)


def test_whole_number_takes_float_notation_but_never_truncates():
    import argparse

    from pagecore.bench import whole_number

    parse = whole_number(1)
    assert parse("5e6") == 5_000_000 and parse("12") == 12
    for bad in ("2.5", "0", "-1", "inf", "nan", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(bad)


# ------------------------------------------------------------------------------ memorybuddies
def _hashes(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)


def test_memorybuddies_hashes_that_look_like_header_lines_are_refused(tmp_path, capsys):
    """The audit's trace: a 10-byte header, then 4 hashes of which two read as "ABC\\n". The
    longest text prefix took 22 bytes as the header: "1 pages", exit 0 (truth: 4 pages)."""
    trace = tmp_path / "m.trace"
    trace.write_bytes(b"Linux 2.6\n" + _hashes(0x0A434241, 0x22222222, 0x0A434241, 0x33333333))
    out = tmp_path / "m.parquet"
    assert main(["import", "memorybuddies", "-o", str(out), str(trace)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "--header-bytes" in err and "10, 14 or 22 bytes" in err, err
    assert not out.exists()

    assert main(["import", "memorybuddies", "-o", str(out), str(trace), "--header-bytes", "10"]) == 0
    from pagecore.pages.tables import read_page_table

    got = read_page_table(out).to_pandas()["hash"].tolist()
    assert got == [0x0A434241, 0x22222222, 0x0A434241, 0x33333333]


def test_memorybuddies_a_count_in_the_header_cannot_hide_a_swallowed_hash(tmp_path, capsys):
    """With `pages: N` in the header the hash list's length is not checked against the file: a
    first hash whose bytes are "A\\n" then non-text shifted every hash by 2 bytes, exit 0."""
    header = b"Linux 2.6\npages: 3\n"
    trace = tmp_path / "c.trace"
    trace.write_bytes(header + _hashes(0x01000A41, 0xDEADBEEF, 0xCAFEF00D) + b"BLOOM FILTER....")
    out = tmp_path / "c.parquet"
    assert main(["import", "memorybuddies", "-o", str(out), str(trace)]) == 1
    err = capsys.readouterr().err
    assert f"{len(header)} or {len(header) + 2} bytes" in err and "--header-bytes" in err, err
    assert not out.exists()


def test_memorybuddies_a_hash_swallowed_mid_word_is_named_and_read_with_header_bytes(tmp_path, capsys):
    """Without a page count the hashes must fill the rest of the file: the one header end that
    does is shorter than the text lines, which a cut file gives too (session 19: taking it
    misread a cut trace's last header line as hashes), so it is refused naming the length to
    pass as --header-bytes (it was once refused as "not whole 32-bit hashes", advising --max-pages)."""
    header = b"Linux 2.6\nPROCESSES:\n  1 init\n"
    values = (0x01000A41, 0xDEADBEEF, 0xCAFEF00D, 7)
    trace = tmp_path / "w.trace"
    trace.write_bytes(header + _hashes(*values))
    out = tmp_path / "w.parquet"
    assert main(["import", "memorybuddies", "-o", str(out), str(trace)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"--header-bytes {len(header)}" in err, err
    assert not out.exists()
    assert main(["import", "memorybuddies", "-o", str(out), str(trace), "--header-bytes", str(len(header))]) == 0
    assert f"4 pages of w (32-bit hashes, hash-only; header {len(header)} bytes" in capsys.readouterr().err
    from pagecore.pages.tables import read_page_table

    assert read_page_table(out).to_pandas()["hash"].tolist() == list(values)


@pytest.mark.parametrize("extra,max_pages", [(b"", None), (b"pages: 20\n", None), (b"", 20)])
def test_memorybuddies_random_hashes_give_the_header_or_a_refusal_never_a_wrong_one(extra, max_pages):
    """Random 32-bit hashes after a process-list header: the longest text prefix is wrong about
    1 time in 160; the header found must be the true one every time, or refused."""
    from pagecore.errors import InputError
    from pagecore.synth.memorybuddies import detect_header, split_header

    header = b"Darwin 9.4.0 i386\nPROCESSES:\n  1 launchd\n  42 WindowServer\n" + extra
    rng = np.random.default_rng(160)
    greedy_wrong = refused = 0
    for _ in range(5000):
        data = header + rng.integers(0, 2**32, size=20, dtype=np.uint64).astype("<u4").tobytes()
        greedy_wrong += split_header(data) != len(header)
        try:
            assert detect_header("t", data, len(data), max_pages) == len(header)
        except InputError as exc:
            assert "--header-bytes" in str(exc)
            refused += 1
    assert greedy_wrong >= 10  # the case arises here, so the check above means something
    assert refused <= greedy_wrong


# ------------------------------------------------------------------------------ synth fig04
def _synth(out, *options) -> int:
    return main(["synth", "fig04", "-o", str(out), "--mem-mb", "1", *options])


def test_synth_refuses_a_directory_holding_an_earlier_run(tmp_path, capsys):
    """A second run with fewer --vms left vm03.raw of the first beside its own: mixed runs."""
    out = tmp_path / "s"
    assert _synth(out, "--vms", "3", "--seed", "1") == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert _synth(out, "--vms", "2", "--mem-mb", "2", "--seed", "2") == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "not empty" in err and "--force" in err, err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_synth_refuses_a_directory_holding_other_files(tmp_path, capsys):
    """A page table hashed from a guest sits beside it: its dump must not be replaced silently."""
    out = tmp_path / "s"
    out.mkdir()
    (out / "vm01.parquet").write_bytes(b"a table")
    assert _synth(out, "--vms", "1") == 1
    assert "not empty" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["vm01.parquet"]


def test_synth_force_replaces_an_earlier_run_and_removes_its_extra_guests(tmp_path, capsys):
    out = tmp_path / "s"
    assert _synth(out, "--vms", "3", "--seed", "1") == 0
    assert _synth(out, "--vms", "2", "--mem-mb", "2", "--seed", "2", "--force") == 0
    assert "removed the earlier run's vm03.raw" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["vm01.raw", "vm02.raw"]
    assert all(p.stat().st_size == 2 * 2**20 for p in out.iterdir())


def test_synth_force_never_removes_what_synth_does_not_write(tmp_path, capsys):
    out = tmp_path / "s"
    assert _synth(out, "--vms", "2") == 0
    (out / "vm01.parquet").write_bytes(b"a table")
    (out / "notes").mkdir()
    before = sorted(p.name for p in out.iterdir())
    capsys.readouterr()
    assert _synth(out, "--vms", "1", "--force") == 1
    err = capsys.readouterr().err
    assert "vm01.parquet" in err and "notes" in err and "--force replaces only" in err, err
    assert sorted(p.name for p in out.iterdir()) == before


def test_synth_force_interrupted_leaves_the_earlier_run_whole(tmp_path, monkeypatch, capsys):
    """--force removes the earlier run's guests only once this run's are all in place."""
    from pagecore.synth import Fig04Model

    out = tmp_path / "s"
    assert _synth(out, "--vms", "3", "--seed", "1") == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    write = Fig04Model.write_raw

    def interrupted(self, vm, path, *a, **kw):
        if vm == 1:
            raise KeyboardInterrupt
        return write(self, vm, path, *a, **kw)

    monkeypatch.setattr(Fig04Model, "write_raw", interrupted)
    assert _synth(out, "--vms", "2", "--seed", "2", "--force") == 130
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_synth_ignores_temporaries_of_a_killed_run(tmp_path, capsys):
    out = tmp_path / "s"
    out.mkdir()
    (out / ".vm01.raw.pagecore-tmp-999999999-0").write_bytes(b"half a guest")  # no such process
    assert _synth(out, "--vms", "1") == 0
    assert [p.name for p in out.iterdir()] == ["vm01.raw"]


# ------------------------------------------------------------------------------ ksm / scan
@pytest.fixture
def table(tmp_path):
    pages = np.random.default_rng(0).integers(0, 256, (8, 4096), dtype=np.uint8)
    pages[4:6] = pages[0]
    dump = tmp_path / "g.raw"
    dump.write_bytes(pages.tobytes())
    out = tmp_path / "g.parquet"
    hash_dump(dump, out, "g", show_progress=False)
    return out


@pytest.mark.parametrize("command", ["ksm", "scan"])
def test_interval_without_series_is_refused(table, capsys, command):
    """`--interval 5` without `--series` was ignored (as `--lifetimes` without it is not)."""
    assert main([command, str(table), "--interval", "5", "--format", "json"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert (
        captured.err.strip()
        == "pagecore: error: --interval needs --series (the seconds between successive reads of the same guests)"
    )


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_interval_must_be_a_positive_number(table, capsys, value):
    with pytest.raises(SystemExit) as ei:
        main(["ksm", str(table), "--series", f"--interval={value}"])
    assert ei.value.code == 2 and "argument --interval: " in capsys.readouterr().err


def test_hash_with_an_empty_vm_name_is_refused(tmp_path):
    """`hash --vm ""` fell back to the dump's file stem without a word (session 17 audit)."""
    from cli_helpers import cli, one_line_error

    dump = tmp_path / "g.raw"
    dump.write_bytes(bytes(4096) * 4)
    for name in ("", "  "):
        line = one_line_error(cli("hash", str(dump), "-o", str(tmp_path / "t.parquet"), "--vm", name))
        assert "--vm needs a name" in line
    assert not (tmp_path / "t.parquet").exists()
