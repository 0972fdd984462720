"""`pagecore live` on a real QEMU guest, and saved-state files made from the same paused guest.

One guest (the capture workload, then a busy loop that prints a tick to the serial console every
200 iterations, so its progress can be measured) is booted for the whole module and ended by its
PID. Needs root (``/proc/PID/mem``, ``/proc/kpageflags``), QEMU, a kernel and busybox; skips with
the reason otherwise. The guest's slowdown during a rate-limited read is measured and printed,
never asserted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pagecore.qemu import live

TEXT_RAMBLOCK = """\
              Block Name    PSize              Offset               Used              Total
                  pc.ram    4 KiB  0x0000000000000000 0x0000000008000000 0x0000000008000000
                 pc.bios    4 KiB  0x0000000008000000 0x0000000000040000 0x0000000000040000
"""
TEXT_MTREE = """\
FlatView #0
 AS "memory", root: system
 AS "cpu-memory-0", root: system
 Root memory region: system
  0000000000000000-00000000000bffff (prio 0, ram): pc.ram
  00000000000e0000-00000000000fffff (prio 0, rom): pc.bios @0000000000020000
  0000000000100000-0000000007ffffff (prio 0, ram): pc.ram @0000000000100000 KVM
  00000000fec00000-00000000fec00fff (prio 0, i/o): ioapic
  00000000fffc0000-00000000ffffffff (prio 0, rom): pc.bios

FlatView #1
 AS "I/O", root: io
  0000000000000000-0000000000000007 (prio 0, i/o): dma-chan
"""


def test_qmp_texts_are_parsed():
    assert live.parse_ramblocks(TEXT_RAMBLOCK) == {"pc.ram": (0x8000000, 0x8000000), "pc.bios": (0x40000, 0x40000)}
    assert live.parse_flatview(TEXT_MTREE) == [
        (0, 0xC0000, "pc.ram", 0),
        (0xE0000, 0x20000, "pc.bios", 0x20000),
        (0x100000, 0x8000000 - 0x100000, "pc.ram", 0x100000),
        (0xFFFC0000, 0x40000, "pc.bios", 0),
    ]


def test_refuses_a_process_that_is_not_qemu(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "pagecore", "live", "--pid", str(os.getpid()), "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert r.returncode != 0 and "not qemu-system" in r.stderr and "--force" in r.stderr
    assert "Traceback" not in r.stderr and not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------ real guest
def _why_not() -> str | None:
    import shutil

    from pagecore.qemu.capture import newest_kernel

    if os.geteuid() != 0:
        return "needs root (/proc/PID/mem of QEMU, /proc/kpageflags)"
    if shutil.which("qemu-system-x86_64") is None:
        return "qemu-system-x86_64 not installed (apt-get install qemu-system-x86)"
    try:
        newest_kernel()
    except Exception as e:  # turned into the skip reason
        return str(e)
    if not Path("/bin/busybox").exists():
        return "no /bin/busybox (apt-get install busybox-static)"
    return None


TICK = 'i=0; while true; do i=$((i+1)); if [ $((i % 200)) = 0 ]; then echo "TICK $i"; fi; done'


@pytest.fixture(scope="module")
def guest(tmp_path_factory):
    why = _why_not()
    if why:
        pytest.skip(why)
    import pagecore.qemu.capture as cap

    work = tmp_path_factory.mktemp("live")
    mp = pytest.MonkeyPatch()
    mp.setattr(cap, "INIT_SCRIPT", cap.INIT_SCRIPT.replace("while true; do sleep 3600; done", TICK))
    initrd = cap.build_initramfs(work / "initrd.cpio", Path("/bin/busybox"))
    mp.undo()
    notes: list[str] = []
    accel = "auto" if os.access("/dev/kvm", os.R_OK | os.W_OK) else "tcg"
    proc, sock, used, _ = cap.boot_guest(
        "qemu-system-x86_64", accel, cap.newest_kernel(), initrd, 128, work, cap.DEFAULT_APPEND, 15, 300, notes
    )
    with cap.qmp_session(proc, sock) as qmp:  # ends our QEMU (by PID) on leaving
        console = work / f"console-{used}.log"
        state = {"proc": proc, "qmp": qmp, "sock": sock, "work": work, "accel": used, "console": console}
        yield state
        if state["qmp"] is not qmp:  # reconnected after the SIGTERM test handed the socket over
            state["qmp"].close()


def _ticks(console: Path) -> int:
    return console.read_text(errors="replace").count("TICK")


def _table_hashes(path) -> dict[int, int]:
    t = pq.read_table(path, columns=["gpfn", "hash"])
    return dict(zip(t["gpfn"].to_numpy().tolist(), t["hash"].to_numpy().tolist(), strict=True))


@pytest.mark.qemu
def test_paused_live_read_is_exactly_the_dump_and_the_saved_state(guest, tmp_path):
    """Paused guest: live read == dump-guest-memory (ELF) == migration stream, page hash for page hash."""
    from pagecore.pages.ingest import hash_dump
    from pagecore.qemu.savestate import migrate_to_file

    qmp, pid = guest["qmp"], guest["proc"].pid
    qmp.cmd("stop")
    try:
        g = live.locate_by_qmp(pid, qmp)
        meta = live.read_guest(g, tmp_path / "live.parquet", qmp=qmp, pause=True, max_mb_per_s=None)
        qmp.cmd("dump-guest-memory", paging=False, protocol=f"file:{tmp_path / 'guest.elf'}")
        migrate_to_file(qmp, tmp_path / "guest.qevm")
    finally:
        qmp.cmd("cont")
    assert meta["snapshot"] == "paused" and meta["pages_skipped"] == 0
    hash_dump(tmp_path / "guest.elf", tmp_path / "elf.parquet", "elf", show_progress=False)
    hash_dump(tmp_path / "guest.qevm", tmp_path / "qevm.parquet", "qevm", show_progress=False)
    got = _table_hashes(tmp_path / "live.parquet")
    assert got == _table_hashes(tmp_path / "elf.parquet")
    assert got == _table_hashes(tmp_path / "qevm.parquet")
    t = live.read_live_table(tmp_path / "live.parquet")
    assert t.num_rows == len(got) and np.asarray(t["host_present"]).sum() > 0
    print(f"\n{len(got):,} pages; live == ELF == QEVM; {g.how}; notes: {g.notes}")


@pytest.mark.qemu
def test_fuzzy_read_is_marked_and_the_guest_slowdown_measured(guest, tmp_path):
    from pagecore.experiments.analyze import analyze_page_tables

    pid, console = guest["proc"].pid, guest["console"]
    g = live.locate_by_maps(pid)  # the other way of finding RAM: no QMP
    base_secs = 3.0
    a = _ticks(console)
    time.sleep(base_secs)
    base_rate = (_ticks(console) - a) / base_secs
    t0, a = time.monotonic(), _ticks(console)
    meta = live.read_guest(g, tmp_path / "fuzzy.parquet", max_mb_per_s=64)
    secs = time.monotonic() - t0
    read_rate = (_ticks(console) - a) / secs
    assert meta["snapshot"] == "unverified (fuzzy)" and meta["drift_pages"] is not None
    assert meta["pages"] == 32768 and "largest QEMU RAM mapping" in meta["found_by"]
    rep = analyze_page_tables([tmp_path / "fuzzy.parquet"], verify="no")
    assert rep["fuzzy_snapshots"] and rep["total_pages"] == 32768
    print(
        f"\nguest ({guest['accel']}) ticks/s: {base_rate:.1f} idle host, {read_rate:.1f} during a 64 MiB/s fuzzy read "
        f"(two passes, {secs:.1f} s): {read_rate / base_rate if base_rate else float('nan'):.2f}x; "
        f"drift {meta['drift_pages']} pages"
    )


@pytest.mark.qemu
@pytest.mark.slow  # ~30 s on a loaded 2-core host: a fresh `pagecore live` process, a rate-limited read
def test_sigterm_stops_a_paused_read_cleanly(guest, tmp_path):
    """SIGTERM during a --pause read: the guest runs again and no partial table is left."""
    pid, sock = guest["proc"].pid, guest["sock"]
    guest["qmp"].close()  # QMP takes one client at a time: hand the socket to the command
    try:
        p = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pagecore",
                "live",
                "--pid",
                str(pid),
                "--qmp",
                f"{pid}={sock}",
                "--pause",
                "--max-mb-per-s",
                "8",
                "-o",
                str(tmp_path),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        )
        while "found by" not in (line := p.stderr.readline()):  # the guest is located: reading starts
            assert line, "pagecore live exited before reading"
        time.sleep(2)  # mid-read: 128 MiB at 8 MiB/s takes 16 s, the guest paused
        assert guest["proc"].poll() is None
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
    finally:
        from pagecore.qemu.capture import QMP

        guest["qmp"] = QMP(sock)
    assert p.returncode == 130 and "SIGTERM" in err, err
    assert not list(tmp_path.glob("*.parquet"))
    assert guest["qmp"].cmd("query-status")["running"] is True



# ------------------------------------------------------------- a stand-in process (no QEMU needed)
HOLDER = """
import mmap, sys, time
import numpy as np
n = int(sys.argv[1])
m = mmap.mmap(-1, n * 4096, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
m.madvise(mmap.MADV_MERGEABLE)  # what QEMU does to guest RAM
a = np.frombuffer(m, np.uint8).reshape(n, 4096)
rng = np.random.default_rng(7)
for i in range(n):
    a[i] = 0 if i % 4 == 0 else (a[i - 1] if i % 4 == 3 else rng.integers(0, 256, 4096, dtype=np.uint8))
np.save(sys.argv[2], a)
print("ready", flush=True)
time.sleep(600)
"""


@pytest.fixture
def holder(tmp_path):
    """A Python process holding a mergeable anonymous mapping of known pages (ended by its PID)."""
    if not hasattr(__import__("mmap"), "MADV_MERGEABLE"):
        pytest.skip("no MADV_MERGEABLE on this platform")
    n = 2048  # 8 MiB
    p = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(n), str(tmp_path / "pages.npy")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert p.stdout.readline().strip() == "ready"
        yield p.pid, np.load(tmp_path / "pages.npy")
    finally:
        p.kill()
        p.wait()
        p.stdout.close()


def test_stand_in_process_read_is_exact_and_rate_limited(holder, tmp_path):
    """Maps-only locating, exact page hashes, the rate limit as a lower bound on time, fuzzy marking."""
    from pagecore.pages.hashing import hash_pages

    pid, pages = holder
    g = live.locate_by_maps(pid)
    assert g.pages == len(pages) and "largest QEMU RAM mapping" in g.how
    t0 = time.monotonic()
    meta = live.read_guest(g, tmp_path / "t.parquet", max_mb_per_s=16, measure_drift=True)
    secs = time.monotonic() - t0
    assert secs >= 2 * len(pages) * 4096 / (16 << 20) * 0.95  # two passes at <= 16 MiB/s
    h, z = hash_pages(pages)
    got = pq.read_table(tmp_path / "t.parquet")
    assert got["gpfn"].to_numpy().tolist() == list(range(len(pages)))
    assert np.array_equal(got["hash"].to_numpy(), h) and np.array_equal(got["zero"].to_numpy(), z)
    assert meta["snapshot"] == "unverified (fuzzy)" and meta["drift_pages"] == 0  # nothing writes it
    assert got["host_present"].to_numpy().all()


def test_sigterm_stops_a_read_cleanly_without_qemu(holder, tmp_path):
    pid, _ = holder
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pagecore",
            "live",
            "--pid",
            str(pid),
            "--force",
            "--max-mb-per-s",
            "1",
            "-o",
            str(tmp_path),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    while "found by" not in (line := p.stderr.readline()):
        assert line, "pagecore live exited before reading"
    time.sleep(1)  # 8 MiB at 1 MiB/s: mid-read
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130 and "SIGTERM" in err and "Traceback" not in err, err
    assert not list(tmp_path.glob("*.parquet")) and not list(tmp_path.glob(".*"))


def test_series_of_reads_feeds_ksm(holder, tmp_path, capsys):
    """`live --count 3` writes three timed reads; `ksm --series` replays them with the host view.

    The stand-in holds 2,048 pages: 512 zero pages (two KSM pages of max_page_sharing = 256:
    510 saved) and 512 random pages each followed by a copy (512 saved), all present."""
    import json

    from pagecore.cli import main

    pid, _ = holder
    out = tmp_path / "reads"
    cmd = ["live", "--pid", str(pid), "--force", "--count", "3", "--interval", "0.2", "--max-mb-per-s", "0"]
    proc = subprocess.run(
        [sys.executable, "-m", "pagecore", *cmd, "--no-drift", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert proc.returncode == 0, proc.stderr
    tables = sorted(out.glob("*.parquet"))
    assert [t.name.split(".")[-2] for t in tables] == ["0000", "0001", "0002"]
    taken = [live.page_table_meta(t)["taken_at"] for t in tables]
    assert taken == sorted(taken) and taken[2] - taken[0] >= 0.4
    args = ["ksm", *map(str, tables), "--series", "--format", "json", "--pages-to-scan", "1000", "--no-smart-scan"]
    assert main(args) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["series"]["reads"] == 3 and rep["series"]["writes"] == 0  # nothing writes the stand-in
    assert rep["ksm_eligibility"] == "host_view" and rep["series"]["pages_not_eligible"] == 0
    assert (rep["pages_shared"], rep["pages_sharing"]) == (2 + 512, 510 + 512)
    assert rep["savings_pages"] == {"zero": 510, "share_intra": 512, "share_inter": 0}
