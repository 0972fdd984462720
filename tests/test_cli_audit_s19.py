"""Session 19's audit of `synth`, `import`, `ksm`, `scan` and `compress` as a careless or
hostile user runs them: each test is a case that once gave a traceback, a wrong number with
exit 0 or a seed that was not honoured, built from the command line that showed it.
"""

from __future__ import annotations

import numpy as np
import pytest
from cli_helpers import cli, one_line_error, one_line_error_text
from cli_helpers import tag_page as _page

from pagecore.cli import main

# three VMs of four pages, counted by hand: vm1 = A A B 0, vm2 = A C 0 0, vm3 = A B D E
TINY = {"vm1": [1, 1, 2, 0], "vm2": [1, 3, 0, 0], "vm3": [1, 2, 4, 5]}



@pytest.fixture(scope="module")
def tiny_tables(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    out = []
    for name, tags in TINY.items():
        raw = d / f"{name}.raw"
        raw.write_bytes(b"".join(_page(t) for t in tags))
        table = d / f"{name}.parquet"
        assert main(["hash", "-q", str(raw), "-o", str(table)]) == 0
        out.append(str(table))
    return out


# ------------------------------------------------------------------------------ ksm / scan
def test_hand_counted_tiny_set(tiny_tables, capsys):
    """The counts of the three VMs, by hand: contents A ×4, 0 ×3, B ×2, C, D, E. KSM (smart
    scan off, so unique pages sit in the unstable tree): 3 KSM pages, 6 further mappings, 3
    unshared; with use_zero_pages the 3 zero pages go to the zero page instead. The ESX scanner:
    9 pages shared, 6 reclaimed."""
    import json

    assert main(["ksm", *tiny_tables, "--no-smart-scan", "--format", "json"]) == 0
    k = json.loads(capsys.readouterr().out)
    assert (k["pages_shared"], k["pages_sharing"], k["pages_unshared"], k["pages_volatile"]) == (3, 6, 3, 0)
    assert main(["ksm", *tiny_tables, "--no-smart-scan", "--use-zero-pages", "--format", "json"]) == 0
    k = json.loads(capsys.readouterr().out)
    assert (k["pages_shared"], k["pages_sharing"], k["pages_unshared"], k["ksm_zero_pages"]) == (2, 4, 3, 3)
    assert main(["scan", *tiny_tables, "--format", "json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["shared_pages"], s["reclaimed_pages"]) == (9, 6)


@pytest.mark.parametrize(
    "option,value",
    [("--pages-to-scan", str(2**64)), ("--max-page-sharing", str(2**64)), ("--sleep-ms", str(2**64))],
)
def test_ksm_knobs_past_their_sysfs_type_are_usage_errors(tiny_tables, option, value):
    """`ksm --pages-to-scan 99999999999999999999` was an OverflowError traceback from inside the
    emulator (and --sleep-ms 1e20 a convergence time of 1e17 s): the kernel parses these knobs as
    unsigned int / int, so larger values are refused by the argument parser."""
    proc = cli("ksm", tiny_tables[0], option, value)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"argument {option}" in proc.stderr


def test_ksm_settings_refuse_values_past_the_kernels_types():
    from pagecore.sharing.ksm import KsmSettings

    for kw in ({"pages_to_scan": 2**32}, {"sleep_millisecs": 2**32}, {"max_page_sharing": 2**31}):
        with pytest.raises(ValueError, match="must be in"):
            KsmSettings(**kw)
    KsmSettings(pages_to_scan=2**32 - 1, sleep_millisecs=2**32 - 1, max_page_sharing=2**31 - 1)


def test_scan_hash_bits_below_the_hint_bits_names_the_option(tiny_tables):
    """`scan --hash-bits 16` (or 0, or 100) said "need 1 <= hint_hash_bits <= hash_bits <= 64",
    naming a setting the command line does not have."""
    for bits in ("16", "0", "100"):
        proc = cli("scan", tiny_tables[0], "--hash-bits", bits)
        assert proc.returncode == 2 and "argument --hash-bits" in proc.stderr, proc.stderr


def test_scan_at_a_rate_that_cannot_converge_is_refused(tiny_tables, capsys):
    """`scan --rate-vm 1e-300` ticked to the emulator's 10^7 s limit (13 s, a timeline of 10^7
    rows) and printed 0 pages shared, converged at 0.00 s, exit 0."""
    assert main(["scan", *tiny_tables, "--rate-vm", "1e-300"]) == 1
    line = one_line_error_text(capsys)
    assert "raise the scan rates" in line and "1e-300 pages/s" in line



def test_scanner_says_whether_it_settled():
    from pagecore.sharing.pagehistory import PageHistory
    from pagecore.sharing.scanner import EsxScanner, ScannerSettings

    h = PageHistory.from_pages(np.array([1, 1, 2, 3] * 50, np.uint64), np.zeros(200, bool), np.zeros(200), ["a"])
    st = ScannerSettings(scan_rate_vm=10, scan_rate_total=10)
    assert EsxScanner(h, st).run().settled
    assert not EsxScanner(h, st).run(until_s=3.0).settled  # 30 of 200 pages scanned
    with pytest.raises(ValueError, match="raise the scan rates"):
        EsxScanner(h, st).check_can_settle(max_s=5.0)
    EsxScanner(h, st).check_can_settle(max_s=20.0)  # 200 pages at 10 per second
    assert not EsxScanner(h, st).run(max_s=5.0).settled


def test_lifetimes_of_one_read_per_guest_is_one_line(tiny_tables, tmp_path, capsys):
    """`ksm vm1 vm2 --series --interval 5 --lifetimes L.csv` (one read of each guest) was a
    ValueError traceback from series_lifetimes, after the whole emulation."""
    out = tmp_path / "l.csv"
    for cmd in ("ksm", "scan"):
        assert main([cmd, *tiny_tables[:2], "--series", "--interval", "5", "--lifetimes", str(out)]) == 1
        assert "--lifetimes needs at least two reads" in one_line_error_text(capsys)
    assert not out.exists()


def test_series_interval_below_the_read_time_resolution_is_refused(tmp_path, capsys):
    """Three reads of one VM at --interval 1e-7: read times are kept to the microsecond, so the
    three collapsed into one (the report said "last at 0.0 s") and --lifetimes was a traceback."""
    reads = []
    for i, tags in enumerate(TINY.values()):
        raw = tmp_path / f"r{i}.raw"
        raw.write_bytes(b"".join(_page(t) for t in tags))
        reads.append(str(tmp_path / f"r{i}.parquet"))
        assert main(["hash", "-q", str(raw), "--vm", "g", "-o", reads[-1]]) == 0
    out = tmp_path / "l.csv"
    assert main(["scan", *reads, "--series", "--interval", "1e-7", "--lifetimes", str(out)]) == 1
    assert "--interval must be at least 1e-06 s" in one_line_error_text(capsys)
    assert main(["scan", *reads, "--series", "--interval", "1e-6", "--lifetimes", str(out)]) == 0
    assert "series: 3 reads" in capsys.readouterr().out and out.exists()


def test_lifetimes_of_three_reads_counted_by_hand(tmp_path, capsys):
    """Three reads of one guest 10 s apart: A A B 0, then A C 0 0, then A B D E. By hand: A's
    two copies are duplicates from 0 s until 10 s (one changes), the two zero pages from 10 s
    until 20 s: four episodes of 10 s, so none outlives 10 s. The read times kept only the first
    and the last read (a comprehension read the loop's last `t`): [0, 20] for three reads, so
    every episode looked 20 s long and survival at 10 s was 1 where it is 0, exit 0."""
    import json

    import pandas as pd

    reads = []
    for i, tags in enumerate(TINY.values()):
        raw = tmp_path / f"r{i}.raw"
        raw.write_bytes(b"".join(_page(t) for t in tags))
        reads.append(str(tmp_path / f"r{i}.parquet"))
        assert main(["hash", "-q", str(raw), "--vm", "g", "-o", reads[-1]]) == 0
    out = tmp_path / "l.csv"
    assert main(["ksm", *reads, "--series", "--interval", "10", "--lifetimes", str(out), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["series"]["read_times_s"] == [0.0, 10.0, 20.0]
    surv = pd.read_csv(out).query("table == 'survival'")
    assert surv["x"].tolist() == [0.0, 10.0] and surv["fraction"].tolist() == [1.0, 0.0]


# ------------------------------------------------------------------------------ synth
def test_seeds_that_differ_above_the_low_byte_give_other_contents():
    """`synth fig04 --seed 0` and `--seed 256` wrote the same pages in another order (only the
    seed's low 8 bits reached the content ids): `share` of one guest of each found every page
    shared, 50 % saved, where two seeds should share only zero pages."""
    from pagecore.synth.fig04 import Fig04Model

    a = Fig04Model(mem_mb=1, zero=0.1, intra_dup=0.1, intra_dup_groups=0.05, common=0.3, variant=0.2, seed=0)
    b = Fig04Model(**{**a.__dict__, "seed": 256})
    c = Fig04Model(**{**a.__dict__, "seed": 2**32})
    ha, za = a.page_table(0)[1:]
    for m in (b, c):
        hb, zb = m.page_table(0)[1:]
        assert set(ha[~za].tolist()).isdisjoint(hb[~zb].tolist())


def test_seed_fix_keeps_every_sharing_count():
    """The fix XORs one constant into every content id of a seed: ids equal before are equal
    after, so no sharing number of a guest set changes (seeds below 256 keep their ids)."""
    from pagecore.synth.fig04 import COMMON, PRIVATE, _content_id

    idx = np.arange(1000)
    for seed in (20021209, 256, 2**40 + 7):
        for cls, vm in ((COMMON, 0), (PRIVATE, 3), (PRIVATE, 2**20 + 3)):
            new = _content_id(seed, cls, vm, idx)
            low = _content_id(seed & 0xFF, cls, vm & 0xFFFFF, idx)  # the ids the old code gave
            assert len(set((new ^ low).tolist())) == 1 and (new != 0).all()
    old_style = (
        (np.uint64((5 << 24 | COMMON << 20) & 0xFFFFFFFF) << np.uint64(32))
        ^ (idx.astype(np.uint64) + np.uint64(1))
        ^ np.uint64(1 << 63)
    )
    assert (_content_id(5, COMMON, 0, idx) == old_style).all()


def test_vm_numbers_past_20_bits_get_their_own_private_pages():
    from pagecore.synth.fig04 import PRIVATE, _content_id

    idx = np.arange(100)
    assert set(_content_id(0, PRIVATE, 1, idx).tolist()).isdisjoint(_content_id(0, PRIVATE, 1 + 2**20, idx).tolist())


def test_synth_variants_past_the_bound_is_a_usage_error(tmp_path):
    """`synth fig04 --variants 10000000000000000000` was a numpy ValueError traceback ("high is
    out of bounds for int64") from the draw of each slot's version."""
    proc = cli("synth", "fig04", "-o", str(tmp_path / "g"), "--vms", "1", "--mem-mb", "1", "--variants", str(2**63))
    assert proc.returncode == 2 and "argument --variants" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "g" / "vm01.raw").exists()
    from pagecore.synth.fig04 import MAX_VARIANTS, Fig04Model

    with pytest.raises(ValueError, match="variants must be in"):
        Fig04Model(mem_mb=1, variant=0.5, variants=MAX_VARIANTS + 1)
    Fig04Model(mem_mb=1, variant=0.5, variants=MAX_VARIANTS).layout(0)


def test_guest_names_with_one_content_tag_are_refused():
    """Scenario C with guests c01, c02 renamed vm041, vm086 (names whose 16-bit content tags are
    equal): `synth fig05 C` then `share` gave 38.3 % saved instead of 11.2 %, exit 0 (the two
    guests' private pages and random draws were generated as one's)."""
    from pagecore.config import load_config
    from pagecore.synth.guests import GuestSet, _tag

    assert _tag("vm041") == _tag("vm086")
    cfg = load_config()
    scen = {"guests": [dict(g) for g in cfg["fig05"]["scenarios"]["C"]["guests"]]}
    GuestSet.from_config(scen, cfg["catalogue"], 1)  # the shipped names are told apart
    scen["guests"][0]["name"], scen["guests"][1]["name"] = "vm041", "vm086"
    with pytest.raises(ValueError, match="'vm041' and 'vm086' have one 16-bit content tag"):
        GuestSet.from_config(scen, cfg["catalogue"], 1)
    from pagecore.synth.guests import Guest, OSKind

    assert _tag("os228") == _tag("os244")  # two OS kinds would share their OS pages
    with pytest.raises(ValueError, match="OS kinds 'os228' and 'os244'"):
        GuestSet(
            [Guest("a", "os228", 8.0), Guest("b", "os244", 8.0)], {k: OSKind(0.1, 2.0) for k in ("os228", "os244")}
        )


def test_synth_class_counts_add_up_when_rounding_overflows():
    """`synth fig04 --mem-mb 0.01171875 --zero 0.5 --intra-dup 0.5 …` (3 pages): the classes
    rounded to 2 + 2, common became -1 to make up, and the layout of 4 pages was cut to 3 by
    the permutation (a random page dropped), while expected() counted common -1; exit 0."""
    from pagecore.synth.fig04 import CLASS_NAMES, Fig04Model

    for zero, dup in ((0.5, 0.5), (0.5, 0.0), (0.34, 0.34)):
        m = Fig04Model(mem_mb=3 / 256, zero=zero, intra_dup=dup, intra_dup_groups=min(dup, 0.1), variant=1 - zero - dup)
        c = m.counts()
        assert min(c.values()) >= 0 and sum(c.values()) == m.pages == 3, c
        cls = m.layout(0)[3]
        assert {k: int((cls == i).sum()) for i, k in enumerate(CLASS_NAMES)} == c
    from pagecore.synth.guests import Guest, GuestSet, OSKind

    gs = GuestSet(
        [Guest("a", "l", 3 / 256)], {"l": OSKind(zero=0.5, shared_mb=0.0, intra_dup=0.5, intra_dup_groups=0.1)}
    )
    c = gs.counts(0)  # Figure 5's guests: zero 2, intra_dup 2, private -1, a page dropped
    assert min(c.values()) >= 0 and sum(c.values()) == 3, c


# ------------------------------------------------------------------------------ import
def test_memorybuddies_cut_trace_is_refused(tmp_path, capsys):
    """A trace cut 2 bytes short: its last header line ("proc1\\n", 6 bytes) plus the cut hashes
    fit the file as 32-bit hashes, so the header was taken to end one line early: 101 pages,
    every hash misaligned, exit 0."""
    header = b"Linux 2.6\nproc1\n"
    h = np.random.default_rng(1).integers(0, 2**32, 100, dtype=np.uint64).astype("<u4").tobytes()
    trace = tmp_path / "cut.trace"
    trace.write_bytes(header + h[:-2])
    out = tmp_path / "cut.parquet"
    assert main(["import", "memorybuddies", str(trace), "-o", str(out)]) == 1
    line = one_line_error_text(capsys)
    assert "cut short" in line and "--header-bytes 10" in line
    assert not out.exists()
    whole = tmp_path / "whole.trace"
    whole.write_bytes(header + h)
    assert main(["import", "memorybuddies", str(whole), "-o", str(out)]) == 0
    from pagecore.pages.tables import read_page_table

    assert read_page_table(out).to_pandas()["hash"].to_numpy().astype("<u4").tobytes() == h


def test_memorybuddies_header_without_hashes_is_refused(tmp_path, capsys):
    """A trace of text lines only ("Linux\\nfoo\\n") was read as 1 page whose hash is "foo\\n"."""
    trace = tmp_path / "h.trace"
    trace.write_bytes(b"Linux\nfoo\n")
    out = tmp_path / "h.parquet"
    assert main(["import", "memorybuddies", str(trace), "-o", str(out)]) == 1
    one_line_error_text(capsys)
    assert not out.exists()


def test_cli_helpers_one_line_error_is_used(tiny_tables):
    """A refused run in a subprocess, as a user sees it: one line, exit 1."""
    proc = cli("scan", tiny_tables[0], "--rate-total", "1e-300")
    assert "raise the scan rates" in one_line_error(proc)


# ------------------------------------------------------------------------------ compress
def test_compress_of_an_imported_trace_says_it_holds_no_pages(tmp_path, capsys):
    """`compress` of an imported Memory Buddies table tried to open the trace as a dump: "unknown
    dump format 'memorybuddies'; expected auto or one of elf, …" (a format the user never gave)."""
    trace = tmp_path / "m.trace"
    trace.write_bytes(b"Linux\n" + np.arange(1, 9, dtype="<u4").tobytes())
    table = tmp_path / "m.parquet"
    assert main(["import", "memorybuddies", str(trace), "-o", str(table)]) == 0
    capsys.readouterr()
    assert main(["compress", str(table)]) == 1
    line = one_line_error_text(capsys)
    assert "hash-only memorybuddies table" in line and "unknown dump format" not in line


@pytest.mark.parametrize("damage", ["moved", "resized"])
def test_compress_of_a_table_whose_dump_is_gone_names_no_share_options(tmp_path, capsys, damage):
    """`compress T.parquet` whose dump was moved advised "pass --dump-dir DIR where it now is, or
    share with --no-verify" (resized: "or share with --no-verify"): compress has neither option."""
    raw = tmp_path / "g.raw"
    raw.write_bytes(b"".join(_page(t) for t in (1, 2, 0, 3)))
    table = tmp_path / "g.parquet"
    assert main(["hash", "-q", str(raw), "-o", str(table)]) == 0
    if damage == "moved":
        raw.rename(tmp_path / "elsewhere.raw")
    else:
        raw.write_bytes(raw.read_bytes() + bytes(4096))
    assert main(["compress", str(table)]) == 1
    line = one_line_error_text(capsys)
    assert "dump changed since hashing" in line and "give compress the dump itself" in line
    assert "--no-verify" not in line and "--dump-dir" not in line


def test_an_imported_trace_is_never_an_output_from_another_directory(tmp_path, monkeypatch, capsys):
    """`import memorybuddies t.trace -o t.parquet` run in the trace's directory recorded
    source_path "t.trace" (relative), so from another directory `share d/t.parquet -o d/t.trace`
    did not see the trace as an input and replaced it with the report, exit 0."""
    d = tmp_path / "d"
    d.mkdir()
    trace = d / "t.trace"
    trace.write_bytes(b"Linux\n" + np.arange(1, 9, dtype="<u4").tobytes())
    before = trace.read_bytes()
    monkeypatch.chdir(d)
    assert main(["import", "memorybuddies", "t.trace", "-o", "t.parquet"]) == 0
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    for cmd in (["share", "d/t.parquet", "--format", "json"], ["ksm", "d/t.parquet", "--format", "json"]):
        assert main([*cmd, "-o", "d/t.trace"]) == 1
        assert "inputs are never overwritten" in one_line_error_text(capsys)
    assert trace.read_bytes() == before


def test_ksm_of_an_imported_trace_says_its_zero_pages_are_unknown(tmp_path, capsys):
    """Memory Buddies traces do not mark zero pages (the table says zero_known: false): `ksm
    --use-zero-pages` of one printed ksm_zero_pages 0 and savings "zero 0 pages" without a word,
    whatever the trace held."""
    import json

    trace = tmp_path / "m.trace"
    trace.write_bytes(b"Linux\n" + np.array([5, 5, 5, 9], dtype="<u4").tobytes())
    table = tmp_path / "m.parquet"
    assert main(["import", "memorybuddies", str(trace), "-o", str(table)]) == 0
    capsys.readouterr()
    assert main(["ksm", str(table), "--use-zero-pages", "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert "does not mark zero pages" in err and json.loads(out)["series"]["zero_unknown"] == [str(table)]


def test_compress_seed_past_64_bits_is_a_usage_error(tmp_path):
    """`compress --sample 10 --seed 18446744073709551616` drew seed 0's sample (the sample hashes
    the seed's low 64 bits), exit 0: a seed that is not honoured."""
    raw = tmp_path / "g.raw"
    raw.write_bytes(b"".join(_page(t) for t in range(1, 21)))
    proc = cli("compress", str(raw), "--sample", "10", "--seed", str(2**64))
    assert proc.returncode == 2 and "argument --seed" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("line", ["proccé\n", "procé\n"])
def test_memorybuddies_non_ascii_header_line_is_refused(tmp_path, capsys, line):
    """A header line with a non-ASCII process name ("proccé", 8 bytes in UTF-8) ended the ASCII
    header before it: 52 pages of 50, its bytes read as 2 hashes, exit 0 (7 bytes: refused as
    "not whole 32-bit hashes", advising --max-pages)."""
    h = np.random.default_rng(3).integers(0, 2**32, 50, dtype=np.uint64).astype("<u4").tobytes()
    header = b"Linux\n" + line.encode()
    trace = tmp_path / "u.trace"
    trace.write_bytes(header + h)
    out = tmp_path / "u.parquet"
    assert main(["import", "memorybuddies", str(trace), "-o", str(out)]) == 1
    assert f"--header-bytes {len(header)} if that line is part of the header" in one_line_error_text(capsys)
    assert not out.exists()
    assert main(["import", "memorybuddies", str(trace), "-o", str(out), "--header-bytes", str(len(header))]) == 0
    assert "50 pages" in capsys.readouterr().err


def test_synth_fraction_errors_name_the_options_and_their_values(tmp_path, capsys):
    """`synth fig04 --intra-dup 0` said "intra_dup_groups cannot exceed intra_dup": the user gave
    no --intra-dup-groups (its calibrated default is > 0) and no option of that name exists."""
    assert main(["synth", "fig04", "-o", str(tmp_path / "g"), "--intra-dup", "0"]) == 1
    line = one_line_error_text(capsys)
    assert "--intra-dup-groups cannot exceed --intra-dup" in line and "--intra-dup 0," in line
    assert "intra_dup" not in line and not (tmp_path / "g").exists()


def test_share_of_an_imported_trace_says_its_zero_pages_are_unknown(tmp_path, capsys):
    """`share` of a Memory Buddies table (zero_known: false) reported zero_pages 0 without a word
    (ksm and scan warned since the s19 audit); it now warns, in the table and on stderr for the
    other formats, and lists the tables under zero_unknown."""
    import json

    trace = tmp_path / "m.trace"
    trace.write_bytes(b"Linux\n" + np.array([5, 5, 5, 9], dtype="<u4").tobytes())
    table = tmp_path / "m.parquet"
    assert main(["import", "memorybuddies", str(trace), "-o", str(table)]) == 0
    capsys.readouterr()
    assert main(["share", str(table), "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert "mark no zero pages" in err and json.loads(out)["zero_unknown"] == [str(table)]
    assert main(["share", str(table)]) == 0
    assert "WARNING: " in capsys.readouterr().out
