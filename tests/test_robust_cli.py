"""Session 9 adversarial review of the commands against README "What pagecore guarantees".

Each test is a case a careless or hostile user produces that once gave a wrong number with exit
0, destroyed a file, left a partial output or a traceback; each builds tiny synthetic inputs.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys

import numpy as np
import pytest
from cli_helpers import cli, one_line_error
from dumps_helpers import make_pages, write_dump

from pagecore.pages import hash_dump


@pytest.fixture
def dumps(tmp_path):
    """Two 24-page raw dumps with some zero and duplicated pages, and their page tables."""
    out = []
    for i in range(2):
        rng = np.random.default_rng(i)
        pages = rng.integers(0, 256, (24, 4096), dtype=np.uint8)
        pages[4:8] = pages[2]
        pages[10:12] = 0
        dump = tmp_path / f"g{i}.raw"
        dump.write_bytes(pages.tobytes())
        table = tmp_path / f"g{i}.parquet"
        hash_dump(dump, table, f"g{i}", show_progress=False)
        out.append((dump, table))
    return out


# ------------------------------------------------------------------------------ lost files
@pytest.mark.parametrize(
    "command",
    [
        ["share", "--format", "json"],
        ["compress", "--format", "json"],
        ["host", "--memory", "1G", "--format", "json", "-q"],
    ],
)
def test_the_dump_behind_a_page_table_is_an_input_never_an_output(dumps, command):
    """`share`/`compress`/`host` read the dump a table records (to verify or compress its pages):
    `-o` naming that dump replaced it with the report, exit 0."""
    (dump, table), _ = dumps
    before = dump.read_bytes()
    line = one_line_error(cli(command[0], str(table), *command[1:], "-o", str(dump)))
    assert "output is the input" in line
    assert dump.read_bytes() == before


def test_the_dump_found_in_dump_dir_is_an_input(dumps, tmp_path):
    (dump, table), _ = dumps
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / dump.name).write_bytes(dump.read_bytes())
    before = (moved / dump.name).read_bytes()
    one_line_error(cli("share", str(table), "--dump-dir", str(moved), "--format", "json", "-o", str(moved / dump.name)))
    assert (moved / dump.name).read_bytes() == before


def test_two_outputs_naming_one_file_are_refused(dumps, tmp_path):
    """`host -o r --timelines r` wrote the report, then the timelines over it: one output lost."""
    (_, table), _ = dumps
    out = tmp_path / "r.parquet"
    line = one_line_error(
        cli("host", str(table), "--memory", "1G", "--format", "parquet", "-o", str(out), "--timelines", str(out), "-q")
    )
    assert "two outputs" in line
    assert not out.exists()


# ------------------------------------------------------------------------------ wrong numbers
@pytest.mark.parametrize("command", [["share"], ["ksm"], ["host", "--memory", "1G", "-q"]])
def test_one_dump_hashed_under_two_vm_names_is_refused(dumps, tmp_path, command):
    """`hash g0.raw --vm other` beside g0's own table counted every page of g0 as shared between
    two VMs (share: 48.8 % saved became 68.8 %), exit 0."""
    (dump, table), _ = dumps
    again = tmp_path / "again.parquet"
    hash_dump(dump, again, "other", show_progress=False)
    line = one_line_error(cli(command[0], str(table), str(again), *command[1:]))
    assert "same dump" in line and dump.name in line


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
@pytest.mark.parametrize("command", [["share"], ["ksm"]])
def test_one_dump_hashed_through_a_link_under_two_vm_names_is_refused(dumps, tmp_path, command, link):
    """The same dump hashed once through a symbolic or hard link (another recorded path) under
    another VM name: every page counted as shared, verified, exit 0 (session 18 audit: the
    pipeline's `dumps` listing one file twice this way)."""
    (dump, table), _ = dumps
    other = tmp_path / "link.raw"
    other.symlink_to(dump) if link == "symlink" else os.link(dump, other)
    again = tmp_path / "again.parquet"
    hash_dump(other, again, "other", show_progress=False)
    line = one_line_error(cli(command[0], str(table), str(again), *command[1:]))
    assert "same dump" in line


def test_copies_of_one_dump_are_distinct_guests(dumps, tmp_path):
    """Identical guests as two files are two VMs (what `synth fig04` writes): not refused."""
    (dump, table), _ = dumps
    copy = tmp_path / "copy.raw"
    copy.write_bytes(dump.read_bytes())
    hash_dump(copy, tmp_path / "copy.parquet", "copy", show_progress=False)
    proc = cli("share", str(table), str(tmp_path / "copy.parquet"), "--format", "json")
    assert proc.returncode == 0, proc.stderr


# ------------------------------------------------------------------------------ configs and options
@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_config_numbers_must_be_finite(tmp_path, value):
    """NaN passes every minimum/maximum of the schema: `host.vm_overhead_mb: .nan` made 0 VMs fit
    on a 1 GiB host, exit 0."""
    import yaml

    from pagecore.config import default_config_path, load_config
    from pagecore.errors import ConfigError

    cfg = yaml.safe_load(default_config_path().read_text())
    cfg["host"]["vm_overhead_mb"] = yaml.safe_load(value)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=r"host\.vm_overhead_mb: .* not a finite number"):
        load_config(path)


@pytest.mark.parametrize("text", [b"host: [unclosed\n", b"\xff\xfe host"])
def test_a_config_that_is_not_yaml_is_one_line(dumps, tmp_path, text):
    (_, table), _ = dumps
    path = tmp_path / "config.yaml"
    path.write_bytes(text)
    line = one_line_error(cli("host", str(table), "--memory", "1G", "-q", "--config", str(path)))
    assert "not a YAML config" in line


@pytest.mark.parametrize(
    "options,needle",
    [
        (["--ksm-sleep-millisecs", "0"], "sleep_millisecs 0"),  # was ZeroDivisionError
        (["--policy", ","], "no policy given"),  # was KeyError: 'policy'
    ],
)
def test_host_degenerate_options_are_one_line(dumps, options, needle):
    (_, table), _ = dumps
    line = one_line_error(cli("host", str(table), "--memory", "1G", "-q", *options))
    assert needle in line


@pytest.mark.parametrize(
    "extra,needle",
    [
        ("size_mb: .nan", "size_mb"),  # passed `abs(size - table) > tol`: exit 0
        ("reservation_mb: .nan", "reservation_mb"),  # passed `res < 0 or res > size`: exit 0
        ("shares: -5", "shares"),  # reached the allocator: exit 0
        ("shares: 0", "shares"),
        ("shares: lots", "shares"),  # ValueError traceback
        ("limit_mb: x", "limit_mb"),  # ValueError traceback
        ("activity: true", "activity"),  # read as active:1
    ],
)
def test_vm_file_values_of_the_wrong_type_or_range_are_one_line(dumps, tmp_path, extra, needle):
    (_, table), _ = dumps
    vms = tmp_path / "vms.yaml"
    vms.write_text(f"- {{pages: {table}, {extra}}}\n")
    line = one_line_error(cli("host", "--vms", str(vms), "--memory", "1G", "-q"))
    assert "host VM #1" in line and needle in line


@pytest.mark.parametrize("value", ["5", "[a.parquet]"])
def test_vm_file_pages_that_is_not_a_file_name_is_one_line(tmp_path, value):
    vms = tmp_path / "vms.yaml"
    vms.write_text(f"- {{pages: {value}}}\n")
    line = one_line_error(cli("host", "--vms", str(vms), "--memory", "1G", "-q"))
    assert "pages: expected a file name" in line


@pytest.mark.parametrize(
    "command,options",
    [
        (["scan"], ["--rate-vm", "nan"]),  # nothing shared, exit 0
        (["scan"], ["--rate-total", "inf"]),
        (["scan"], ["--seed", "-1"]),  # ValueError traceback
        (["compress"], ["--esxi-cache-pct", "-5"]),  # a cache of -0.0 MiB, every page swapped, exit 0
        (["compress"], ["--esxi-cache-pct", "150"]),  # a cache larger than the VM
        (["compress"], ["--esxi-cache-pct", "nan"]),  # ValueError traceback
        (["compress"], ["--threads", "-1"]),  # ValueError traceback
    ],
)
def test_absurd_numeric_options_are_refused_by_the_parser(dumps, command, options):
    (dump, table), _ = dumps
    proc = cli(*command, str(table if command == ["scan"] else dump), *options)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert options[0] in proc.stderr


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_compress_sample_must_be_finite(dumps, value):
    """`--sample nan` and `--sample inf` silently became an exact run."""
    (dump, _), _ = dumps
    line = one_line_error(cli("compress", str(dump), "--sample", value))
    assert "--sample must be a finite number" in line


def test_scanner_settings_refuse_nan_rates():
    from pagecore.sharing.scanner import ScannerSettings

    for bad in ({"scan_rate_vm": float("nan")}, {"scan_rate_total": float("nan")}, {"tick_s": float("nan")}):
        with pytest.raises(ValueError):
            ScannerSettings(**bad)


# ------------------------------------------------------------------------------ dump readers
def test_a_cut_or_corrupt_vmware_checkpoint_is_one_line_never_struct_error(tmp_path):
    """A .vmss cut inside a tag of its memory group, or with a tag whose name length points past
    the group, raised struct.error (a traceback) instead of naming the problem."""
    from pagecore.dumps import open_dump
    from pagecore.dumps.vmware import write_vmware
    from pagecore.errors import InputError

    pages = np.arange(8 * 4096, dtype=np.uint32).astype(np.uint8).reshape(8, 4096)
    vmss = write_vmware(tmp_path / "g.vmem", [(0, 0, 4), (6, 4, 4)], pages)
    data = vmss.read_bytes()
    cases = [data[:cut] for cut in range(12, len(data))]
    for at in range(12, len(data)):
        b = bytearray(data)
        b[at] = 0xFF  # a tag flag or name length of 255: its name or data reach past the group
        cases.append(bytes(b))
    for case in cases:
        vmss.write_bytes(case)
        try:
            with open_dump(vmss, "vmware") as r:
                for _ in r:
                    pass
        except InputError:
            pass


# ------------------------------------------------------------------------------ share options
def test_two_salts_for_one_vm_are_refused(dumps):
    """`--salt g0=1 --salt g0=2` kept the last one silently."""
    (_, table), _ = dumps
    line = one_line_error(cli("share", str(table), "--salting", "2", "--salt", "g0=1", "--salt", "g0=2"))
    assert "two salts" in line


def test_a_salt_without_salting_is_refused(dumps):
    """`--salt g0=1` without --salting was ignored without a word (session 17 audit)."""
    (_, table), _ = dumps
    line = one_line_error(cli("share", str(table), "--salt", "nosuchvm=1"))
    assert "--salting" in line


@pytest.mark.parametrize("command", [["share"], ["host", "--memory", "1G", "-q"]])
def test_a_dump_dir_that_is_not_a_directory_is_refused(dumps, tmp_path, command):
    """A mistyped --dump-dir was ignored without a word."""
    (_, table), _ = dumps
    line = one_line_error(cli(command[0], str(table), *command[1:], "--dump-dir", str(tmp_path / "nowhere")))
    assert "--dump-dir" in line and "no such directory" in line


# ------------------------------------------------------------------------------ page tables that lie
def _edited(table_path, out, edit):
    import pyarrow.parquet as pq

    t = pq.read_table(table_path)
    pq.write_table(edit(t), out)
    return out


@pytest.mark.parametrize(
    "edit,needle",
    [
        (lambda t: t.slice(0, 0), "no pages"),  # share: a report of 0 pages, exit 0
        (lambda t: t.slice(0, 20), "metadata records 24 pages"),  # a cut table: 20 pages reported
        (
            lambda t: t.set_column(3, t.schema.field(3), pa_array([True] * t.num_rows)),
            "zero column",  # every page reported zero, also after verification
        ),
    ],
)
def test_page_tables_that_contradict_themselves_are_refused(dumps, tmp_path, edit, needle):
    (_, table), (_, other) = dumps
    bad = _edited(table, tmp_path / "bad.parquet", edit)
    line = one_line_error(cli("share", str(bad)))
    assert needle in line
    line = one_line_error(cli("share", str(bad), str(other)))  # with another: IndexError traceback
    assert needle in line


def test_a_page_table_of_other_page_size_is_refused_alone(dumps, tmp_path):
    import json

    (_, table), _ = dumps

    def edit(t):
        meta = json.loads(t.schema.metadata[b"pagecore"])
        meta["page_size"] = 8192
        return t.replace_schema_metadata({**t.schema.metadata, b"pagecore": json.dumps(meta)})

    bad = _edited(table, tmp_path / "bad.parquet", edit)
    assert "page_size 8192" in one_line_error(cli("share", str(bad)))


def pa_array(values):
    import pyarrow as pa

    return pa.array(values)


# ------------------------------------------------------------------------------ synth
@pytest.mark.parametrize(
    "options,code",
    [
        (["--mem-mb", "0"], 2),  # ValueError traceback
        (["--mem-mb", "nan"], 2),
        (["--mem-mb", "inf"], 2),  # OverflowError traceback
        (["--zero", "1.5"], 2),
        (["--seed", "-1"], 2),
        (["--zero", "0.6", "--common", "0.6"], 1),  # fractions summing past 1: ValueError traceback
        (["--mem-mb", "0.001"], 1),  # a guest of no pages: ValueError traceback
    ],
)
def test_synth_fig04_absurd_options_are_one_line_and_write_nothing(tmp_path, options, code):
    out = tmp_path / "guests"
    proc = cli("synth", "fig04", "-o", str(out), "--vms", "2", "--mem-mb", "1", *options)
    assert proc.returncode == code and "Traceback" not in proc.stderr, proc.stderr
    assert not out.exists() or not list(out.iterdir())


# ------------------------------------------------------------------------------ live
@pytest.mark.parametrize("options", [["--max-mb-per-s", "-1"], ["--max-mb-per-s", "nan"], ["--interval", "nan"]])
def test_live_rate_limit_and_interval_must_be_finite(tmp_path, options):
    """A negative or NaN --max-mb-per-s read the guest unthrottled (the pacer's wait was never
    positive); --interval nan reached time.sleep (ValueError)."""
    proc = cli("live", "--pid", "1", "-o", str(tmp_path / "out"), *options)
    assert proc.returncode == 2 and options[0] in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("rate", [-1.0, float("nan"), float("inf")])
def test_the_live_pacer_refuses_a_rate_that_would_not_throttle(rate):
    from pagecore.qemu.live import _Pacer

    with pytest.raises(ValueError, match="read rate limit"):
        _Pacer(rate)


def test_an_output_ending_with_a_slash_is_refused(dumps, tmp_path):
    """`-o new/` wrote a page table named `new`, where the user meant a directory."""
    (dump, _), _ = dumps
    line = one_line_error(cli("hash", str(dump), "-o", str(tmp_path / "new") + "/"))
    assert "ends with /" in line
    assert not (tmp_path / "new").exists()


def test_forcing_raw_on_a_dump_of_another_format_is_loud(tmp_path):
    """An ELF core cut to whole pages hashed with --format raw gave a confident table of its
    headers and shifted pages, without a word."""
    elf = write_dump("elf", tmp_path / "g.elf", np.arange(8), make_pages(8))
    cut = tmp_path / "g.bin"
    cut.write_bytes(elf.read_bytes()[: 8 * 4096])
    proc = cli("hash", str(cut), "--format", "raw", "-q", "-o", str(tmp_path / "g.parquet"))
    assert proc.returncode == 0 and "WARNING" in proc.stderr and "say elf" in proc.stderr
    raw = tmp_path / "r.raw"
    raw.write_bytes(make_pages(8).tobytes())
    proc = cli("hash", str(raw), "--format", "raw", "-q", "-o", str(tmp_path / "r.parquet"))
    assert proc.returncode == 0 and not proc.stderr


# ------------------------------------------------------------------------------ compress inputs
@pytest.mark.parametrize("pair", ["dump,dump", "dump,hardlink", "dump,table", "table,table-other-vm"])
def test_compress_refuses_one_guest_given_twice(dumps, tmp_path, pair):
    """Each of these counted one guest's pages twice (zram sizes and the sharing ladder), exit 0."""
    (dump, table), _ = dumps
    link = tmp_path / "link.raw"
    link.hardlink_to(dump)
    other = tmp_path / "other.parquet"
    hash_dump(dump, other, "other", show_progress=False)
    inputs = {"dump,dump": [dump, dump], "dump,hardlink": [dump, link], "dump,table": [dump, table],
              "table,table-other-vm": [table, other]}[pair]  # fmt: skip
    line = one_line_error(cli("compress", *map(str, inputs), "--format", "json"))
    assert "same guest" in line


def test_compress_refuses_a_keyed_table_beside_a_dump(dumps, tmp_path):
    """A keyed table's hashes never meet a dump's (hashed with the default key): no sharing
    between them was found, exit 0."""
    from pagecore.pages.hashing import PageKey

    (dump, _), (other_dump, _) = dumps
    keyed = tmp_path / "keyed.parquet"
    hash_dump(dump, keyed, "k", key=PageKey.from_secret(b"secret"), compress=("lzo-rle",), show_progress=False)
    line = one_line_error(cli("compress", str(keyed), str(other_dump), "--format", "json"))
    assert "hash_key_id" in line


def test_compress_of_two_copies_is_two_guests(dumps, tmp_path):
    (dump, _), _ = dumps
    copy = tmp_path / "copy.raw"
    copy.write_bytes(dump.read_bytes())
    proc = cli("compress", str(dump), str(copy), "--format", "json")
    assert proc.returncode == 0, proc.stderr


# ------------------------------------------------------------------------------ other inputs
@pytest.mark.parametrize("command", ["hash", "share"])
def test_the_key_file_is_an_input_never_an_output(dumps, tmp_path, command):
    """`-o` naming the --key-file replaced the secret key with the output, exit 0: every table
    keyed with it could no longer be verified."""
    (dump, _), _ = dumps
    key = tmp_path / "key.bin"
    key.write_bytes(b"a secret of some length")
    keyed = tmp_path / "keyed.parquet"
    from pagecore.pages.hashing import PageKey

    hash_dump(dump, keyed, "g0", key=PageKey.from_file(key), show_progress=False)
    args = {"hash": ["hash", str(dump)], "share": ["share", str(keyed), "--format", "json"]}[command]
    line = one_line_error(cli(*args, "--key-file", str(key), "-o", str(key)))
    assert "output is the input" in line
    assert key.read_bytes() == b"a secret of some length"


def test_the_host_config_is_an_input_never_an_output(dumps, tmp_path):
    from pagecore.config import default_config_path

    (_, table), _ = dumps
    cfg = tmp_path / "config.yaml"
    cfg.write_text(default_config_path().read_text())
    before = cfg.read_bytes()
    line = one_line_error(cli("host", str(table), "--memory", "1G", "-q", "--config", str(cfg), "-o", str(cfg)))
    assert "output is the input" in line
    assert cfg.read_bytes() == before


def test_a_host_memory_range_of_a_million_sizes_is_refused(dumps):
    """`--memory 1M:1T:1M` built a million host sizes, each a full consolidation search: a run of
    hours instead of an error."""
    (_, table), _ = dumps
    line = one_line_error(cli("host", str(table), "-q", "--memory", "1M:1T:1M"))
    assert "host sizes" in line and "STEP" in line


# ------------------------------------------------------------------------------ interrupted runs
def test_all_or_nothing_renames_every_output_or_none(tmp_path):
    from pagecore._util import all_or_nothing, atomic_path

    with pytest.raises(KeyboardInterrupt), all_or_nothing():
        with atomic_path(tmp_path / "a.txt") as tmp:
            tmp.write_text("a")
        raise KeyboardInterrupt
    assert not list(tmp_path.iterdir())  # neither the output nor a temporary
    with all_or_nothing():
        for name in ("a.txt", "b.txt"):
            with atomic_path(tmp_path / name) as tmp:
                tmp.write_text(name)
        assert not (tmp_path / "a.txt").exists()  # not before the block ends
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]


def test_host_interrupted_while_plotting_leaves_no_report(dumps, tmp_path, monkeypatch):
    """Ctrl-C while the plot was drawn left the report and timelines in place, and the command
    said "no output written"."""
    import pagecore.plotting
    from pagecore.cli import main

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pagecore.plotting, "save_figure_file", interrupted)
    (_, t0), (_, t1) = dumps
    out = tmp_path / "out"
    code = main(["host", str(t0), str(t1), "-q", "--memory", "1G", "--format", "parquet", "-o", str(out / "r.parquet"),
                 "--timelines", str(out / "t.parquet"), "--plot", str(out / "p.png")])  # fmt: skip
    assert code == 130
    assert not out.exists() or not list(out.iterdir())


def test_a_key_file_is_read_bounded(tmp_path):
    """`--key-file /dev/zero` read without end until the kernel killed the process; a dump named
    as the key file was read whole and used as the key."""
    from pagecore.errors import ConfigError
    from pagecore.pages.hashing import MAX_KEY_FILE_BYTES, PageKey

    big = tmp_path / "dump.raw"
    big.write_bytes(b"k" * (MAX_KEY_FILE_BYTES + 1))
    with pytest.raises(ConfigError, match="longer than"):
        PageKey.from_file(big)  # first: a regression fails here, before reading /dev/zero
    with pytest.raises(ConfigError, match="longer than"):
        PageKey.from_file("/dev/zero")
    ok = tmp_path / "key"
    ok.write_bytes(b"k" * MAX_KEY_FILE_BYTES)
    assert PageKey.from_file(ok).keyed


def test_ksm_sleep_0_is_refused_not_reported_as_0_seconds(dumps):
    """`ksm --sleep-ms 0` printed seconds_to_converge 0.00 (the emulated scan costs no time)."""
    (_, table), _ = dumps
    line = one_line_error(cli("ksm", str(table), "--sleep-ms", "0"))
    assert "--sleep-ms 0" in line


@pytest.mark.parametrize("aligned", [False, True])
def test_hash_says_when_pages_are_only_partly_in_the_dump(tmp_path, aligned):
    """ELF segments whose edges are not on a page boundary: the missing bytes are read as zeros,
    which `pagecore hash` says even with --quiet (and says nothing when every page is whole)."""
    from pagecore.dumps.elf import write_elf

    data = np.random.default_rng(2).integers(0, 256, 3 * 4096, dtype=np.uint8)
    start = 4096 if aligned else 4096 + 0x800
    path = write_elf(tmp_path / "u.elf", [(start, data)], align=8)
    proc = cli("hash", str(path), "-o", str(tmp_path / "u.parquet"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    if aligned:
        assert proc.stderr == ""
    else:
        assert "2 pages only partly present" in proc.stderr and "read as zeros" in proc.stderr


# ------------------------------------------------------------------------------ session 9, second pass
def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _host_env(tmpdir):
    return {**os.environ, "TMPDIR": str(tmpdir)}


def test_host_hashes_dumps_in_a_run_directory_it_removes(dumps, tmp_path):
    """`host DUMP` hashed into `$TMPDIR/pagecore-host-<pid>-<i>.parquet`: nothing else knew the
    name, so a SIGKILLed run left it for good. Now a run directory is removed on the way out
    (success and error alike)."""
    (d0, _), (d1, _) = dumps
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    ok = cli("host", str(d0), str(d1), "--memory", "1G", "-q", "--format", "json", env=_host_env(tmp))
    assert ok.returncode == 0, ok.stderr
    bad = tmp_path / "bad.raw"
    bad.write_bytes(b"x" * 5000)  # not a dump: the second VM fails after the first was hashed
    err = cli("host", str(d0), str(bad), "--memory", "1G", "-q", env=_host_env(tmp))
    assert err.returncode == 1 and "Traceback" not in err.stderr
    assert list(tmp.iterdir()) == []


def test_host_removes_what_a_killed_run_left_and_nothing_of_a_live_one(dumps, tmp_path):
    """Temporaries of a SIGKILLed `host` run (its PID gone) are removed by the next run, one line
    each; a directory of a live process, or whose lock a live process holds, stays."""
    (d0, _), _ = dumps
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    dead = _dead_pid()
    stale_dir = tmp / f"pagecore-host-{dead}-abc123_x"
    stale_dir.mkdir()
    (stale_dir / ".lock").write_bytes(b"")
    (stale_dir / "vm0.parquet").write_bytes(b"PAR1 half a table")
    legacy = tmp / f"pagecore-host-{dead}-0.parquet"  # the name older versions used
    legacy.write_bytes(b"PAR1 half a table")
    live = subprocess.Popen(["sleep", "60"])
    try:
        live_dir = tmp / f"pagecore-host-{live.pid}-def456"
        live_dir.mkdir()
        live_file = tmp / f"pagecore-host-{live.pid}-1.parquet"
        live_file.write_bytes(b"PAR1")
        locked = tmp / f"pagecore-host-{_dead_pid()}-locked"  # PID gone (another namespace?), lock held
        locked.mkdir()
        fd = os.open(locked / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        other = tmp / "pagecore-host-notes.txt"  # not ours by name
        other.write_text("keep")
        proc = cli("host", str(d0), "--memory", "1G", "-q", "--format", "json", env=_host_env(tmp))
        assert proc.returncode == 0, proc.stderr
        assert not stale_dir.exists() and not legacy.exists()
        for p in (stale_dir, legacy):
            assert f"removed {p}, left by an interrupted run" in proc.stderr
        assert live_dir.is_dir() and live_file.is_file() and locked.is_dir() and other.is_file()
        assert sorted(p.name for p in tmp.iterdir()) == sorted(p.name for p in (live_dir, live_file, locked, other))
    finally:
        live.kill()
        live.wait()
    os.close(fd)


def test_two_dumps_that_are_one_file_are_named_as_dumps(dumps, tmp_path):
    """`host a.raw hardlink.raw` said "the same page table is given twice"."""
    (d0, t0), _ = dumps
    link = tmp_path / "link.raw"
    link.hardlink_to(d0)
    line = one_line_error(cli("host", str(d0), str(link), "--memory", "1G", "-q"))
    assert "the same dump is given twice" in line
    t_link = tmp_path / "tlink.parquet"
    t_link.hardlink_to(t0)
    line = one_line_error(cli("share", str(t0), str(t_link)))
    assert "the same page table is given twice" in line


@pytest.mark.parametrize("how", ["file", "env"])
def test_a_short_key_is_refused(dumps, tmp_path, how):
    """Every keyed table stores a 48-bit digest of the raw secret (`hash_key_id`): a 5-byte key
    was accepted, and is found by guessing against the table."""
    (dump, _), _ = dumps
    out = tmp_path / "k.parquet"
    key = tmp_path / "key"
    key.write_text("short\n")
    opt = ["--key-file", str(key)] if how == "file" else ["--key-env", "PC_TEST_SHORT_KEY"]
    env = {**os.environ, "PC_TEST_SHORT_KEY": "short"}
    proc = cli("hash", str(dump), "-o", str(out), "-q", *opt, env=env)
    line = one_line_error(proc)
    assert "holds 5 bytes" in line and "at least 16" in line
    assert not out.exists()
    key.write_text("0123456789abcdef\n")  # 16 bytes: enough
    env["PC_TEST_SHORT_KEY"] = "0123456789abcdef"
    proc = cli("hash", str(dump), "-o", str(out), "-q", *opt, env=env)
    assert proc.returncode == 0, proc.stderr


def test_host_vm_counts_are_bounded(dumps):
    """`host --max-vms 100000000 --memory 1T` on a 40-page VM ran for CPU-minutes (the search
    doubled N up to 65,536 VMs of 16 MiB overhead, each evaluation Python work per VM)."""
    from pagecore.cli.host import MAX_VMS as CLI_MAX_VMS
    from pagecore.errors import ConfigError
    from pagecore.experiments.host import MAX_VMS, HostSettings

    assert CLI_MAX_VMS == MAX_VMS == 16384
    for key in ("max_vms", "emulate_vms"):  # config and library: fails at once on the old code
        with pytest.raises(ConfigError, match=rf"{key} must be in \[1, 16,384\]"):
            HostSettings(**{key: 100_000_000})
        HostSettings(**{key: MAX_VMS})
    (_, table), _ = dumps
    for opt in ("--max-vms", "--emulate-vms"):
        proc = cli("host", str(table), "--memory", "1T", "-q", opt, "100000000")
        assert proc.returncode == 2 and opt in proc.stderr and "16,384" in proc.stderr, proc.stderr


@pytest.mark.parametrize("option", ["emulate", "search"])
def test_host_refuses_a_mix_over_the_page_bound(dumps, monkeypatch, option):
    """A mix is materialised page by page (31 bytes a page): 4,096 copies of a 4 GiB VM would
    need half a TiB of working memory; refused naming the option and what would pass."""
    import pagecore.experiments.host as host
    from pagecore.errors import ConfigError

    (_, t0), (_, t1) = dumps  # 24 pages each
    monkeypatch.setattr(host, "MAX_MIX_PAGES", 24 * 10)
    vms = host.load_vms([{"pages": str(t0)}, {"pages": str(t1)}])
    settings = host.HostSettings(memory_mb=[1024.0], policies=("esx2002",), verify="no",
                                 **({"emulate_vms": 11} if option == "emulate" else {"max_vms": 256}))  # fmt: skip
    opt = "--emulate-vms" if option == "emulate" else r"--max-vms \(host.max_vms\)"
    with pytest.raises(ConfigError, match=rf"a mix of \d+ of these VMs holds \d+ pages .* give {opt} 10 or less"):
        host.host_report(vms, settings)
    assert host.mix_pages(vms, 10) == 240 and host.mix_pages(vms, 11) == 264


def test_host_says_when_the_answer_is_only_max_vms(dumps):
    """With every VM fitting up to --max-vms, `fit` printed --max-vms as the largest number that
    fits, with no word that the search stopped there. Also: 1 TiB was printed 1.04858e+06 MiB."""
    import json

    (_, t0), (_, t1) = dumps
    proc = cli("host", str(t0), str(t1), "--memory", "1T", "-q", "--max-vms", "3", "--policy", "esx2002",
               "--format", "json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    fit = json.loads(proc.stdout)["fits"][0]
    assert fit["vms_fit"] == 3 and fit["at_max_vms"] is True
    assert "at least this many fit" in fit["notes"][0]
    proc = cli("host", str(t0), str(t1), "--memory", "1T", "-q", "--max-vms", "3", "--policy", "esx2002")
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("esx2002"))
    assert row.split()[1:3] == ["1048576", "3+"], row
    proc = cli("host", str(t0), str(t1), "--memory", "64M", "-q", "--max-vms", "256", "--policy", "esx2002",
               "--format", "json")  # fmt: skip
    fit = json.loads(proc.stdout)["fits"][0]
    assert 0 < fit["vms_fit"] < 256 and fit["at_max_vms"] is False


def test_the_numba_cache_fallback_is_one_private_directory_per_user(tmp_path, monkeypatch):
    """With the install and home read-only, every run made a new `$TMPDIR/pagecore-numba-cache-*`
    and left it (recompiling every kernel); now one per user is reused, but only when it is a
    directory of this user that no one else can write."""
    import tempfile

    import pagecore

    monkeypatch.setenv("NUMBA_CACHE_DIR", "set")
    monkeypatch.delenv("NUMBA_CACHE_DIR")  # restored after the test
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    numba = sys.modules.get("numba")
    if numba is not None:
        monkeypatch.setattr(numba.config, "CACHE_DIR", numba.config.CACHE_DIR)

    def fallback():
        os.environ.pop("NUMBA_CACHE_DIR", None)
        return pagecore._numba_cache_fallback()

    first, second = fallback(), fallback()
    assert first == second == str(tmp_path / f"pagecore-numba-cache-{os.getuid()}")
    assert os.stat(first).st_mode & 0o777 == 0o700
    os.chmod(first, 0o777)  # writable by others: not trusted
    third = fallback()
    assert third != first and os.path.dirname(third) == str(tmp_path)
    os.rmdir(third)
    os.chmod(first, 0o700)
    os.rmdir(first)
    os.symlink(tmp_path / "elsewhere", first)  # a link planted under the name: not followed
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    fourth = fallback()
    assert fourth != first and os.path.dirname(fourth) == str(tmp_path)


def test_synth_fig04_refuses_before_filling_the_disk(tmp_path, monkeypatch, capsys):
    """`synth fig04 --vms N --mem-mb M` wrote guests (all kept until the last is done) until the
    disk was full, for every other process on it too, then removed them: refused up front."""
    import shutil

    from pagecore.cli import main

    out = tmp_path / "new" / "guests"
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=2 * 256 * 4096))  # 2 MiB free
    assert main(["synth", "fig04", "-o", str(out), "--vms", "3", "--mem-mb", "1"]) == 1  # 3 MiB
    err = capsys.readouterr().err
    assert "3 guests of 256 pages need 3.0 MiB" in err and "has 2.0 MiB free" in err and "--vms" in err
    assert not out.exists() or not list(out.iterdir())
    assert main(["synth", "fig04", "-o", str(out), "--vms", "2", "--mem-mb", "1"]) == 0  # 2 MiB: fits
    assert sorted(p.name for p in out.iterdir()) == ["vm01.raw", "vm02.raw"]


def test_one_vmware_guest_hashed_through_its_vmem_and_its_vmss_is_refused(tmp_path):
    """A VMware guest is read through either of its two files: `hash g.vmem --vm a` and `hash
    g.vmss --vm b` recorded different source files, so `share` counted every page as shared
    between two VMs, exit 0 (session 18 audit; the pipeline already refused it)."""
    from pagecore.dumps.vmware import write_vmware

    rng = np.random.default_rng(7)
    write_vmware(tmp_path / "g.vmem", [(0, 0, 16)], rng.integers(0, 256, (16, 4096), dtype=np.uint8))
    for src, vm in (("g.vmem", "a"), ("g.vmss", "b")):
        proc = cli("hash", str(tmp_path / src), "--vm", vm, "-o", str(tmp_path / f"{vm}.parquet"), "-q")
        assert proc.returncode == 0, proc.stderr
    line = one_line_error(cli("share", str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")))
    assert "same dump" in line
    # two guests' files are two guests
    write_vmware(tmp_path / "h.vmem", [(0, 0, 16)], rng.integers(0, 256, (16, 4096), dtype=np.uint8))
    proc = cli("hash", str(tmp_path / "h.vmss"), "--vm", "c", "-o", str(tmp_path / "c.parquet"), "-q")
    assert proc.returncode == 0, proc.stderr
    proc = cli("share", str(tmp_path / "a.parquet"), str(tmp_path / "c.parquet"), "--format", "json")
    assert proc.returncode == 0, proc.stderr
