"""`pagecore qemu zramcheck`'s saved settings and its lock, on a stand-in sysfs directory.

A state file left by a killed run is restored (the device reset, its algorithm put back) by the
next run. Restoring resets a device, so a file that is damaged, hand-edited, planted in the
world-writable state directory, from another device or another boot must be refused in one line
*before* anything is written to the device; and a second check started while one runs must be
refused instead of "restoring" (resetting) the device under it. No root or zram needed: the
device is a directory of plain files.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest

from pagecore.qemu import zramcheck

DEV = "zram9"


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A stand-in /sys/block/zram9 (left configured by a killed run) and a state directory."""
    dev = tmp_path / "sys" / DEV
    dev.mkdir(parents=True)
    (dev / "comp_algorithm").write_text("lzo-rle lzo [lz4]\n")
    (dev / "disksize").write_text("46137344\n")
    (dev / "reset").write_text("")
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setattr(zramcheck, "sysfs", lambda d: tmp_path / "sys" / d)
    monkeypatch.setattr(zramcheck, "STATE_DIR", state)
    boot = Path("/proc/sys/kernel/random/boot_id")
    saved = {
        "device": DEV,
        "comp_algorithm": "lzo-rle",
        "disksize": 0,
        "boot_id": boot.read_text().strip() if boot.exists() else None,
    }
    return dev, zramcheck.state_file(DEV), saved


def _write_state(path, obj) -> None:
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    os.chmod(path, 0o644)


def _untouched(dev) -> bool:
    return (dev / "reset").read_text() == "" and (dev / "comp_algorithm").read_text() == "lzo-rle lzo [lz4]\n"


def test_a_killed_runs_state_file_is_restored(fake, capsys):
    dev, state, saved = fake
    _write_state(state, saved)
    assert zramcheck.restore_settings(DEV)["comp_algorithm"] == "lzo-rle"
    assert (dev / "reset").read_text() == "1" and (dev / "comp_algorithm").read_text() == "lzo-rle"
    assert not state.exists()


@pytest.mark.parametrize(
    "edit, needle",
    [
        ('{"device": "zram9", "comp_', "not a usable zramcheck state file"),  # cut short by a crash
        (json.dumps({"device": DEV}), "comp_algorithm None"),  # a key missing
        ({"comp_algorithm": "bogus"}, "'bogus' is not one"),
        ({"disksize": 1 << 30}, "disksize 1073741824"),
        ({"device": "zram1"}, "names device 'zram1'"),
        ({"boot_id": "00000000-0000-0000-0000-000000000000"}, "another boot"),
        ("[1, 2]", "not a JSON object"),
    ],
)
def test_a_damaged_or_foreign_state_file_is_one_line_and_touches_nothing(fake, capsys, edit, needle):
    """Before: a cut-short file was a JSONDecodeError traceback, a missing key a KeyError traceback
    after the device had been reset, a bad algorithm "Invalid argument" after the reset, and a file
    of another boot or device was applied."""
    dev, state, saved = fake
    _write_state(state, edit if isinstance(edit, str) else {**saved, **edit})
    assert zramcheck.main(["no-dump-needed.raw", "--device", DEV]) == 1
    err = capsys.readouterr().err
    assert needle in err and str(state) in err and len(err.strip().splitlines()) == 1, err
    assert _untouched(dev) and state.exists()


@pytest.mark.parametrize("how", ["link", "writable by others"])
def test_a_planted_state_file_is_refused(fake, tmp_path, capsys, how):
    """The state directory (/var/tmp) is world-writable: a file anyone could have put there is not
    obeyed (before, any user could make root's next run reset the device)."""
    dev, state, saved = fake
    if how == "link":
        target = tmp_path / "elsewhere.json"
        _write_state(target, saved)
        state.symlink_to(target)
    else:
        _write_state(state, saved)
        os.chmod(state, 0o666)
    assert zramcheck.main(["no-dump-needed.raw", "--device", DEV]) == 1
    assert "not a zramcheck state file of this user" in capsys.readouterr().err
    assert _untouched(dev) and os.path.lexists(state)


def test_a_second_check_is_refused_while_one_runs(fake, capsys):
    """Two checks at once: the second "restored" the first one's saved settings (reset the device
    under it and removed the file), and the first then found no file and left the device
    configured (disksize 46 MiB, lz4) with nothing saved. Now the second is refused."""
    dev, state, saved = fake
    _write_state(state, saved)  # the running check's saved settings
    fd = os.open(dev, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a running check holds
        assert zramcheck.main(["no-dump-needed.raw", "--device", DEV]) == 2
    finally:
        os.close(fd)
    assert "another zramcheck is using zram9" in capsys.readouterr().err
    assert _untouched(dev) and state.exists()


def test_saved_settings_are_this_boots_and_not_writable_by_others(fake, monkeypatch):
    dev, state, _ = fake
    (dev / "disksize").write_text("0\n")
    old = os.umask(0)
    try:
        st = zramcheck.save_settings(DEV)
    finally:
        os.umask(old)
    assert st["boot_id"] == zramcheck.boot_id() and st["comp_algorithm"] == "lz4"
    assert os.stat(state).st_mode & 0o777 == 0o644
    assert zramcheck.load_state(DEV)["disksize"] == 0


@pytest.mark.parametrize("dev", ["../kernel/mm/ksm", "sda", "zram", "zram0/../zram1"])
def test_only_zram_device_names_are_used(dev, capsys):
    """`--device ../kernel/mm/ksm` named /sys/kernel/mm/ksm as the device and a state file
    outside the state directory; only zramN is a device name."""
    assert zramcheck.main(["no-dump-needed.raw", "--device", dev]) == 2
    assert "is not a zram device name" in capsys.readouterr().err


def test_a_device_in_use_now_is_not_reset_by_a_restore(fake, monkeypatch, capsys):
    """A killed run's file, and since then the device became swap: the restore reset it (EBUSY at
    best, someone's data at worst). It is refused in one line now, the file kept."""
    dev, state, saved = fake
    _write_state(state, saved)
    monkeypatch.setattr(zramcheck, "in_use", lambda d: True)
    assert zramcheck.main(["no-dump-needed.raw", "--device", DEV]) == 1
    assert "is in use now" in capsys.readouterr().err
    assert _untouched(dev) and state.exists()
