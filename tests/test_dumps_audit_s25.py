"""Session 25's audit of the dump readers and saved-state parsers: malformed files built from scratch.

Each test here gave a wrong page count, wrong frames or a bad failure with the code before its
fix; now each case is refused with a one-line InputError naming the file and the failed check,
or read correctly. Files are tiny and built in ``tmp_path``.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest
from dumps_helpers import PS, make_pages, read_all
from test_dumps_hostile import _err  # one line naming the file

from pagecore.dumps import open_dump
from pagecore.dumps.elf import ET_CORE, PT_LOAD, PT_NOTE
from pagecore.dumps.flattened import write_kdump_flat
from pagecore.dumps.vmware import write_vmware


def _peak_read(path, **kw):
    """``read_all(path, **kw)`` and the most memory Python allocated meanwhile (tracemalloc)."""
    import tracemalloc

    tracemalloc.start()
    try:
        return read_all(path, **kw), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _vmware_pages(n: int) -> np.ndarray:
    pages = np.zeros((n, PS), np.uint8)
    pages[:, 0] = np.arange(1, n + 1)
    return pages


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda b: b.replace(b"regionsCount" + (2).to_bytes(8, "little"), b"regionsCount" + bytes(8)),
                     id="regionsCount-zeroed"),
        pytest.param(lambda b: b.replace(b"regionsCount", b"regionsCounu"), id="regionsCount-renamed"),
        pytest.param(lambda b: b.replace(b"regionsCount" + (2).to_bytes(8, "little"),
                                         b"regionsCount" + (1).to_bytes(8, "little")), id="regionsCount-lowered"),
    ],
)  # fmt: skip
def test_a_vmware_map_without_its_region_count_is_not_read_flat(tmp_path, edit):
    """A checkpoint whose regionsCount was zeroed or whose tag name was damaged (or whose memory
    group offset pointed at another group) had no regions, so the .vmem was read flat: guest
    frames 0-5 instead of 0, 1 and 0x100-0x103, exit 0. (A lowered count was refused already, but
    as a .vmem "belonging to another checkpoint": now the checkpoint is named as the damaged file.)"""
    vmss = write_vmware(tmp_path / "v.vmem", [(0, 0, 2), (0x100, 2, 4)], _vmware_pages(6))
    assert sorted(read_all(vmss)[0]) == [0, 1, 0x100, 0x101, 0x102, 0x103]
    data = vmss.read_bytes()
    vmss.write_bytes(edit(data))
    assert vmss.read_bytes() != data
    e = _err(vmss)
    assert "regionsCount" in e.problem


def test_a_vmware_memory_group_offset_pointing_at_another_group_is_refused(tmp_path):
    """The group table's offset of 'memory' moved to the 'Checkpoint' group (one flipped bit):
    its tags end cleanly but hold no region map, and the .vmem was read flat."""
    from pagecore.dumps.vmware import GROUP, HEADER

    vmss = write_vmware(tmp_path / "v.vmem", [(0, 0, 2), (0x100, 2, 4)], _vmware_pages(6))
    data = bytearray(vmss.read_bytes())
    first = GROUP.unpack_from(data, HEADER.size)  # Checkpoint
    name, _off, size = GROUP.unpack_from(data, HEADER.size + GROUP.size)
    assert name.rstrip(b"\0") == b"memory"
    GROUP.pack_into(data, HEADER.size + GROUP.size, name, first[1], size)
    vmss.write_bytes(bytes(data))
    assert "no regionsCount" in _err(vmss).problem


def test_a_flat_vmware_map_is_still_read_flat(tmp_path):
    """regionsCount 0 with no region tags is VMware's flat .vmem: frames are file pages."""
    vmss = write_vmware(tmp_path / "f.vmem", [], _vmware_pages(3))
    got, st = read_all(vmss)
    assert sorted(got) == [0, 1, 2] and st.pages_read == 3


@pytest.mark.parametrize("tail", ["second-dump", "garbage"])
def test_bytes_after_a_flattened_files_end_record_are_refused(tmp_path, tail):
    """A flattened file with a second dump appended (``makedumpfile -F ... >> f``), or other bytes
    after its end record, was read to the end record with exit 0 and the rest ignored: the
    second guest's pages were silently missing."""
    first = write_kdump_flat(tmp_path / "a.flat", np.arange(8), make_pages(8, seed=1))
    assert sorted(read_all(first)[0]) == list(range(8))
    if tail == "second-dump":
        more = write_kdump_flat(tmp_path / "b.flat", np.arange(100, 108), make_pages(8, seed=2)).read_bytes()
    else:
        more = b"\x01" * 5000
    both = tmp_path / "ab.flat"
    both.write_bytes(first.read_bytes() + more)
    e = _err(both)
    assert f"{len(more):,} bytes after the end record" in e.problem
    _err(both, skip_bad_pages=True)


def _elf_with_notes(path, segs, lower_first_offset: int = 0):
    """An ELF64 core laid out as QEMU writes it: ELF header, program headers, one PT_NOTE, then
    the PT_LOAD data; the first PT_LOAD's ``p_offset`` lowered by ``lower_first_offset``."""
    eh, ph = struct.Struct("<16sHHIQQQIHHHHHH"), struct.Struct("<IIQQQQQQ")
    note = struct.pack("<III", 5, 200, 1) + b"CORE\0\0\0\0" + b"\x11" * 200
    off = eh.size + ph.size * (1 + len(segs))
    phdrs = [ph.pack(PT_NOTE, 0, off, 0, 0, len(note), len(note), 0)]
    off += len(note)
    for i, (paddr, data) in enumerate(segs):
        phdrs.append(
            ph.pack(PT_LOAD, 7, off - (lower_first_offset if i == 0 else 0), paddr, paddr, len(data), len(data), 0)
        )
        off += len(data)
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    head = eh.pack(ident, ET_CORE, 62, 1, 0, eh.size, 0, 0, eh.size, ph.size, len(phdrs), 0, 0, 0)
    Path(path).write_bytes(head + b"".join(phdrs) + note + b"".join(d for _, d in segs))
    return Path(path)


@pytest.mark.parametrize("lower", [8, 100, 220])
def test_an_elf_segment_whose_data_overlaps_the_notes_is_refused(tmp_path, lower):
    """A PT_LOAD whose p_offset was lowered into the PT_NOTE before it (QEMU writes the notes just
    before the first segment's data) was read with exit 0: every page of the segment shifted by
    ``lower`` bytes, the gap it left at its end shorter than the page the undescribed-bytes
    check looks for."""
    pages = make_pages(8, seed=3)
    segs = [(0, pages[:4].tobytes()), (0x10000, pages[4:].tobytes())]
    got, _ = read_all(_elf_with_notes(tmp_path / "ok.elf", segs))
    assert got == {g: pages[i].tobytes() for i, g in enumerate([0, 1, 2, 3, 0x10, 0x11, 0x12, 0x13])}
    e = _err(_elf_with_notes(tmp_path / "low.elf", segs, lower_first_offset=lower))
    assert "overlaps the notes of PT_NOTE #0" in e.problem


def test_a_vmware_checkpoint_holding_big_tags_is_not_read_into_memory(tmp_path):
    """A checkpoint whose memory group holds a big tag (VMware stores a guest's memory in the
    checkpoint itself that way) was read whole, and the tag copied: a 1 GiB .vmss took 1.1 GB of
    memory, a snapshot of a large guest more than the machine has. Only the tags are read now."""
    from pagecore.dumps.vmware import GROUP, HEADER

    big = 64 << 20

    def tag(name, idx=(), value=None):
        raw = bytes([(8 if value is not None else 62) | len(idx) << 6, len(name)]) + name.encode()
        raw += struct.pack(f"<{len(idx)}I", *idx)
        return raw + (value.to_bytes(8, "little") if value is not None else struct.pack("<QQ", big, big) + b"\0\0")

    mem = tag("regionsCount", value=1)
    for t, v in (("regionPPN", 0x100), ("regionPageNum", 0), ("regionSize", 2)):
        mem += tag(t, (0,), v)
    mem += tag("Memory")
    vmss = tmp_path / "e.vmss"
    with open(vmss, "wb") as fh:
        at = HEADER.size + GROUP.size
        fh.write(HEADER.pack(0xBED2BED2, 0, 1) + GROUP.pack(b"memory", at, len(mem) + big + 2) + mem)
        fh.seek(big, os.SEEK_CUR)  # a hole: the big tag's bytes
        fh.write(b"\0\0")
    _vmware_pages(2).tofile(tmp_path / "e.vmem")
    (got, _), peak = _peak_read(vmss)
    assert sorted(got) == [0x100, 0x101]
    assert peak < big // 8, f"{peak:,} bytes allocated to read a {vmss.stat().st_size:,}-byte checkpoint"


def test_a_migration_stream_claiming_much_ram_costs_only_its_index(tmp_path):
    """A stream of a few KiB whose RAM setup claims a big pc.ram cost 24 bytes of memory per
    claimed page (the index, plus a frame map of every page and its temporaries): claims up to
    the check's limit (256 times the machine's memory) took about 1.5 times the machine's
    memory. Only the index (8 bytes a page) is held now."""
    from test_savestate import page, qevm

    size = 8 << 30  # 2 Mi pages
    s = qevm({"pc.ram": size}, [[("pc.ram", 0, "page", page(5)), (None, size // PS - 1, "zero", b"\0")], []])
    path = tmp_path / "big.qevm"
    path.write_bytes(s)
    (got, st), peak = _peak_read(path, chunk_pages=16)  # the chunk buffer is not what is measured
    assert sorted(got) == [0, (1 << 32) // PS + (size - 0xC0000000) // PS - 1]
    assert st.pages_excluded == size // PS - 2
    assert peak < 12 * (size // PS), f"{peak:,} bytes for {size // PS:,} claimed pages"


def test_one_part_of_a_split_kdump_is_named_as_such(tmp_path, capsys):
    """`hash` of one part of a ``makedumpfile --split`` dump said "32 pages of p1 (kdump)" and
    nothing else: the frames in the other parts were neither read nor counted anywhere, so every
    number made from the table described half the guest as if it were all of it. `hash` and
    `share` now say so."""
    from pagecore.cli import main as cli_main
    from pagecore.dumps.kdump import SUB_HEADER, write_kdump
    from pagecore.pages.tables import page_table_metadata

    path = write_kdump(tmp_path / "p1.kdump", np.arange(32), make_pages(32, seed=4), excluded=np.arange(32, 64))
    data = bytearray(path.read_bytes())
    f = list(SUB_HEADER.unpack_from(data, PS))
    f[2], f[3], f[4], f[11], f[12] = 1, 0, 32, 0, 32  # split, start/end_pfn, their 64-bit copies
    SUB_HEADER.pack_into(data, PS, *f)
    path.write_bytes(bytes(data))
    got, st = read_all(path)
    assert sorted(got) == list(range(32)) and st.pages_excluded == 0
    table = tmp_path / "p1.parquet"
    assert cli_main(["hash", str(path), "-o", str(table), "-q"]) == 0
    err = capsys.readouterr().err
    assert "one part of a split dump" in err and "32 more frames are in the other parts" in err
    assert page_table_metadata(table)["split_part"]["frames_in_other_parts"] == 32
    assert cli_main(["share", str(table), "--no-verify", "-q"]) == 0
    out = capsys.readouterr().out
    assert "WARNING: p1: hashed from one part of a split dump" in out and "32 frames in the other parts" in out


def test_a_libvirt_header_claiming_much_xml_reads_only_the_xml(tmp_path):
    """A save image whose data_len (up to 4 GiB) was far larger than its XML was read whole and the
    XML part copied: a header claiming 3 GiB took 6.3 GB of memory. Only the XML up to its NUL is
    read now, at most 16 MiB; an XML with no end in that is refused."""
    from test_savestate import page, qevm

    from pagecore.dumps.libvirt_save import HEADER, MAGIC

    stream = qevm({"pc.ram": 2 * PS}, [[("pc.ram", 1, "page", page(1))], []])
    claim = 256 << 20

    def save(name, xml: bytes):
        path = tmp_path / name
        with open(path, "wb") as fh:
            fh.write(HEADER.pack(MAGIC, 2, claim, 0, 0, 0) + xml)
            fh.seek(HEADER.size + claim)  # the rest of data_len: a hole
            fh.write(stream)
        return path

    ok = save("ok.save", b"<domain><name>x</name></domain>\0")
    (got, _), peak = _peak_read(ok, chunk_pages=16)
    assert got == {1: page(1)}
    assert peak < claim // 8, f"{peak:,} bytes allocated for a data_len of {claim:,}"
    endless = save("endless.save", b"<domain>" + b"x" * (17 << 20))
    assert "no end to the domain XML" in _err(endless).problem


def test_a_migration_stream_cut_in_its_device_state_is_refused(tmp_path):
    """A stream cut anywhere after the header of its first device section (a save that ran out
    of disk after its RAM) was read with exit 0, the device list quietly "stopping there": QEMU
    cannot restore such a file. Machine types that send a configuration end the stream with the
    VM description, so its absence means the file is cut -- unless the stream ends as a whole one
    does (footer, EOF): QEMU 7.2 still has ``-machine suppress-vmdesc=on``, whose valid files
    have no description. Each cut point is tried."""
    from test_savestate import _devices_tail, _small_stream

    whole = _small_stream(1, _devices_tail())
    path = tmp_path / "g.qevm"
    path.write_bytes(whole)
    assert sorted(read_all(path)[0]) == [0, 1, 2, 3]
    ram_end = len(_small_stream(1, b""))  # where the device sections start
    for n in range(ram_end, len(whole)):
        path.write_bytes(whole[:n])
        if whole[n - 6 : n] == b"\x7e" + struct.pack(">I", 3) + b"\x00":
            continue  # the end of a whole stream saved without its description (below)
        _err(path)
    # QEMU run with -machine suppress-vmdesc=on: device sections, footer, EOF and no description
    suppressed = _small_stream(1, _devices_tail().split(b"\x00\x06")[0] + b"\x00")
    path.write_bytes(suppressed)
    with open_dump(path) as r:
        assert sorted(p for c in r for p in c.gpfn.tolist()) == [0, 1, 2, 3]
        assert "suppress-vmdesc" in r.metadata()["device_sections_source"]


def test_a_big_endian_kdump_is_named_as_such(tmp_path):
    """A kdump of a big-endian guest (s390x, ppc64) was refused with "no valid block_size in the
    disk_dump_header", which sends the user looking for damage; it now says what the file is."""
    from pagecore.dumps.kdump import HEADER64_TAIL_AT, HEADER_TAIL, write_kdump

    path = write_kdump(tmp_path / "be.kdump", np.arange(8), make_pages(8))
    data = bytearray(path.read_bytes())
    struct.pack_into(">i", data, 8, struct.unpack_from("<i", data, 8)[0])
    struct.pack_into(">10I", data, HEADER64_TAIL_AT, *HEADER_TAIL.unpack_from(data, HEADER64_TAIL_AT))
    path.write_bytes(bytes(data))
    assert "big-endian kdump header" in _err(path).problem


def _many_blocks_stream(n: int) -> bytes:
    """A stream whose RAM setup lists pc.ram and ``n`` one-page ROM blocks; one page of pc.ram is sent."""
    from test_savestate import _name, page

    blocks = [("pc.ram", PS)] + [(f"x{i}.rom", PS) for i in range(n)]
    machine = b"pc-i440fx-7.2"
    out = b"QEVM" + struct.pack(">I", 3) + b"\x07" + struct.pack(">I", len(machine)) + machine
    setup = struct.pack(">Q", PS * len(blocks) | 0x04) + b"".join(_name(a) + struct.pack(">Q", s) for a, s in blocks)
    out += b"\x01" + struct.pack(">I", 2) + _name("ram") + struct.pack(">II", 0, 4) + setup
    out += (
        struct.pack(">Q", 0x08) + _name("pc.ram") + page(1) + struct.pack(">Q", 0x10) + b"\x7e" + struct.pack(">I", 2)
    )
    return out + b"\x03" + struct.pack(">I", 2) + struct.pack(">Q", 0x10) + b"\x7e" + struct.pack(">I", 2) + b"\x00"


def test_a_migration_stream_listing_many_ram_blocks_is_read_in_linear_time(tmp_path, monkeypatch):
    """Each RAM block's name was compared with every earlier one: 20,000 blocks (a 370 KB file)
    took 15 s, a million some 10 hours. Names go into a set now, and more than
    MAX_RAM_BLOCKS (65,536; QEMU has a few hundred at most) are refused."""
    import time

    from test_savestate import page

    from pagecore.dumps import qemu_migration

    path = tmp_path / "many.qevm"
    path.write_bytes(_many_blocks_stream(20_000))
    t0 = time.monotonic()
    got, _ = read_all(path)
    assert time.monotonic() - t0 < 5, "quadratic in the number of RAM blocks"
    assert got == {0: page(1)}
    monkeypatch.setattr(qemu_migration, "MAX_RAM_BLOCKS", 1000)
    assert "more than 1,000 RAM blocks" in _err(path).problem


def test_a_vmware_memory_group_of_many_tags_keeps_only_the_region_map(tmp_path, monkeypatch):
    """Every tag of the memory group was kept in a dict: a 30 MB group of tiny tags with distinct
    indices took 960 MB of memory (32 times the file). Only the region tags are kept now, and more
    than MAX_REGIONS regions' worth of them are refused."""
    from pagecore.dumps import vmware
    from pagecore.dumps.vmware import GROUP, HEADER

    def checkpoint(name, junk: bytes):
        count = bytes([8, 12]) + b"regionsCount" + bytes(8)
        mem = count + junk + b"\0\0"
        at = HEADER.size + GROUP.size
        (tmp_path / f"{name}.vmss").write_bytes(
            HEADER.pack(0xBED2BED2, 0, 1) + GROUP.pack(b"memory", at, len(mem)) + mem
        )
        _vmware_pages(2).tofile(tmp_path / f"{name}.vmem")
        return tmp_path / f"{name}.vmss"

    tiny = checkpoint("t", b"".join(b"\x40\x00" + struct.pack("<I", i) for i in range(50_000)))
    (got, _), peak = _peak_read(tiny)
    assert sorted(got) == [0, 1]
    assert peak < 4 << 20, f"{peak:,} bytes allocated for a {tiny.stat().st_size:,}-byte checkpoint"
    monkeypatch.setattr(vmware, "MAX_REGIONS", 100)
    many = b"".join(bytes([0x48, 9]) + b"regionPPN" + struct.pack("<IQ", i, i) for i in range(3 * 100 + 2))
    assert "memory regions' tags" in _err(checkpoint("m", many)).problem


def test_the_elf_notes_overlap_check_is_not_quadratic(tmp_path):
    """The check that segment data lies apart from the notes compared every PT_NOTE with every
    PT_LOAD (one NumPy pass per note): a PN_XNUM core with 200,000 of each took some 20 s, and
    such dumps may hold millions. It sorts once now."""
    import time

    from pagecore.dumps.elf import ElfReader

    n = 200_000
    eh, ph = struct.Struct("<16sHHIQQQIHHHHHH"), struct.Struct("<IIQQQQQQ")
    shdr = struct.pack("<IIQQQQIIQQ", 0, 0, 0, 0, 0, 0, 0, 2 * n, 0, 0)  # sh_info: the real e_phnum
    phoff = eh.size + len(shdr)
    off = phoff + ph.size * 2 * n
    notes = [ph.pack(PT_NOTE, 0, off + 12 * i, 0, 0, 12, 12, 0) for i in range(n)]
    off += 12 * n
    loads = [ph.pack(PT_LOAD, 7, off + 16 * i, i * PS, i * PS, 16, 16, 0) for i in range(n)]
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    head = eh.pack(ident, ET_CORE, 62, 1, 0, phoff, eh.size, 0, eh.size, ph.size, 0xFFFF, len(shdr), 1, 0)
    path = tmp_path / "many.elf"
    path.write_bytes(head + shdr + b"".join(notes + loads) + struct.pack("<III", 0, 0, 1) * n + b"\1" * 16 * n)
    r = ElfReader(path)
    try:
        t0 = time.monotonic()
        assert len(r._segments()) == n
        assert time.monotonic() - t0 < 5
    finally:
        r.close()


def test_a_migration_stream_of_many_commands_does_not_grow_memory_with_them(tmp_path):
    """Every RAM section and PING command went into a list of dicts (only its length was used):
    about 200 bytes of memory per 5 bytes of file, so a compressed save image of PINGs (xz makes
    10 GB of them some 1 MB) needed unbounded memory. The first 1,024 are listed, all counted."""
    from test_savestate import _name, page

    n = 40_000
    machine = b"pc-i440fx-7.2"
    out = b"QEVM" + struct.pack(">I", 3) + b"\x07" + struct.pack(">I", len(machine)) + machine
    setup = struct.pack(">Q", PS | 0x04) + _name("pc.ram") + struct.pack(">Q", PS)
    out += b"\x01" + struct.pack(">I", 2) + _name("ram") + struct.pack(">II", 0, 4) + setup
    out += (
        struct.pack(">Q", 0x08) + _name("pc.ram") + page(1) + struct.pack(">Q", 0x10) + b"\x7e" + struct.pack(">I", 2)
    )
    out += (b"\x08" + struct.pack(">HH", 2, 0)) * n  # PING commands without payload
    out += b"\x03" + struct.pack(">I", 2) + struct.pack(">Q", 0x10) + b"\x7e" + struct.pack(">I", 2) + b"\x00"
    path = tmp_path / "pings.qevm"
    path.write_bytes(out)
    import tracemalloc

    tracemalloc.start()
    try:
        with open_dump(path, chunk_pages=16) as r:
            got = [bytes(c.pages[0]) for c in r]
            meta = r.metadata()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got == [page(1)] and meta["ram_sections"] == n + 2
    assert peak < 4 << 20, f"{peak:,} bytes allocated for {n:,} commands"


def test_a_migration_stream_listing_too_many_capabilities_is_refused(tmp_path):
    """The configuration's capability count (a be32) was trusted and every name kept: a compressed
    stream could list billions of them. QEMU has some 30; more than 1,024 are refused."""
    from test_savestate import _name, page, qevm

    sub = b"\x05" + _name("configuration/capabilities") + struct.pack(">II", 1, 5000)
    sub += b"".join(_name(f"cap{i}") for i in range(5000))
    path = tmp_path / "caps.qevm"
    path.write_bytes(qevm({"pc.ram": PS}, [[("pc.ram", 0, "page", page(1))], []], subsections=sub))
    assert "5,000 migration capabilities" in _err(path).problem


def test_a_pt_note_far_past_the_file_is_one_line_under_skip_bad_pages(tmp_path):
    """The notes overlap check (c687743) put every PT_NOTE's offset in an int64 array: one at
    2**64 - 1, which --skip-bad-pages lets past the note check, was an OverflowError traceback."""
    eh, ph = struct.Struct("<16sHHIQQQIHHHHHH"), struct.Struct("<IIQQQQQQ")
    off = eh.size + ph.size * 2
    phdrs = [ph.pack(PT_NOTE, 0, (1 << 64) - 1, 0, 0, 100, 100, 0), ph.pack(PT_LOAD, 7, off, 0, 0, 4 * PS, 4 * PS, 0)]
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    head = eh.pack(ident, ET_CORE, 62, 1, 0, eh.size, 0, 0, eh.size, ph.size, 2, 0, 0, 0)
    path = tmp_path / "far.elf"
    path.write_bytes(head + b"".join(phdrs) + make_pages(4, seed=3).tobytes())
    _err(path)
    _err(path, skip_bad_pages=True)


def test_a_migration_stream_resending_pages_without_end_is_refused(tmp_path, monkeypatch):
    """Re-sent pages are legal (a live migration sends a page again each time the guest dirtied
    it), so a compressed save image of a few KB could make the reader walk records for hours (1.5 KB
    of xz took 3.3 s). More than MAX_RECORDS_PER_PAGE records a guest page (plus RECORDS_SLACK) are
    refused; a stream at the limit still reads, its last record of each page winning."""
    from test_savestate import page, qevm

    from pagecore.dumps import qemu_migration as qm

    monkeypatch.setattr(qm, "MAX_RECORDS_PER_PAGE", 3)
    monkeypatch.setattr(qm, "RECORDS_SLACK", 2)
    # 2 pages: at most 3 * 2 + 2 = 8 records
    ok = [("pc.ram", 0, "page", page(1))] + [(None, i % 2, "zero", b"\0") for i in range(6)]
    ok.append((None, 0, "page", page(7)))
    path = tmp_path / "ok.qevm"
    path.write_bytes(qevm({"pc.ram": 2 * PS}, [ok, []]))
    got = read_all(path)[0]
    assert got == {0: page(7), 1: bytes(PS)}
    path.write_bytes(qevm({"pc.ram": 2 * PS}, [[*ok, (None, 1, "zero", b"\0")], []]))
    err = _err(path)
    assert "more than 8 RAM records for 2 guest pages" in str(err) and "at most 3 records a page" in str(err)
