"""The QEMU capture script: its pieces without QEMU, and one real capture when QEMU is here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from dumps_helpers import FIXTURE_ARCHIVE, read_all, unpack_fixture

from pagecore.qemu import capture as cap


def _parse_newc(data: bytes) -> dict[str, tuple[int, bytes]]:
    """Minimal reader of a ``newc`` cpio archive: name -> (mode, data)."""
    out, off = {}, 0
    while True:
        assert data[off : off + 6] == b"070701"
        f = [int(data[off + 6 + 8 * i : off + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = f[1], f[6], f[11]
        name = data[off + 110 : off + 110 + namesize - 1].decode()
        off += 110 + namesize
        off += -off % 4
        body = data[off : off + size]
        off += size
        off += -off % 4
        if name == "TRAILER!!!":
            return out
        out[name] = (mode, body)


def test_initramfs_layout(tmp_path):
    bb = tmp_path / "busybox"
    bb.write_bytes(b"\x7fELF fake busybox")
    mod = tmp_path / "qemu_fw_cfg.ko"
    mod.write_bytes(b"module")
    path = cap.build_initramfs(tmp_path / "i.cpio", bb, module=mod, copies=3)
    entries = _parse_newc(path.read_bytes())
    assert entries["bin/busybox"] == (0o100755, bb.read_bytes())
    assert entries["qemu_fw_cfg.ko"][1] == b"module"
    assert entries["dev/console"][0] == 0o020600
    init = entries["init"][1].decode()
    assert init.startswith("#!/bin/busybox sh") and cap.MARKER in init
    assert "-lt 3 ]" in init  # three copies of one file


def test_readme_section_is_replaced_in_place(tmp_path):
    manifest = {
        "qemu_version": "QEMU emulator version 7.2",
        "kernel": "/boot/vmlinuz-x",
        "kernel_version": "x",
        "accel": "tcg",
        "ram_mb": 128,
        "formats_offered": ["elf", "kdump-zlib"],
        "captured_utc": "2026-01-01T00:00:00Z",
        "files": {"guest.raw": {"what": "pmemsave", "bytes": 4096, "sha256": "ab" * 32}},
        "notes": ["kvm: no marker"],
    }
    readme = tmp_path / "README.md"
    readme.write_text("# data\n\nintro\n\n## Other\n\nkeep me\n")
    cap.update_readme(readme, cap.readme_section(manifest))
    first = readme.read_text()
    assert "keep me" in first and "## Real QEMU dumps" in first and "ab" * 32 in first
    manifest["accel"] = "kvm"
    cap.update_readme(readme, cap.readme_section(manifest))
    second = readme.read_text()
    assert second.count("## Real QEMU dumps") == 1 and "accelerator used: kvm" in second
    assert second.replace("accelerator used: kvm", "accelerator used: tcg") == first


@pytest.mark.skipif(not FIXTURE_ARCHIVE.exists(), reason="no real fixture archive")
def test_makedumpfile_elf_keeps_pages(tmp_path):
    """The header rewrite for makedumpfile, on QEMU 7.2's real ELF layout, changes no page."""
    d, _ = unpack_fixture(tmp_path)
    src = d / "guest.elf"
    dst = cap.makedumpfile_elf(src, tmp_path / "fixed.elf")
    import struct

    e_phoff = struct.unpack_from("<Q", dst.read_bytes(), 32)[0]
    assert e_phoff == 64
    assert read_all(dst)[0] == read_all(src)[0]


def test_help_runs():
    r = subprocess.run([sys.executable, "-m", "pagecore.qemu.capture", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "qemu-system-x86" in r.stdout


def test_missing_qemu_is_a_clear_error(tmp_path, capsys):
    rc = cap.main(["-o", str(tmp_path / "out"), "--qemu", "no-such-qemu-binary"])
    err = capsys.readouterr().err
    assert rc == 1 and "no-such-qemu-binary not found" in err and "apt-get install" in err


def test_snakemake_rule_is_off_by_default(tmp_path):
    """capture.smk adds nothing to `all` unless capture.enabled is true."""
    pytest.importorskip("snakemake")
    rules = Path(__file__).resolve().parents[1] / "workflow" / "rules" / "capture.smk"
    for enabled, expect in ((False, False), (True, True)):
        sf = tmp_path / f"Snakefile{enabled}"
        sf.write_text(
            f'config["capture"] = {{"enabled": {enabled}}}\ninclude: "{rules}"\nrule all:\n    input: CAPTURE_OUTPUTS\n'
        )
        r = subprocess.run(
            [sys.executable, "-m", "snakemake", "-s", str(sf), "-n", "--cores", "1", "-d", str(tmp_path)],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stderr[-2000:]
        assert ("capture_qemu_dumps" in r.stdout + r.stderr) is expect


def _qemu_ready() -> str | None:
    if shutil.which("qemu-system-x86_64") is None:
        return "qemu-system-x86_64 not installed (apt-get install qemu-system-x86)"
    if not list(Path("/boot").glob("vmlinuz-*")):
        return "no kernel in /boot (apt-get install linux-image-amd64)"
    if not Path("/bin/busybox").exists():
        return "no /bin/busybox (apt-get install busybox-static)"
    return None


@pytest.mark.qemu
@pytest.mark.skipif(_qemu_ready() is not None, reason=_qemu_ready() or "")
def test_real_capture_every_format_agrees(tmp_path):
    """Boot, pause, dump in every format: every reader returns the raw image's pages."""
    kvm = os.access("/dev/kvm", os.R_OK | os.W_OK)
    res = cap.capture(tmp_path, accel="auto" if kvm else "tcg", kvm_timeout=10, tcg_timeout=300)
    assert res.accel in ("kvm", "tcg") and res.qemu_version.startswith("QEMU")
    assert "elf" in res.formats_offered
    raw, _ = read_all(tmp_path / "guest.raw")
    assert len(raw) == res.ram_mb * 256
    for name in res.files:
        if name == "guest.raw":
            continue
        got, stats = read_all(tmp_path / name)
        common = set(got) & set(raw)
        assert common and all(got[g] == raw[g] for g in common), name
        if ".d31-" not in name:
            # everything outside pmemsave's range is the BIOS ROM mapped below 4 GiB
            assert set(raw) <= set(got) and all(g >= 0xFFFC0 for g in set(got) - set(raw)), name
        else:
            assert stats.pages_excluded > 0


def test_a_signal_while_a_guest_boots_ends_its_qemu(tmp_path):
    """SIGTERM while waiting for the workload marker: the QEMU just started ran on (seen with
    `pagecore qemu capture`: exit 143, qemu-system-x86_64 still running, re-parented to init).
    The stand-in "QEMU" is a shell that records its PID and sleeps."""
    import signal
    import threading

    fake = tmp_path / "qemu-stand-in"
    fake.write_text(f"#!/bin/sh\necho $$ > {tmp_path / 'pid'}\nexec sleep 60\n")
    fake.chmod(0o755)

    class Stop(BaseException):
        pass

    def stop(signum, frame):
        raise Stop

    old = signal.signal(signal.SIGTERM, stop)
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    try:
        timer.start()
        with pytest.raises(Stop):
            cap._boot(str(fake), "tcg", tmp_path / "k", tmp_path / "i", 64, tmp_path, 30, "")
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, old)
    pid = int((tmp_path / "pid").read_text())
    alive = os.path.exists(f"/proc/{pid}") and "Z" not in open(f"/proc/{pid}/stat").read().split(")")[1][:3]
    if alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive


def _fake_guest(monkeypatch, fail_on: str | None):
    """capture() with a stand-in guest: pmemsave writes 4 zero pages, dump-guest-memory a marker,
    and the command ``fail_on`` fails part-way (as QEMU's does when the disk fills up)."""
    import contextlib

    class FakeQMP:
        def cmd(self, name, **kw):
            size = 4096 if name == fail_on else 4 * 4096  # a failing write stops part-way
            if name == "pmemsave":
                Path(kw["filename"]).write_bytes(bytes(size))
            elif name == "dump-guest-memory":
                Path(kw["protocol"].removeprefix("file:")).write_bytes(b"ELF new" * size)
            if name == fail_on:
                raise cap.CaptureError(f"QMP {name}: No space left on device")
            if name == "query-memory-size-summary":
                return {"base-memory": 4 * 4096}
            elif name == "query-dump-guest-memory-capability":
                return {"formats": ["elf"]}
            return {}

    @contextlib.contextmanager
    def session(proc, sock):
        yield FakeQMP()

    monkeypatch.setattr(cap, "_which", lambda name, hint: name)
    monkeypatch.setattr(cap, "qemu_version", lambda q: "QEMU stand-in")
    monkeypatch.setattr(cap, "boot_guest", lambda *a, **k: (None, Path("sock"), "tcg", 0.1))
    monkeypatch.setattr(cap, "qmp_session", session)


@pytest.mark.parametrize("fail_on", ["pmemsave", "dump-guest-memory"])
def test_a_failed_capture_keeps_the_earlier_one_whole(tmp_path, monkeypatch, fail_on):
    """A capture into the directory of an earlier one that failed mid-way overwrote its guest.raw
    (pmemsave writes straight to the output) and left the new files beside the old manifest."""
    out = tmp_path / "cap"
    out.mkdir()
    for name in ("guest.raw", "guest.elf", "manifest.json"):
        (out / name).write_text(f"earlier {name}\n")
    (tmp_path / "vmlinuz-x").write_bytes(b"kernel")
    (tmp_path / "busybox").write_bytes(b"busybox")
    _fake_guest(monkeypatch, fail_on)
    with pytest.raises(cap.CaptureError, match="No space left"):
        cap.capture(out, kernel=tmp_path / "vmlinuz-x", busybox=tmp_path / "busybox", makedumpfile=False)
    assert sorted(p.name for p in out.iterdir() if p.name != ".work") == ["guest.elf", "guest.raw", "manifest.json"]
    for name in ("guest.raw", "guest.elf", "manifest.json"):
        assert (out / name).read_text() == f"earlier {name}\n"


def test_a_capture_appears_whole(tmp_path, monkeypatch):
    out = tmp_path / "cap"
    (tmp_path / "vmlinuz-x").write_bytes(b"kernel")
    (tmp_path / "busybox").write_bytes(b"busybox")
    _fake_guest(monkeypatch, None)
    res = cap.capture(out, kernel=tmp_path / "vmlinuz-x", busybox=tmp_path / "busybox", makedumpfile=False)
    assert sorted(p.name for p in out.iterdir()) == ["guest.elf", "guest.lime", "guest.raw", "manifest.json"]
    manifest = __import__("json").loads((out / "manifest.json").read_text())
    assert set(manifest["files"]) == {"guest.elf", "guest.lime", "guest.raw"} and res.out_dir == out
    assert (out / "guest.raw").read_bytes() == bytes(4 * 4096)


def test_fixture_archive_is_atomic(tmp_path, monkeypatch):
    """``capture --fixtures``: an archive that fails half-way leaves neither a cut archive nor
    its temporary (``qemu-guest.tar.tmp`` stayed behind), and a good one is whole."""
    import tarfile

    cap_dir = tmp_path / "cap"
    cap_dir.mkdir()
    (cap_dir / "guest.raw").write_bytes(np.arange(64 * 4096, dtype=np.uint32).astype(np.uint8).tobytes())
    (cap_dir / "manifest.json").write_text(
        json.dumps({"files": {"guest.raw": {"what": "pmemsave", "bytes": 64 * 4096, "sha256": "0" * 64}}})
    )
    dest = tmp_path / "out"
    real_addfile = tarfile.TarFile.addfile

    def fail(self, ti, fh=None):
        if ti.name != "manifest.json":
            raise OSError(28, "No space left on device")
        return real_addfile(self, ti, fh)

    monkeypatch.setattr(tarfile.TarFile, "addfile", fail)
    with pytest.raises(Exception, match="No space left"):
        cap.make_fixtures(cap_dir, dest, windows=[(0, 8)])
    assert sorted(p.name for p in dest.iterdir()) == []
    monkeypatch.setattr(tarfile.TarFile, "addfile", real_addfile)
    fixture = cap.make_fixtures(cap_dir, dest, windows=[(0, 8)])
    assert sorted(p.name for p in dest.iterdir()) == [fixture["archive"]["name"]]
    with tarfile.open(dest / fixture["archive"]["name"], "r:xz") as tar:
        assert sorted(tar.getnames()) == ["guest.raw", "manifest.json"]
