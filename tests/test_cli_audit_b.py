"""Audit B of the user commands (hash, share, compress, ksm, scan, host, import): each test is a
case that once gave a wrong answer with exit 0, ran without bound or said something untrue,
built from the reproducer that showed it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import one_line_error_text
from cli_helpers import tag_page as _page

from pagecore.cli import main

# two reads of one guest of four pages: A A B 0, then A C 0 0
READS = ([1, 1, 2, 0], [1, 3, 0, 0])




@pytest.fixture(scope="module")
def reads(tmp_path_factory):
    d = tmp_path_factory.mktemp("reads")
    out = []
    for i, tags in enumerate(READS):
        raw = d / f"r{i}.raw"
        raw.write_bytes(b"".join(_page(t) for t in tags))
        out.append(str(d / f"r{i}.parquet"))
        assert main(["hash", "-q", str(raw), "--vm", "g", "-o", out[-1]]) == 0
    return out


# ------------------------------------------------------------------------------ finding 1
def test_ksm_series_interval_past_the_wakeups_it_can_replay_is_refused(reads, capsys):
    """`ksm --series --interval 1e300` was accepted: ksmd's wake-ups were replayed one by one up
    to the last read, growing to 19 GB of memory before it was killed."""
    for interval in ("1e300", "1e6"):
        assert main(["ksm", *reads, "--series", "--interval", interval]) == 1
        assert "use a shorter --interval" in one_line_error_text(capsys)


def test_ksm_series_a_day_apart_still_runs(reads, capsys):
    """Reads a day apart are a plausible `pagecore live` series: at --sleep-ms 1000 they run here
    in a moment; at the default 20 ms (4.3 M wake-ups) the check lets them through."""
    from pagecore.sharing.ksm import KsmEmulator, KsmSettings
    from pagecore.sharing.pagehistory import read_history

    assert main(["ksm", *reads, "--series", "--interval", "86400", "--sleep-ms", "1000", "--format", "json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["series"]["read_times_s"] == [0.0, 86400.0] and rep["pages_sharing"] == 1  # A A in the 2nd read
    h, _ = read_history(reads, series=True, interval=86400.0)
    KsmEmulator(h, KsmSettings()).check_can_run()
    with pytest.raises(ValueError, match="past the 1e\\+06"):
        KsmEmulator(h, KsmSettings()).check_can_run(max_wakeups=10**6)
    KsmEmulator(h, KsmSettings()).check_can_run(until_s=1000.0, max_wakeups=10**6)  # stops early


# ------------------------------------------------------------------------------ finding 3
def test_two_dumps_under_one_vm_name_are_refused_even_with_disjoint_frames(tmp_path, capsys):
    """vm01 as raw (frames 0-3) and another guest as an ELF at frame 0x10000, both `--vm web`:
    `share` counted one VM of 8 pages, their sharing intra-VM, exit 0. The same dump's table
    given twice under one name is still refused as repeated frames."""
    from pagecore.dumps.elf import write_elf

    a, b = tmp_path / "a.raw", tmp_path / "b.elf"
    a.write_bytes(b"".join(_page(t) for t in READS[0]))
    write_elf(str(b), [(0x10000 * 4096, np.frombuffer(b"".join(_page(t) for t in READS[1]), np.uint8))], align=4096)
    ta, tb, tc = (str(tmp_path / f"{n}.parquet") for n in "abc")
    assert main(["hash", "-q", str(a), "--vm", "web", "-o", ta]) == 0
    assert main(["hash", "-q", str(b), "--vm", "web", "-o", tb]) == 0
    assert main(["share", ta, tb, "--no-verify"]) == 1
    line = one_line_error_text(capsys)
    assert "VM 'web' is also in" in line and "another source" in line and "distinct --vm" in line
    assert main(["hash", "-q", str(b), "--vm", "db", "-o", tc]) == 0
    assert main(["share", ta, tc, "--no-verify", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["vms"] == 2


# ------------------------------------------------------------------------------ finding 4
def test_compress_takes_a_table_with_sizes_beside_one_without(tmp_path, capsys):
    """c1 hashed with `--compress lz4`, t2 without: t2 was refused as having "no pagecore
    metadata" (it has; compress passed {} for it). t2's dump is re-read and hashed without a key,
    which matches c1. A keyed c1 cannot match it: refused, saying so."""
    raws = []
    for i, tags in enumerate(READS):
        raws.append(tmp_path / f"g{i}.raw")
        raws[-1].write_bytes(b"".join(_page(t + 10 * i) for t in tags))
    c1, t2, k1 = (str(tmp_path / n) for n in ("c1.parquet", "t2.parquet", "k1.parquet"))
    assert main(["hash", "-q", str(raws[0]), "-o", c1, "--compress", "lz4"]) == 0
    assert main(["hash", "-q", str(raws[1]), "-o", t2]) == 0
    assert main(["compress", c1, t2, "--algorithm", "lz4", "--format", "json"]) == 0
    capsys.readouterr()
    key = tmp_path / "key"
    key.write_bytes(b"k" * 32)
    assert main(["hash", "-q", str(raws[0]), "-o", k1, "--compress", "lz4", "--key-file", str(key)]) == 0
    assert main(["compress", k1, t2, "--algorithm", "lz4"]) == 1
    line = one_line_error_text(capsys)
    assert "k1.parquet: its hashes were made with hash_key_id" in line and "metadata" not in line


# ------------------------------------------------------------------------------ finding 5
@pytest.mark.parametrize("name", ["all\nalone", " ", "web1 "])
def test_import_memorybuddies_refuses_vm_names_hash_refuses(tmp_path, capsys, name):
    """`import memorybuddies --vm $'all\\nalone'` (or ' ') wrote a table; `share` then printed a
    row that split over two lines ("all" / "alone alone") and a blank VM's row."""
    trace = tmp_path / "mb.trace"
    trace.write_bytes(b"Windows XP\n" + np.random.default_rng(1).integers(0, 2**32, 100, np.uint32).tobytes())
    out = tmp_path / "mb.parquet"
    assert main(["import", "memorybuddies", str(trace), "-o", str(out), "--vm", name]) == 1
    assert "vm: " in one_line_error_text(capsys) and not out.exists()
    assert main(["import", "memorybuddies", str(trace), "-o", str(out), "--vm", "mb"]) == 0


def test_a_table_with_an_unprintable_vm_name_is_refused_naming_it(reads, tmp_path, capsys):
    """A table edited to hold VM `g\\nall` was read and reported as if "all" were a row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pq.read_table(reads[0])
    edited = tmp_path / "edited.parquet"
    vm = pa.array([v + "\nall" for v in t["vm"].to_pylist()]).dictionary_encode()
    pq.write_table(t.set_column(0, "vm", vm).replace_schema_metadata(t.schema.metadata), edited)
    assert main(["share", str(edited), "--no-verify"]) == 1
    line = one_line_error_text(capsys)
    assert line.startswith(f"pagecore: error: {edited}: VM name 'g\\nall' is not usable")


# ------------------------------------------------------------------------------ finding 6
def test_a_link_to_a_vmem_is_read_through_its_checkpoint(tmp_path):
    """`hash dumps/guest.vmem` (a link to ../v.vmem, whose v.vmss is beside it) read the file as a
    flat raw image: frames 0..9 where the checkpoint places them at 0..0x300+4, exit 0. A link to
    the checkpoint finds the .vmem beside its target too."""
    import pyarrow.parquet as pq

    from pagecore.dumps import detect_format
    from pagecore.dumps.vmware import write_vmware

    pages = np.frombuffer(b"".join(_page(t) for t in range(1, 11)), np.uint8).reshape(-1, 4096)
    write_vmware(str(tmp_path / "v.vmem"), [(0, 0, 5), (0x300, 5, 5)], pages)
    (tmp_path / "dumps").mkdir()
    link, clink = tmp_path / "dumps" / "guest.vmem", tmp_path / "dumps" / "ck.vmss"
    link.symlink_to("../v.vmem")
    clink.symlink_to(tmp_path / "v.vmss")
    assert detect_format(link) == "vmware"
    gpfns = []
    for i, src in enumerate((tmp_path / "v.vmem", link, clink)):
        out = tmp_path / f"t{i}.parquet"
        assert main(["hash", "-q", str(src), "--vm", f"g{i}", "-o", str(out)]) == 0
        gpfns.append(sorted(pq.read_table(out)["gpfn"].to_pylist()))
    assert gpfns[0] == [0, 1, 2, 3, 4, 0x300, 0x301, 0x302, 0x303, 0x304] and gpfns[1] == gpfns[2] == gpfns[0]


# ------------------------------------------------------------------------------ finding 2
def _flip_hash_bytes(src, dst):
    """A copy of page table ``src`` with 4 bytes flipped at the end of its hash column's data."""
    import shutil

    import pyarrow.parquet as pq

    shutil.copyfile(src, dst)
    col = pq.ParquetFile(src).metadata.row_group(0).column(2)
    assert col.path_in_schema == "hash"
    with open(dst, "r+b") as fh:
        fh.seek(col.data_page_offset + col.total_compressed_size - 4)
        old = fh.read(4)
        fh.seek(-4, 1)
        fh.write(bytes(b ^ 0xFF for b in old))


def test_a_flipped_byte_in_the_hash_column_is_refused_as_a_corrupted_table(reads, tmp_path, capsys):
    """The hash column is stored plain and uncompressed without page checksums: 4 flipped bytes
    changed `share --no-verify` and `ksm` counts with exit 0."""
    flip = tmp_path / "flip.parquet"
    _flip_hash_bytes(reads[0], flip)
    for cmd in (["share", str(flip), reads[1], "--no-verify"], ["ksm", str(flip)]):
        assert main(cmd) == 1
        line = one_line_error_text(capsys)
        assert line.startswith(f"pagecore: error: {flip}: corrupted page table") and "checksum" in line


def test_tables_without_page_checksums_still_read(reads, tmp_path, capsys):
    """Tables written before checksums were turned on have none: they read as before."""
    import pyarrow.parquet as pq

    t = pq.read_table(reads[0])
    old = tmp_path / "old.parquet"
    pq.write_table(t, old, write_page_checksum=False)
    assert main(["share", str(old), "--no-verify", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["total_pages"] == 4


def test_a_hash_that_differs_from_an_intact_dump_does_not_blame_the_dump(tmp_path, capsys):
    """A table whose hash column was damaged (here rewritten with valid checksums) was reported as
    "dump changed since hashing" although the dump's size and sample digest still matched."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    raw = tmp_path / "g.raw"
    raw.write_bytes(b"".join(_page(t) for t in READS[0]))
    table = tmp_path / "g.parquet"
    assert main(["hash", "-q", str(raw), "-o", str(table)]) == 0
    t = pq.read_table(table)
    h = t["hash"].to_numpy().copy()
    h[2] ^= 1  # page B (not the zero page)
    pq.write_table(t.set_column(2, "hash", pa.array(h, pa.uint64())).replace_schema_metadata(t.schema.metadata), table)
    assert main(["share", str(table)]) == 1
    line = one_line_error_text(capsys)
    assert "dump changed since hashing" not in line and "the table or the dump may be damaged" in line
    # a dump whose recorded size or sample digest differs is still said to have changed
    from pagecore.pages.hashing import PageKey
    from pagecore.pages.provenance import DumpChanged
    from pagecore.pages.tables import page_table_metadata
    from pagecore.pages.verify import _refuse_page_mismatch

    meta = page_table_metadata(table)
    with pytest.raises(DumpChanged, match="dump changed since hashing: guest frame 2 "):
        _refuse_page_mismatch(raw, table, {**meta, "source_digest": "0" * 32}, PageKey.default(), 2)


# ------------------------------------------------------------------------------ finding 7
def test_a_file_that_cannot_be_mapped_is_named(tmp_path, capsys):
    """`hash /sys/kernel/mm/transparent_hugepage/enabled` (st_size 4096) said only "No such device"."""
    import os

    sysfile = "/sys/kernel/mm/transparent_hugepage/enabled"
    if not os.path.isfile(sysfile) or os.path.getsize(sysfile) % 4096:
        pytest.skip(f"no {sysfile} of a whole page here")
    assert main(["hash", "-q", sysfile, "--format", "raw", "-o", str(tmp_path / "s.parquet")]) == 1
    assert one_line_error_text(capsys).startswith(f"pagecore: error: {sysfile}: ")


def test_an_output_name_of_up_to_255_bytes_is_written(reads, tmp_path):
    """A valid 253-byte output name was refused ("File name too long"): its temporary's name
    `.NAME.pagecore-tmp-PID-N` was too long. Two long names that share a start still get distinct
    temporaries."""
    from pagecore._util import _tmp_stem

    raw = tmp_path / "g.raw"
    raw.write_bytes(b"".join(_page(t) for t in READS[0]))
    for name in ("x" * 245 + ".parquet", "é" * 123 + "x.parquet"):
        out = tmp_path / name
        assert len(name.encode()) <= 255
        assert main(["hash", "-q", str(raw), "-o", str(out)]) == 0 and out.is_file()
    a, b = (tmp_path / ("y" * 240 + s) for s in ("a.parquet", "b.parquet"))
    assert _tmp_stem(a) != _tmp_stem(b) and _tmp_stem(tmp_path / "short") == ".short"
    assert [p.name for p in tmp_path.iterdir() if "pagecore-tmp" in p.name] == []


def test_ksm_series_over_one_read_of_each_guest_is_refused(tmp_path, capsys):
    """`ksm --series --interval 5 t1 t2` on two different guests reported `reads: 1`, exit 0:
    --series and --interval had no effect."""
    tables = []
    for i, tags in enumerate(READS):
        raw = tmp_path / f"vm{i}.raw"
        raw.write_bytes(b"".join(_page(t) for t in tags))
        tables.append(str(tmp_path / f"vm{i}.parquet"))
        assert main(["hash", "-q", str(raw), "-o", tables[-1]]) == 0
    assert main(["ksm", *tables, "--series", "--interval", "5"]) == 1
    assert "one read of each VM (vm0, vm1)" in one_line_error_text(capsys)
    assert main(["ksm", *tables]) == 0


def test_verification_advice_names_each_commands_option(tmp_path, capsys):
    """`host` on a table whose dump is gone advised "share with --no-verify"; host's option is
    `--verify no`."""
    from pagecore.pages.provenance import DumpChanged

    assert "host --verify no" in DumpChanged("d", "x").hint and "share --no-verify" in DumpChanged("d", "x").hint


def test_compress_sample_nan_names_no_input(reads, capsys):
    """`compress --sample nan` said "pagecore: error: <input>: --sample must be ..."."""
    assert main(["compress", reads[0], "--sample", "nan"]) == 1
    assert one_line_error_text(capsys) == "pagecore: error: --sample must be a finite number > 0, got nan"
