"""Session 25's audit of the host settings pagecore changes (KSM, zram) and the processes it ends.

Each test replays one finding on a stand-in sysfs directory (plain files, no root, no KSM or
zram needed): a saved-state file that must not be trusted is refused in one line *before*
anything is written to the host or any process is ended; a process is ended only while it is
still the one that was started.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pagecore.qemu import ksmcheck

KNOB_VALUES = {
    "run": "0",
    "pages_to_scan": "100",
    "sleep_millisecs": "20",
    "use_zero_pages": "0",
    "smart_scan": "1",
    "max_page_sharing": "256",
    "advisor_mode": "[none] scan-time",
    "pages_shared": "0",
    "full_scans": "0",
}
LEFT = {"pages_to_scan": "1000\n", "smart_scan": "0\n", "run": "1\n"}  # what a killed run left


@pytest.fixture
def fake_ksm(tmp_path):
    """A stand-in /sys/kernel/mm/ksm as a killed check left it (KSM on, knobs changed)."""
    d = tmp_path / "ksm"
    d.mkdir()
    for k, v in KNOB_VALUES.items():
        (d / k).write_text(v + "\n")
    for k, v in LEFT.items():
        (d / k).write_text(v)
    return d


def _dead_pid() -> dict:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return {"pid": p.pid, "start": 12345}


def _killed_runs_file(path, **edit) -> dict:
    """The state file of a check killed after it saved the settings (its owner is gone)."""
    found = {k: v for k, v in KNOB_VALUES.items()}
    state = ksmcheck.save_state(path, found, (), {k: v.strip() for k, v in LEFT.items()})  # what it wrote
    state["owner"] = _dead_pid()
    state.update(edit)
    path.write_text(json.dumps(state))
    os.chmod(path, 0o644)
    return state


def _untouched(ksm) -> bool:
    return all((ksm / k).read_text() == v for k, v in LEFT.items())


# ------------------------------------------------------------------ KSM: whose file is trusted
def test_ksm_state_file_through_a_symlink_is_refused(fake_ksm, tmp_path):
    """``--state-file``/``PAGECORE_KSM_STATE`` may name a world-writable directory: a link planted
    there was followed, and the file it pointed at (anyone's) restored as root."""
    elsewhere = tmp_path / "planted.json"
    _killed_runs_file(elsewhere, knobs={"pages_to_scan": "7", "sleep_millisecs": "20"})
    link = tmp_path / "state.json"
    link.symlink_to(elsewhere)
    with pytest.raises(ksmcheck.CaptureError, match="symbolic link") as e:
        ksmcheck.recover_leftovers(link, fake_ksm)
    assert str(link) in str(e.value) and "\n" not in str(e.value)
    assert _untouched(fake_ksm) and link.is_symlink()


@pytest.mark.parametrize("how", ["writable by others", "another owner"])
def test_ksm_state_file_others_could_write_is_refused(fake_ksm, tmp_path, how):
    """A file others may write (or another user's) names values to write into sysfs and QEMU PIDs
    to end as root: it was restored like our own."""
    state = tmp_path / "state.json"
    _killed_runs_file(state)
    if how == "writable by others":
        os.chmod(state, 0o666)
    else:
        if os.geteuid() != 0:
            pytest.skip("needs root to give the file to another user")
        os.chown(state, 65534, 65534)
    with pytest.raises(ksmcheck.CaptureError, match="not a ksmcheck state file of this user") as e:
        ksmcheck.recover_leftovers(state, fake_ksm)
    assert "\n" not in str(e.value)
    assert _untouched(fake_ksm) and state.exists()


def test_ksm_state_saved_under_a_loose_umask_is_ours_next_time(fake_ksm, tmp_path):
    """A check run with umask 000 must still be able to restore its own leftovers."""
    state = tmp_path / "state.json"
    old = os.umask(0)
    try:
        ksmcheck.save_state(state, ksmcheck.read_ksm(fake_ksm))
    finally:
        os.umask(old)
    assert state.stat().st_mode & 0o777 == 0o644


# ------------------------------------------------------------ KSM: values written back to sysfs
@pytest.mark.parametrize(
    "knob, value",
    [
        ("pages_to_scan", "-1"),
        ("pages_to_scan", str(10**30)),
        ("pages_to_scan", "4294967296"),
        ("sleep_millisecs", "20\n0"),
        ("sleep_millisecs", ""),
        ("max_page_sharing", "0x10"),
        ("smart_scan", "2"),
        ("use_zero_pages", "yes"),
        ("advisor_mode", "../../../../tmp/x"),
    ],
)
def test_ksm_saved_value_no_kernel_could_show_is_refused_before_any_write(fake_ksm, tmp_path, knob, value):
    """A value no kernel shows for that knob was written back as found (after run=2, run=0 had
    already been written), leaving KSM half restored; now the file is refused whole first."""
    state = tmp_path / "state.json"
    _killed_runs_file(state, knobs={**{k: ksmcheck.knob_value(k, KNOB_VALUES[k]) for k in ksmcheck.KNOBS}, knob: value})
    with pytest.raises(ksmcheck.CaptureError, match=f"knob {knob} = ") as e:
        ksmcheck.recover_leftovers(state, fake_ksm)
    assert str(state) in str(e.value) and "\n" not in str(e.value)
    assert _untouched(fake_ksm) and (fake_ksm / knob).read_text() == LEFT.get(knob, KNOB_VALUES[knob] + "\n")


# ---------------------------------------------------------------- KSM: the processes a file names
def test_a_pid_reused_between_the_check_and_the_signal_is_not_signalled(fake_ksm, tmp_path, monkeypatch):
    """The leftover guest's PID and start time were checked, then the PID was signalled by number
    (SIGTERM, and SIGKILL 10 s later however the PID's owner changed meanwhile). Here the process
    under that PID has changed by the time the signal goes out: it must be left alone."""
    from pagecore.qemu import live

    monkeypatch.setattr(live, "qemu_reason", lambda pid: None)  # the stand-in passes for QEMU
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = ksmcheck._proc_start(other.pid)
        state = tmp_path / "state.json"
        _killed_runs_file(state, guests=[{"pid": other.pid, "start": start}])
        calls = []

        def reused(pid):  # the recorded process on the first look, another one (same PID) after
            calls.append(pid)
            return start if pid == other.pid and len([c for c in calls if c == other.pid]) == 1 else start + 1

        monkeypatch.setattr(ksmcheck, "_proc_start", reused)
        r = ksmcheck.recover_leftovers(state, fake_ksm)
        assert r["ended_guests"] == []
        with pytest.raises(subprocess.TimeoutExpired):
            other.wait(0.3)  # still running: never signalled
    finally:
        other.kill()
        other.wait()


def test_an_owner_recorded_without_a_start_time_does_not_block_recovery_forever(fake_ksm, tmp_path):
    """A record whose start time is null matched any PID that no longer exists (None == None): a
    dead owner passed for "another ksmcheck is running" and the leftovers were never restored."""
    state = tmp_path / "state.json"
    _killed_runs_file(state, owner={"pid": _dead_pid()["pid"], "start": None})
    r = ksmcheck.recover_leftovers(state, fake_ksm)
    assert r is not None and not state.exists()
    assert (fake_ksm / "pages_to_scan").read_text() == "100\n" and (fake_ksm / "run").read_text() == "0\n"


def test_a_guest_is_recorded_as_soon_as_qemu_runs_not_once_it_booted(fake_ksm, tmp_path, monkeypatch):
    """Each QEMU was written to the state file only after its boot (up to 30 s under KVM, 600 s
    under TCG): a check killed (SIGKILL) meanwhile left QEMU running, unknown to the next run, its
    mergeable memory then keeping every later check waiting. Here the stand-in "boot" looks at the
    state file the moment QEMU runs."""
    from pathlib import Path

    procs: list[subprocess.Popen] = []
    recorded: list[list[int]] = []
    state = tmp_path / "state.json"

    def boot_guest(qemu, use, kernel, initrd, ram_mb, d, append, kvm_t, tcg_t, notes, on_start=None):
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        procs.append(p)
        on_start(p.pid)
        recorded.append([g["pid"] for g in json.loads(state.read_text())["guests"]])  # a SIGKILL here
        return p, d / "qmp.sock", "tcg", 0.1

    monkeypatch.setattr(ksmcheck, "boot_guest", boot_guest)
    from test_ksmcheck_logic import FakeQMP

    monkeypatch.setattr(ksmcheck, "QMP", FakeQMP)
    monkeypatch.setattr(ksmcheck, "_which", lambda name, hint: name)
    monkeypatch.setattr(ksmcheck, "newest_kernel", lambda: Path("/boot/vmlinuz-stand-in"))
    monkeypatch.setattr(ksmcheck, "build_workload_initramfs", lambda path, w: path)
    for k, v in KNOB_VALUES.items():
        (fake_ksm / k).write_text(v + "\n")
    try:
        with ksmcheck.KsmSession(state, fake_ksm, foreign_wait_s=0) as s:
            guests = ksmcheck.boot_scenario(s, ["base", "base"], tmp_path / "work")
            ksmcheck.end_guests(guests)
        assert recorded == [[procs[0].pid], [procs[0].pid, procs[1].pid]]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()


def test_boot_reports_qemus_pid_before_waiting_and_ends_it_if_the_caller_cannot_record_it(tmp_path):
    """:func:`pagecore.qemu.capture._boot` calls ``on_start(pid)`` while QEMU runs; if recording
    fails (disk full writing the state file), that QEMU is ended, not left behind."""
    from pagecore.qemu import capture

    qemu = tmp_path / "qemu-system-x86_64"
    qemu.write_text("#!/bin/sh\nexec sleep 60\n")
    qemu.chmod(0o755)
    seen = []

    def on_start(pid):
        seen.append((pid, ksmcheck._proc_start(pid)))
        raise OSError("no space left on device")

    with pytest.raises(OSError, match="no space"):
        capture._boot(str(qemu), "tcg", tmp_path / "k", tmp_path / "i", 64, tmp_path, 30, "", on_start=on_start)
    assert len(seen) == 1 and seen[0][1] is not None
    assert ksmcheck._proc_start(seen[0][0]) != seen[0][1]  # ended (and reaped)


# ------------------------------------------------------------------------ zram: a device in use
@pytest.fixture
def fake_zram(tmp_path, monkeypatch):
    """A stand-in /sys/block/zram9 left configured by a killed check, and that check's saved file."""
    from pathlib import Path

    from pagecore.qemu import zramcheck

    dev = tmp_path / "sys" / "zram9"
    dev.mkdir(parents=True)
    (dev / "comp_algorithm").write_text("lzo-rle lzo [lz4]\n")
    (dev / "disksize").write_text("46137344\n")
    (dev / "reset").write_text("")
    (tmp_path / "state").mkdir()
    monkeypatch.setattr(zramcheck, "sysfs", lambda d: tmp_path / "sys" / d)
    monkeypatch.setattr(zramcheck, "STATE_DIR", tmp_path / "state")
    boot = Path("/proc/sys/kernel/random/boot_id")
    saved = {"device": "zram9", "comp_algorithm": "lzo-rle", "disksize": 0}
    saved["boot_id"] = boot.read_text().strip() if boot.exists() else None
    zramcheck.state_file("zram9").write_text(json.dumps(saved))
    os.chmod(zramcheck.state_file("zram9"), 0o644)
    return dev, zramcheck.state_file("zram9")


def test_a_zram_held_by_another_device_is_not_reset(fake_zram, capsys):
    """Since the killed run, the device became an LVM physical volume (``holders/dm-0``): only
    /proc/swaps and /proc/mounts were looked at, so the restore reset it."""
    from pagecore.qemu import zramcheck

    dev, state = fake_zram
    (dev / "holders").mkdir()
    (dev / "holders" / "dm-0").write_text("")
    assert zramcheck.main(["no-dump-needed.raw", "--device", "zram9"]) == 1
    err = capsys.readouterr().err
    assert "is in use now" in err and len(err.strip().splitlines()) == 1, err
    assert (dev / "reset").read_text() == "" and state.exists()


def test_a_restore_the_kernel_refuses_is_one_line_and_keeps_the_file(fake_zram, monkeypatch, capsys):
    """Swap on the device through another device node (``mknod /tmp/z b 253 0; swapon /tmp/z``:
    /proc/swaps shows /tmp/z) passed the in-use check; the kernel refused the reset (EBUSY) and
    the user got a traceback. Seen on a real zram0; here the kernel's refusal is the stand-in's."""
    import errno

    from pagecore.qemu import zramcheck

    dev, state = fake_zram
    real_write = zramcheck._write

    def busy(p, value):
        if p.name == "reset":
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), str(p))
        real_write(p, value)

    monkeypatch.setattr(zramcheck, "_write", busy)
    assert zramcheck.main(["no-dump-needed.raw", "--device", "zram9"]) == 1
    err = capsys.readouterr().err
    assert "Device or resource busy" in err and str(dev / "reset") in err and len(err.strip().splitlines()) == 1, err
    assert state.exists() and (dev / "comp_algorithm").read_text() == "lzo-rle lzo [lz4]\n"


def test_a_real_zram_swap_through_another_device_node_counts_as_in_use(tmp_path):
    """The finding on a real device: swap through a second device node is invisible to
    /proc/swaps' ``/dev/zram0``; the exclusive open sees it."""
    import shutil
    from pathlib import Path

    from pagecore.qemu import zramcheck

    dev = "zram0"
    if os.geteuid() != 0 or not zramcheck.sysfs(dev).is_dir() or not shutil.which("mkswap"):
        pytest.skip("needs root, /sys/block/zram0 and mkswap")
    with zramcheck.lock(dev):  # never under a running check
        if int(zramcheck._read(zramcheck.sysfs(dev) / "disksize")) != 0 or zramcheck.in_use(dev):
            pytest.skip("zram0 is configured or in use: not ours to touch")
        algo = zramcheck.selected_algorithm(dev)
        node = tmp_path / "zalias"
        try:
            zramcheck._write(zramcheck.sysfs(dev) / "disksize", str(16 << 20))
            subprocess.run(["mkswap", f"/dev/{dev}"], check=True, capture_output=True)
            os.mknod(node, 0o600 | 0o060000, os.stat(f"/dev/{dev}").st_rdev)
            if subprocess.run(["swapon", str(node)], capture_output=True).returncode != 0:
                pytest.skip("swapon refused here")
            try:
                assert f"/dev/{dev} " not in Path("/proc/swaps").read_text()  # what the old check looked for
                assert zramcheck.in_use(dev)
            finally:
                subprocess.run(["swapoff", str(node)], check=True)
        finally:
            zramcheck._write(zramcheck.sysfs(dev) / "reset", "1")
            zramcheck._write(zramcheck.sysfs(dev) / "comp_algorithm", algo)
        assert not zramcheck.in_use(dev)


# ------------------------------------------------------- saved-state files: never through a link
def test_ksm_state_saved_over_a_planted_link_replaces_the_link_not_its_target(fake_ksm, tmp_path):
    """A link planted at the state file's name (``--state-file`` in /tmp, before the first save)
    was followed: root replaced the file it named with JSON (and made it 0644)."""
    victim = tmp_path / "shadow"
    victim.write_text("root:secret\n")
    os.chmod(victim, 0o600)
    state = tmp_path / "state.json"
    state.symlink_to(victim)
    ksmcheck.save_state(state, ksmcheck.read_ksm(fake_ksm))
    assert victim.read_text() == "root:secret\n" and victim.stat().st_mode & 0o777 == 0o600
    assert not state.is_symlink() and json.loads(state.read_text())["version"] == 1
    assert state.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ksm", "shadow", "state.json"]  # no temporary left


def test_zram_settings_saved_over_a_link_planted_meanwhile_leave_its_target_alone(fake_zram):
    """zramcheck looks for a state file at the start, then computes the dump's page sizes
    (seconds to minutes), then saves: a link planted in world-writable /var/tmp meanwhile made
    root replace the file it named. Here the link is planted just before the save."""
    from pagecore.qemu import zramcheck

    dev, state = fake_zram
    state.unlink()
    (dev / "disksize").write_text("0\n")
    victim = state.parent.parent / "shadow"
    victim.write_text("root:secret\n")
    os.chmod(victim, 0o600)
    state.symlink_to(victim)
    zramcheck.save_settings("zram9")
    assert victim.read_text() == "root:secret\n" and victim.stat().st_mode & 0o777 == 0o600
    assert not state.is_symlink() and zramcheck.load_state("zram9")["device"] == "zram9"


def test_a_state_file_that_cannot_be_written_is_one_line(fake_ksm, tmp_path):
    from pagecore.errors import InputError

    (tmp_path / "a-file").write_text("")
    with pytest.raises(InputError, match="cannot write the state file") as e:
        ksmcheck.save_state(tmp_path / "a-file" / "state.json", ksmcheck.read_ksm(fake_ksm))
    assert "a-file" in str(e.value) and "\n" not in str(e.value)


def _killed_state(fake_ksm, tmp_path, applied):
    """A state file as a check killed (SIGKILL) after writing ``applied`` left it."""
    from test_ksmcheck_logic import _dead_pid

    state = tmp_path / "state.json"
    for k, v in KNOB_VALUES.items():  # KSM idle, as a check finds it
        (fake_ksm / k).write_text(v + "\n")
    ksmcheck.save_state(state, ksmcheck.read_ksm(fake_ksm), (), applied)
    saved = json.loads(state.read_text())
    saved["owner"] = dict(zip(("pid", "start"), _dead_pid(), strict=True))
    state.write_text(json.dumps(saved))
    state.chmod(0o644)
    for k, v in applied.items():
        (fake_ksm / k).write_text(v + "\n")
    return state


def test_set_records_what_it_writes_before_writing_it(fake_ksm, tmp_path):
    state = tmp_path / "state.json"
    for k, v in KNOB_VALUES.items():
        (fake_ksm / k).write_text(v + "\n")
    with ksmcheck.KsmSession(state, fake_ksm) as s:
        s.set(pages_to_scan=1000, smart_scan=False, run=1)
        assert json.loads(state.read_text())["applied"] == {"pages_to_scan": "1000", "smart_scan": "0", "run": "1"}
        s.set(run=2)
        assert json.loads(state.read_text())["applied"]["run"] == "2"
    assert not state.exists()


def test_a_ksm_changed_since_the_killed_check_is_left_alone(fake_ksm, tmp_path):
    """Recovery restored the saved settings whatever KSM held now: an admin (or ksmtuned) who
    switched KSM on after the check was killed had every page unmerged (run=2) and KSM turned off.
    Now a KSM that differs from what the check left is refused, nothing written, the file kept."""
    state = _killed_state(fake_ksm, tmp_path, {"pages_to_scan": "1000", "run": "1"})
    (fake_ksm / "sleep_millisecs").write_text("50\n")  # someone else's setting since
    before = {f.name: f.read_text() for f in fake_ksm.iterdir()}
    want = r"KSM was changed since the killed check \(sleep_millisecs is 50, the check left it at 20\)"
    with pytest.raises(ksmcheck.CaptureError, match=want):
        ksmcheck.KsmSession(state, fake_ksm).__enter__()
    assert {f.name: f.read_text() for f in fake_ksm.iterdir()} == before
    assert state.exists()
    # as the check left it: restored
    (fake_ksm / "sleep_millisecs").write_text("20\n")
    r = ksmcheck.recover_leftovers(state, fake_ksm)
    assert r is not None and (fake_ksm / "run").read_text().strip() == "0"
    assert (fake_ksm / "pages_to_scan").read_text().strip() == "100" and not state.exists()


def test_a_state_file_without_applied_values_restores_as_before(fake_ksm, tmp_path):
    """Files of session 24 and before hold no 'applied': restored as they were."""
    state = _killed_state(fake_ksm, tmp_path, {"pages_to_scan": "1000", "run": "1"})
    saved = json.loads(state.read_text())
    del saved["applied"]
    state.write_text(json.dumps(saved))
    (fake_ksm / "sleep_millisecs").write_text("50\n")
    assert ksmcheck.recover_leftovers(state, fake_ksm) is not None
    assert (fake_ksm / "sleep_millisecs").read_text().strip() == "20" and (fake_ksm / "run").read_text().strip() == "0"


@pytest.mark.parametrize(
    "applied", [{"merge_across_nodes": "1"}, {"run": "7"}, {"run": "01"}, {"pages_to_scan": "-1"}, ["run"]]
)
def test_implausible_applied_values_are_refused(fake_ksm, tmp_path, applied):
    state = _killed_state(fake_ksm, tmp_path, {})
    saved = json.loads(state.read_text())
    saved["applied"] = applied
    state.write_text(json.dumps(saved))
    with pytest.raises(ksmcheck.CaptureError, match="not a ksmcheck state file"):
        ksmcheck.load_state(state)
