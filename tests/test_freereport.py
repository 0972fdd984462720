"""Free page reporting on real guests (pagecore.qemu.freereport): console parsing, the initramfs, the
delay measure, and (slow, root + QEMU) the measured host memory against the cooperative model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pagecore.qemu import freereport as fr

BUSYBOX = Path("/bin/busybox")

CONSOLE = """\
PCFREE-ORDERPARAM 9
PCFREE-DMESG [    7.7] Free page reporting enabled
PAGECORE-WORKLOAD-READY
PCFREE phase1 touched
PCFREE phase1 freeing
PCFREE-DUMP-BEGIN
PCFREE-BUDDY Node 0, zone      DMA      0      0      0      0      0      1      1      1      0      1      3
PCFREE-Z Node 0, zone      DMA
PCFREE-Z   pages free     3808
PCFREE-Z         low      42
PCFREE-Z         managed  3840
PCFREE-Z   start_pfn:           1
PCFREE-Z Node 0, zone    DMA32
PCFREE-Z   pages free     100
PCFREE-Z         low      513
PCFREE-F 120 ee0
PCFREE-F 2000 10
PCFREE-PFNS 10000
PCFREE-DONE
"""


def test_parse_console():
    p = fr.parse_console(CONSOLE)
    assert p["runs"] == [(0x120, 0xEE0), (0x2000, 0x10)]
    assert p["free_pages"] == 0xEE0 + 0x10
    assert p["zones"]["DMA"] == {"pages_free": 3808, "low": 42, "managed": 3840, "start_pfn": 1}
    assert p["zones"]["DMA32"]["low"] == 513
    assert p["zoneinfo_free_pages"] == 3908
    assert p["pfns"] == 0x10000
    assert p["buddyinfo"][0]["zone"] == "DMA" and p["buddyinfo"][0]["counts"][-1] == 3
    assert p["orderparam"] == ["9"]


def test_guest_free_mask_clips_to_ram():
    m = fr.guest_free_mask([(2, 3), (9, 5)], 10)
    assert m.tolist() == [False, False, True, True, True, False, False, False, False, True]


def test_params_for_uses_guest_watermarks_and_ignores_unset_order():
    g = {"console": fr.parse_console(CONSOLE)}
    p = fr.params_for(g)
    assert (p.order, p.low("DMA"), p.low("DMA32")) == (9, 42, 513)
    g["console"]["orderparam"] = ["11"]  # MAX_ORDER: no reporting device registered
    assert fr.params_for(g).order == 9


def test_reclaim_delay_finds_ninety_percent_of_the_drop():
    t = np.arange(0, 20, 0.1)
    ram = np.where(t < 12.5, 200_000, 100_000)  # free at 10 s, drop at 12.5 s
    s = [{"t": float(a), "ram_kb": int(b)} for a, b in zip(t, ram, strict=True)]
    d = fr.reclaim_delay(s, 10.0, 19.9)
    assert d["drop_kb"] == 100_000
    assert d["delay_s"] == pytest.approx(2.5, abs=0.11)
    flat = [{"t": float(a), "ram_kb": 5} for a in t]
    assert fr.reclaim_delay(flat, 10.0, 19.9)["delay_s"] is None


def test_initramfs_has_workload_and_modules(tmp_path):
    kernels = sorted(p.name.removeprefix("vmlinuz-") for p in Path("/boot").glob("vmlinuz-*"))
    if not kernels or not os.path.exists("/bin/busybox"):
        pytest.skip("needs a kernel in /boot and /bin/busybox")
    kver = kernels[-1]
    if not os.path.exists(f"/lib/modules/{kver}/kernel/drivers/virtio/virtio_balloon.ko"):
        pytest.skip(f"kernel {kver} has no uncompressed virtio_balloon.ko")
    fake = tmp_path / "pcfree"
    fake.write_bytes(b"\x7fELF")
    out = fr.build_initramfs(tmp_path / "i.cpio", BUSYBOX, fake, kver, settle=1, alloc_mb=8, hold=1, gap=2, reuse_mb=4)
    data = out.read_bytes()
    for name in (b"mod/virtio_balloon.ko", b"mod/virtio_pci.ko", b"pcfree\0", b"init\0"):
        assert name in data
    assert b"/pcfree alloc 8 1 phase1" in data and b"/pcfree alloc 4 1 phase2" in data
    with pytest.raises(ValueError, match="REUSE_MB"):
        fr.build_initramfs(tmp_path / "j.cpio", BUSYBOX, fake, kver, settle=1, alloc_mb=8, hold=1, gap=2)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_pcfree_builds_and_reads_this_hosts_free_pages(tmp_path):
    try:
        exe = fr.build_pcfree(tmp_path / "pcfree")
    except fr.CaptureError as exc:
        pytest.skip(f"cannot build the guest program here: {exc}")
    if not os.access("/proc/kpageflags", os.R_OK):
        pytest.skip("/proc/kpageflags not readable (needs root)")
    out = subprocess.run([str(exe), "freelist"], capture_output=True, text=True, check=True).stdout
    p = fr.parse_console(out)
    assert p["pfns"] > 0 and p["free_pages"] > 0
    with open("/proc/zoneinfo") as fh:
        nr_free = sum(int(line.split()[2]) for line in fh if line.strip().startswith("pages free"))
    # the host keeps allocating and freeing while we read: within 5 % of the kernel's own count
    assert abs(p["free_pages"] - nr_free) <= 0.05 * nr_free


@pytest.mark.slow
@pytest.mark.qemu
def test_real_guests_match_the_model(tmp_path):
    """Two 256 MiB guests (reporting on / off), ~3.5 min under TCG: steady-state guest RAM
    residency within 5 % of the prediction made from the reporting-off guest, the reclaim delay
    within 30 % of the model's, and every page the model says was reported absent on the host."""
    why = fr.unavailable_reason()
    if why:
        pytest.skip(why)
    res = fr.run(tmp_path)
    c = res["compare"]
    assert abs(c["steady"]["ram_error"]) <= 0.05, fr.summary_lines(res)
    assert c["delay"]["measured_delay_s"] is not None
    assert abs(c["delay"]["delay_error"]) <= 0.30, fr.summary_lines(res)
    assert c["consistency"]["reported_pages_host_absent"] >= 0.99
    # without reporting, freeing memory gives the host nothing back
    assert c["delay"]["off_drop_kb"] < 0.05 * c["delay"]["on_drop_kb"]


def test_write_table_is_a_page_table_with_guest_free_and_host_view(tmp_path):
    from pagecore.experiments.cooperative import free_report
    from pagecore.pages import page_table_frame, page_table_metadata

    raw = tmp_path / "ram.raw"
    pages = np.zeros((8, 4096), np.uint8)
    pages[1, 0] = 1
    pages[5, 7] = 9
    raw.write_bytes(pages.tobytes())
    present = np.array([1, 1, 0, 0, 1, 1, 0, 1], bool)
    out = tmp_path / "g.pages.parquet"
    assert fr.write_table(out, "g", raw, [(2, 4)], present) == 8
    assert page_table_frame([out])["gpfn"].tolist() == list(range(8))  # a valid page table
    df = pd.read_parquet(out)  # with the optional columns
    assert df["gpfn"].tolist() == list(range(8))
    assert df["guest_free"].tolist() == [False, False, True, True, True, True, False, False]
    assert df["host_present"].tolist() == present.tolist()
    assert df["zero"].tolist() == [True, False, True, True, True, False, True, True]
    assert page_table_metadata(out)["format"] == "raw"
    assert (
        free_report(df, fr.ReportingParams(order=1, max_order=2, capacity=1, zones=(("Z", 0),)))["discarded"].iloc[0]
        == 2
    )  # chunks (2,3) and (4,5) are free; of them only 4 and 5 are backed
    with pytest.raises(fr.CaptureError, match="pagemap"):
        fr.write_table(out, "g", raw, [], present[:3])


def test_a_guests_files_appear_together_or_not_at_all(tmp_path):
    """A guest's table, samples, console log and run file were written one after the other, the run
    file (which --reuse-runs trusts) last: a run stopped in between left a new table beside an
    earlier run's samples and run file (session 19). They now appear together or not at all."""
    raw = tmp_path / "ram.raw"
    raw.write_bytes(np.zeros((4, 4096), np.uint8).tobytes())
    console = tmp_path / "console.log"
    out = tmp_path / "out"
    out.mkdir()
    res = {"name": "fpr-on", "reporting": True, "table": str(out / "fpr-on.pages.parquet"),
           "samples": [{"t": 0.0, "ram_kb": 1}], "marks": {}}  # fmt: skip
    earlier = {p: f"earlier {p}" for p in ("fpr-on.samples.csv", "fpr-on.run.json")}
    for p, text in earlier.items():
        (out / p).write_text(text)
    with pytest.raises(OSError):  # the console log is gone: the last but one file fails
        fr.write_guest_files(out, res, raw, [], np.ones(4, bool), console)
    assert {p.name: p.read_text() for p in out.iterdir()} == earlier  # no new table, nothing left over
    console.write_text("PCFREE-DONE\n")
    fr.write_guest_files(out, res, raw, [], np.ones(4, bool), console)
    assert sorted(p.name for p in out.iterdir()) == [
        "fpr-on.console.log", "fpr-on.pages.parquet", "fpr-on.run.json", "fpr-on.samples.csv",
    ]  # fmt: skip
    assert json.loads((out / "fpr-on.run.json").read_text())["name"] == "fpr-on"


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--interval", "0"], "--interval must be"),
        (["--interval", "-1"], "--interval must be"),
        (["--interval", "nan"], "--interval must be"),
        (["--gap", "-3"], "--gap must be at least 0"),
        (["--ram-mb", "0"], "--ram-mb must be at least 1"),
    ],
)
def test_bad_numbers_are_usage_errors_before_any_guest(tmp_path, capsys, monkeypatch, args, needle):
    """`--interval -1` (or 0, or NaN) sampled the guest in a busy loop; `--gap -3` and `--ram-mb 0`
    went on to boot guests. Each is a usage error now, before anything is built or booted."""
    monkeypatch.setattr(fr, "run", lambda *a, **k: pytest.fail("a guest run started"))
    with pytest.raises(SystemExit) as e:
        fr.main(["-o", str(tmp_path / "out"), *args])
    assert e.value.code == 2 and needle in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
