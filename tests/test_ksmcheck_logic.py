"""The pure logic of the real-KSM check, on synthetic data (no root, QEMU or KSM needed).

Convergence-time extraction and the scan-cost fit (pagecore.sharing.ksmtime), the settings file
that lets a run restore what a killed run changed (pagecore.qemu.ksmcheck, on a fake sysfs
directory), and the THP rule that turns the input into the emulator's walk.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from pagecore.qemu import ksmcheck
from pagecore.sharing import KsmSettings, emulate_ksm
from pagecore.sharing.ksmtime import ScanCost, calibrate_scan_cost, time_to_fraction


# ---------------------------------------------------------------- time to converge
def _slow_time_to_fraction(t, v, frac):
    """Obviously correct twin: walk the samples, interpolate by hand."""
    target = frac * v[-1]
    if v[-1] <= 0:
        return t[0]
    for i in range(len(v)):
        if v[i] >= target:
            if i == 0:
                return t[0]
            return t[i - 1] + (t[i] - t[i - 1]) * (target - v[i - 1]) / (v[i] - v[i - 1])
    raise AssertionError("the last sample always reaches the target")


def test_time_to_fraction_interpolates_between_samples():
    # 0 → 100 in steps of 10 per second: 90 % of 100 is reached at exactly t = 9
    t = np.arange(11.0)
    assert time_to_fraction(t, t * 10) == pytest.approx(9.0)
    # a jump between samples 2 (t=1) and 3 (t=3) from 20 to 100: 90 is reached 7/8 of the way
    assert time_to_fraction([0, 0.5, 1, 3, 4], [0, 10, 20, 100, 100]) == pytest.approx(1 + 2 * 70 / 80)


@pytest.mark.parametrize("seed", range(20))
def test_time_to_fraction_matches_its_slow_twin(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    t = np.cumsum(rng.random(n))
    v = np.maximum.accumulate(rng.integers(0, 1000, n)).astype(float)  # counters that only grow
    frac = float(rng.uniform(0.05, 1.0))
    assert time_to_fraction(t, v, frac) == pytest.approx(_slow_time_to_fraction(t, v, frac))


def test_time_to_fraction_edge_cases():
    assert math.isnan(time_to_fraction([], []))
    assert time_to_fraction([5.0], [7]) == 5.0  # one sample: already steady
    assert time_to_fraction([1.0, 2.0], [0, 0]) == 1.0  # nothing to converge to
    assert time_to_fraction([1.0, 2.0, 3.0], [50, 50, 50]) == 1.0
    # a counter that overshoots and falls back (pages_sharing after a COW break): first crossing
    assert time_to_fraction([0, 1, 2, 3], [0, 100, 95, 90], 1.0) == pytest.approx(0.9)
    with pytest.raises(ValueError):
        time_to_fraction([0, 1], [1])
    with pytest.raises(ValueError):
        time_to_fraction([1, 0], [1, 2])
    with pytest.raises(ValueError):
        time_to_fraction([0, 1], [1, 2], 0)


# ---------------------------------------------------------------- scan-cost calibration
def _synthetic_run(pts, sleep_ms, cpu_us, overhead_ms, wakeups=400, jitter=0.0, seed=0):
    """Samples of a ksmd whose wake-ups cost exactly the given CPU per page and overhead."""
    rng = np.random.default_rng(seed)
    period = (sleep_ms + overhead_ms + pts * cpu_us / 1000) / 1000 * (1 + jitter * rng.standard_normal(wakeups))
    t = np.concatenate([[0.0], np.cumsum(period)])
    scanned = np.arange(wakeups + 1) * pts
    cpu = scanned * cpu_us * 1e-6
    return t, scanned, cpu


@pytest.mark.parametrize(("pts", "cpu_us", "ovh"), [(100, 5.0, 2.0), (1000, 12.0, 0.5), (3000, 1.0, 0.0)])
def test_calibration_recovers_the_cost_it_was_built_from(pts, cpu_us, ovh):
    t, scanned, cpu = _synthetic_run(pts, 20, cpu_us, ovh)
    c = calibrate_scan_cost(t, scanned, pts, 20, cpu)
    assert c.method == "schedstat"
    assert c.cpu_us_per_page == pytest.approx(cpu_us)
    assert c.wakeup_overhead_ms == pytest.approx(ovh, abs=1e-9)
    assert c.period_ms(pts, 20) == pytest.approx(20 + ovh + pts * cpu_us / 1000)


def test_a_cost_fitted_on_one_setting_predicts_another():
    """The point of the fit: ksmd with 8 µs/page and 1.5 ms per wake-up, measured at 100 pages
    per wake-up, predicts the period at 1000 pages — and the emulator, given the folded-in
    per-page cost, spends that period per wake-up."""
    t, scanned, cpu = _synthetic_run(100, 20, 8.0, 1.5)
    c = calibrate_scan_cost(t, scanned, 100, 20, cpu)
    assert c.period_ms(1000, 20) == pytest.approx(20 + 1.5 + 8.0)
    s = KsmSettings(pages_to_scan=1000, sleep_millisecs=20, smart_scan=False, scan_us_per_page=c.scan_us_per_page(1000))
    from pagecore.sharing import PageHistory

    n = 20_000  # all unique: 20 wake-ups per full scan
    hist = PageHistory.from_pages(np.arange(n, dtype=np.uint64) + 1, np.zeros(n, bool), np.zeros(n), ["a"])
    r = emulate_ksm(hist, s, sample_s=0.001)
    per_wake = np.diff(r.timeline["t"].to_numpy())
    assert np.median(per_wake[per_wake > 0]) == pytest.approx(0.0295, rel=1e-6)


def test_calibration_without_cpu_time_charges_the_excess_per_page():
    t, scanned, _ = _synthetic_run(200, 20, 10.0, 4.0)
    c = calibrate_scan_cost(t, scanned, 200, 20)
    assert c.method == "period" and c.wakeup_overhead_ms == 0
    assert c.cpu_us_per_page == pytest.approx(10.0 + 4000 / 200)
    assert c.scan_us_per_page(200) == pytest.approx(30.0)


def test_calibration_under_noise_stays_close():
    t, scanned, cpu = _synthetic_run(1000, 20, 9.0, 1.0, wakeups=2000, jitter=0.2, seed=3)
    c = calibrate_scan_cost(t, scanned, 1000, 20, cpu)
    assert c.period_ms(1000, 20) == pytest.approx(30.0, rel=0.02)


def test_calibration_refuses_what_it_cannot_fit():
    with pytest.raises(ValueError):
        calibrate_scan_cost([0.0], [0], 100, 20)
    with pytest.raises(ValueError):
        calibrate_scan_cost([0.0, 1.0], [5, 5], 100, 20)  # nothing scanned
    with pytest.raises(ValueError):
        calibrate_scan_cost([0.0, 1.0], [0, 100], 0, 20)
    with pytest.raises(ValueError):
        ScanCost(1.0, 0.0).scan_us_per_page(0)


def test_scan_us_per_page_folds_the_wakeup_overhead_in():
    c = ScanCost(cpu_us_per_page=10.0, wakeup_overhead_ms=2.0)
    assert c.scan_us_per_page(100) == pytest.approx(30.0)
    assert c.scan_us_per_page(1000) == pytest.approx(12.0)
    assert ScanCost(1.0, -5.0).scan_us_per_page(100) == 0.0  # never negative


# ---------------------------------------------------------------- settings file
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


@pytest.fixture
def fake_ksm(tmp_path):
    """A directory standing in for /sys/kernel/mm/ksm (writes land in plain files)."""
    d = tmp_path / "ksm"
    d.mkdir()
    for k, v in KNOB_VALUES.items():
        (d / k).write_text(v + "\n")
    return d


class FakeQMP:
    """A QMP connection that answers every command with nothing (the stand-in guests have none)."""

    def __init__(self, sock):
        pass

    def cmd(self, *a, **k):
        return {}

    def close(self):
        pass


def _dead_pid() -> tuple[int, int]:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid, 12345


def test_knob_values_as_written_back():
    assert ksmcheck.knob_value("advisor_mode", "[none] scan-time") == "none"
    assert ksmcheck.knob_value("advisor_mode", "none [scan-time]") == "scan-time"
    assert ksmcheck.knob_value("pages_to_scan", "100\n") == "100"


def test_restore_plan_unmerges_then_writes_changed_knobs_and_run_last():
    state = {"run": "0", "knobs": {"pages_to_scan": "100", "sleep_millisecs": "20", "advisor_mode": "none"}}
    current = {"run": "1", "pages_to_scan": "1000", "sleep_millisecs": "20", "advisor_mode": "[none] scan-time"}
    assert ksmcheck.restore_plan(state, current) == [("run", "2"), ("run", "0"), ("pages_to_scan", "100"), ("run", "0")]
    # a knob this kernel does not have is not written
    assert ("smart_scan", "1") not in ksmcheck.restore_plan({"run": "0", "knobs": {"smart_scan": "1"}}, {})


def test_session_saves_before_changing_and_restores_on_leaving(fake_ksm, tmp_path):
    state = tmp_path / "state.json"
    with ksmcheck.KsmSession(state, fake_ksm, foreign_wait_s=0) as s:
        saved = json.loads(state.read_text())
        assert saved["knobs"]["pages_to_scan"] == "100" and saved["run"] == "0"
        assert saved["knobs"]["advisor_mode"] == "none"
        s.set(pages_to_scan=1000, smart_scan=False, run=1, advisor_mode="none")
        assert (fake_ksm / "pages_to_scan").read_text() == "1000\n"
        assert (fake_ksm / "smart_scan").read_text() == "0\n"
        s.add_guest(12)
        assert json.loads(state.read_text())["guests"][0]["pid"] == 12
        with pytest.raises(ValueError):
            s.set(merge_across_nodes=0)  # not a knob the check restores
    assert s.restored is True
    assert not state.exists()
    for k in ("pages_to_scan", "smart_scan", "run"):
        assert (fake_ksm / k).read_text().strip() == KNOB_VALUES[k]


def test_session_restores_after_an_exception(fake_ksm, tmp_path):
    state = tmp_path / "state.json"
    with pytest.raises(RuntimeError), ksmcheck.KsmSession(state, fake_ksm) as s:
        s.set(pages_to_scan=5000, sleep_millisecs=1, run=1)
        raise RuntimeError("boom")
    assert (fake_ksm / "pages_to_scan").read_text().strip() == "100"
    assert (fake_ksm / "sleep_millisecs").read_text().strip() == "20"
    assert (fake_ksm / "run").read_text().strip() == "0"
    assert not state.exists()


def test_a_killed_runs_leftovers_are_restored_by_the_next_run(fake_ksm, tmp_path):
    """A run saved the settings, changed them and died (SIGKILL: no finally). The next run
    finds its file, sees its owner is gone, restores every knob and removes the file."""
    state = tmp_path / "state.json"
    found = ksmcheck.read_ksm(fake_ksm)
    ksmcheck.save_state(state, found)
    saved = json.loads(state.read_text())
    saved["owner"] = dict(zip(("pid", "start"), _dead_pid(), strict=True))
    saved["guests"] = [dict(zip(("pid", "start"), _dead_pid(), strict=True))]  # gone already: not ended
    left = {"pages_to_scan": "1000", "sleep_millisecs": "5", "smart_scan": "0", "run": "1"}
    saved["applied"] = left  # what it had written (KsmSession.set records it first)
    state.write_text(json.dumps(saved))
    for k, v in left.items():
        (fake_ksm / k).write_text(v + "\n")
    with ksmcheck.KsmSession(state, fake_ksm) as s:
        assert s.recovered["ended_guests"] == []
        assert s.found["pages_to_scan"] == "100" and s.found["run"] == "0"  # what the killed run found
    for k in ("pages_to_scan", "sleep_millisecs", "smart_scan", "run"):
        assert (fake_ksm / k).read_text().strip() == KNOB_VALUES[k]


def test_leftover_guest_is_ended_only_if_pid_and_start_time_match(fake_ksm, tmp_path, monkeypatch):
    from pagecore.qemu import live

    monkeypatch.setattr(live, "qemu_reason", lambda pid: None)  # the stand-ins pass for QEMU
    state = tmp_path / "state.json"
    mine = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        ksmcheck.save_state(state, ksmcheck.read_ksm(fake_ksm), [mine.pid, other.pid])
        saved = json.loads(state.read_text())
        saved["owner"] = dict(zip(("pid", "start"), _dead_pid(), strict=True))
        saved["guests"][1]["start"] += 1  # a reused PID: not the process that run started
        state.write_text(json.dumps(saved))
        r = ksmcheck.recover_leftovers(state, fake_ksm)
        assert r["ended_guests"] == [mine.pid]
        assert mine.wait(10) is not None
        assert other.poll() is None
    finally:
        for p in (mine, other):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_a_running_check_is_not_disturbed(fake_ksm, tmp_path):
    state = tmp_path / "state.json"
    ksmcheck.save_state(state, ksmcheck.read_ksm(fake_ksm))
    saved = json.loads(state.read_text())
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        saved["owner"] = {"pid": holder.pid, "start": ksmcheck._proc_start(holder.pid)}
        state.write_text(json.dumps(saved))
        with pytest.raises(ksmcheck.CaptureError, match="another ksmcheck"):
            ksmcheck.recover_leftovers(state, fake_ksm)
        assert state.exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_damaged_state_file_is_a_one_line_error(fake_ksm, tmp_path):
    state = tmp_path / "state.json"
    state.write_text("{not json")
    with pytest.raises(ksmcheck.CaptureError, match="not a ksmcheck state file"):
        ksmcheck.KsmSession(state, fake_ksm).__enter__()


@pytest.mark.parametrize(
    "edit, needle",
    [
        ({"run": None}, "run None"),  # was KeyError: 'run'
        ({"run": "1"}, "run '1'"),  # would have turned KSM on
        ({"guests": 5}, "integer pid"),  # was TypeError
        ({"guests": [7]}, "integer pid"),  # was AttributeError
        ({"knobs": {"../../../proc/sys/vm/overcommit_memory": "1"}}, "not one a check changes"),
        ({"boot_id": "another-boot"}, "another boot"),  # its PIDs and start times mean nothing here
    ],
)
def test_a_hand_edited_or_other_boot_state_file_is_one_line_and_changes_nothing(fake_ksm, tmp_path, edit, needle):
    state = tmp_path / "state.json"
    ksmcheck.save_state(state, ksmcheck.read_ksm(fake_ksm))
    saved = json.loads(state.read_text())
    saved["owner"] = dict(zip(("pid", "start"), _dead_pid(), strict=True))
    saved.update({k: v for k, v in edit.items() if v is not None})
    saved = {k: v for k, v in saved.items() if edit.get(k, "") is not None}
    state.write_text(json.dumps(saved))
    (fake_ksm / "pages_to_scan").write_text("1000\n")  # what the killed run left
    with pytest.raises(ksmcheck.CaptureError, match=needle) as e:
        ksmcheck.recover_leftovers(state, fake_ksm)
    assert str(state) in str(e.value) and "\n" not in str(e.value)
    assert (fake_ksm / "pages_to_scan").read_text() == "1000\n" and (fake_ksm / "run").read_text() == "0\n"
    assert state.exists()


def test_a_recorded_process_that_is_not_qemu_is_never_ended(fake_ksm, tmp_path):
    """A (hand-edited) state file naming a live process by PID and start time ended it, whatever it
    was; only QEMU processes are ended now, anything else is left running and reported."""
    state = tmp_path / "state.json"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        ksmcheck.save_state(state, ksmcheck.read_ksm(fake_ksm), [other.pid])
        saved = json.loads(state.read_text())
        saved["owner"] = dict(zip(("pid", "start"), _dead_pid(), strict=True))
        state.write_text(json.dumps(saved))
        r = ksmcheck.recover_leftovers(state, fake_ksm)
        assert r["ended_guests"] == [] and r["left_running_not_qemu"] == [other.pid]
        time.sleep(0.2)
        assert other.poll() is None and not state.exists()
    finally:
        other.kill()
        other.wait()


def test_a_second_session_is_refused_whatever_its_state_file(fake_ksm, tmp_path):
    """Two checks with different state files: the second found KSM idle (the first was booting its
    guests), waited, and on leaving "restored" KSM (run=2, run=0) under the first one's
    measurement. The KSM directory is locked for the whole session now."""
    with ksmcheck.KsmSession(tmp_path / "first.json", fake_ksm, foreign_wait_s=0) as s:
        s.set(pages_to_scan=1000)
        with pytest.raises(ksmcheck.CaptureError, match="another ksmcheck is using"):
            ksmcheck.KsmSession(tmp_path / "second.json", fake_ksm).__enter__()
        assert (fake_ksm / "pages_to_scan").read_text() == "1000\n" and not (tmp_path / "second.json").exists()
    assert s.restored is True
    with ksmcheck.KsmSession(tmp_path / "second.json", fake_ksm):  # free again once the first has left
        pass


def test_sigterm_while_guests_boot_ends_every_guest(monkeypatch, tmp_path):
    """SIGTERM while the second guest booted (in a thread): the check restored KSM and exited, and
    both QEMU processes ran on with nothing recorded to end them (seen with real TCG guests). Here
    the guests are stand-in processes and booting the second one takes a second."""
    import signal
    import threading
    from pathlib import Path

    procs: list[subprocess.Popen] = []

    def boot_guest(qemu, use, kernel, initrd, ram_mb, d, append, kvm_t, tcg_t, notes, on_start=None):
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        procs.append(p)
        time.sleep(1.0 if len(procs) > 1 else 0.0)
        return p, d / "qmp.sock", "tcg", 0.1

    class Session:
        def add_guest(self, pid):
            pass

    monkeypatch.setattr(ksmcheck, "boot_guest", boot_guest)
    monkeypatch.setattr(ksmcheck, "QMP", FakeQMP)
    monkeypatch.setattr(ksmcheck, "_which", lambda name, hint: name)
    monkeypatch.setattr(ksmcheck, "newest_kernel", lambda: Path("/boot/vmlinuz-stand-in"))
    monkeypatch.setattr(ksmcheck, "build_workload_initramfs", lambda path, w: path)
    old = signal.signal(signal.SIGTERM, ksmcheck._raise_on_term)  # what KsmSession installs
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    try:
        timer.start()
        with pytest.raises(ksmcheck.CaptureError, match="SIGTERM"):
            ksmcheck.boot_scenario(Session(), ["base", "base"], tmp_path)
        assert len(procs) == 2 and [p.poll() is not None for p in procs] == [True, True]
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, old)
        time.sleep(1.2)  # (old code: the second stand-in appears after the exception)
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()


def test_settings_not_restored_is_an_error_not_a_json_field(monkeypatch, capsys, tmp_path):
    """A check whose restore failed printed ``"settings_restored": false`` in its JSON and exited 0."""
    monkeypatch.setattr(ksmcheck, "run_scenarios", lambda *a, **k: {"scenarios": {}, "settings_restored": False})
    assert ksmcheck.main(["--state-file", str(tmp_path / "s.json")]) == 1
    err = capsys.readouterr().err
    assert "not all restored" in err and str(tmp_path / "s.json") in err and len(err.strip().splitlines()) == 1
    monkeypatch.setattr(ksmcheck, "run_scenarios", lambda *a, **k: {"scenarios": {}, "settings_restored": True})
    assert ksmcheck.main(["--state-file", str(tmp_path / "s.json")]) == 0


def test_a_killed_checks_work_directory_is_removed_by_the_next(tmp_path):
    """A SIGKILLed check left /tmp/ksmcheck-XXXX (initramfs, console logs, ~4 MB) for good."""
    dead, _ = _dead_pid()
    gone = tmp_path / f"ksmcheck-{dead}-abc"
    running = tmp_path / f"ksmcheck-{os.getpid()}-def"
    other = tmp_path / "ksmcheck-notapid-x"
    for d in (gone, running, other):
        (d / "guest00-base").mkdir(parents=True)
    assert ksmcheck.remove_dead_work_dirs(str(tmp_path)) == [gone]
    assert not gone.exists() and running.exists() and other.exists()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--timeout", "nan"], "--timeout must be"),  # never timed out
        (["--timeout", "-1"], "--timeout must be"),  # stopped before KSM scanned: real_settled false
        (["--timeout", "inf"], "--timeout must be"),
        (["--ram-mb", "0"], "--ram-mb must be at least 1"),
    ],
)
def test_bad_timeouts_and_sizes_are_usage_errors(args, needle, monkeypatch, capsys):
    monkeypatch.setattr(ksmcheck, "run_scenarios", lambda *a, **k: pytest.fail("a check started"))
    with pytest.raises(SystemExit) as e:
        ksmcheck.main(args)
    assert e.value.code == 2 and needle in capsys.readouterr().err


@pytest.mark.parametrize("vms", ["0", "-1"])
def test_vms_below_one_is_a_usage_error(vms, monkeypatch, capsys):
    """`--vms 0` ran every scenario and `--vms -1` a scenario of no guests, without a word."""
    from pagecore.qemu import realguests

    calls = []
    monkeypatch.setattr(ksmcheck, "run_scenarios", lambda *a, **k: calls.append(a) or {})
    for main in (ksmcheck.main, realguests.main):  # realguests: a ValueError traceback
        with pytest.raises(SystemExit) as e:
            main(["--vms", vms, *(["-o", "unused"] if main is realguests.main else [])])
        assert e.value.code == 2 and "--vms must be at least 1" in capsys.readouterr().err
    assert calls == []


def test_session_refuses_a_ksm_in_use(fake_ksm, tmp_path):
    (fake_ksm / "run").write_text("1\n")
    with pytest.raises(ksmcheck.CaptureError, match="already in use"):
        ksmcheck.KsmSession(tmp_path / "s.json", fake_ksm).__enter__()
    assert not (tmp_path / "s.json").exists()


# ---------------------------------------------------------------- the THP rule
def _table(vm, hashes, zero, present, thp, zpage):
    n = len(hashes)
    return pd.DataFrame(
        {"vm": vm, "gpfn": np.arange(n, dtype=np.uint64), "hash": np.asarray(hashes, np.uint64),
         "zero": np.asarray(zero, bool), "host_present": np.asarray(present, bool), "host_thp": np.asarray(thp, bool),
         "host_zero_page": np.asarray(zpage, bool), "host_ksm": np.zeros(n, bool)}
    )  # fmt: skip


def test_walk_history_follows_the_host_view():
    # per guest: 2 copies of content 7, 4 zero pages (2 in a THP, 2 on 4 KiB pages),
    # 1 page not present, 1 page on the kernel zero page
    h = [7, 7, 0, 0, 0, 0, 0, 0]
    z = [0, 0, 1, 1, 1, 1, 1, 1]
    present = [1, 1, 1, 1, 1, 1, 0, 1]
    thp = [1, 1, 1, 1, 0, 0, 0, 0]
    zpage = [0, 0, 0, 0, 0, 0, 0, 1]
    tables = [_table("a", h, z, present, thp, zpage), _table("b", h, z, present, thp, zpage)]
    hist, info = ksmcheck.walk_history(tables, thp_zero_merge=False)
    assert info["walked"] == 12 and info["not_present"] == 2 and info["zero_page"] == 2
    assert info["thp_zero_never_merged"] == 4
    s = KsmSettings(smart_scan=False)
    r = emulate_ksm(hist, s).final
    # content 7: one KSM page, 3 sharers; 4 zero pages on 4 KiB pages: one KSM page, 3 sharers;
    # the 4 THP zero pages are walked (and cost time) but never merge
    assert (r["pages_shared"], r["pages_sharing"], r["pages_unshared"]) == (2, 6, 4)
    # a kernel that merges zero pieces of huge pages: they join the zero KSM page
    r2 = emulate_ksm(ksmcheck.walk_history(tables, thp_zero_merge=True)[0], s).final
    assert (r2["pages_shared"], r2["pages_sharing"], r2["pages_unshared"]) == (2, 10, 0)
    # the earlier rule: zero pages out of the walk altogether (same merges of content 7, shorter walk)
    h0, info0 = ksmcheck.walk_history(tables, drop_zero=True)
    assert info0["walked"] == 4 and h0.pages == 4
    # with use_zero_pages the THP rule does not apply (zero pages go to the kernel zero page)
    r3 = emulate_ksm(ksmcheck.walk_history(tables, use_zero_pages=True, thp_zero_merge=False)[0],
                     KsmSettings(smart_scan=False, use_zero_pages=True)).final  # fmt: skip
    assert r3["ksm_zero_pages"] == 8 and r3["pages_sharing"] == 3


def test_workload_initramfs_appends_seeded_data(tmp_path):
    busybox = tmp_path / "busybox"
    busybox.write_bytes(b"\x7fELF" + bytes(100))
    w = ksmcheck.Workload(copies=1, pattern_pages=1, zero_pages=1, data=((5, 2),))
    a = ksmcheck.build_workload_initramfs(tmp_path / "a.cpio", w, busybox).read_bytes()
    b = ksmcheck.build_workload_initramfs(tmp_path / "b.cpio", w, busybox).read_bytes()
    assert a == b  # deterministic
    data = np.random.default_rng(5).integers(0, 256, 2 * 4096, dtype=np.uint8).tobytes()
    assert data in a and a.count(b"TRAILER!!!") == 2
    plain = ksmcheck.build_workload_initramfs(tmp_path / "c.cpio", ksmcheck.Workload(1, 1, 1), busybox).read_bytes()
    assert a.startswith(plain) and plain.count(b"TRAILER!!!") == 1


@pytest.mark.parametrize("bad", ["abc", "0:20", "100", "100:20,x"])
def test_bad_settings_are_one_line_usage_errors(bad, capsys):
    with pytest.raises(SystemExit) as e:
        ksmcheck.main(["--settings", bad])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("pagecore qemu ksmcheck: error: --settings:")


def test_calibration_window_ends_where_the_saving_first_reaches_its_steady_value():
    real = pd.DataFrame(
        {"t": [0.0, 1, 2, 3, 4, 5], "pages_sharing": [0, 0, 50, 100, 100, 100], "full_scans": [0, 0, 1, 1, 2, 3]}
    )
    assert ksmcheck._calibration_window(real)["t"].tolist() == [0, 1, 2, 3]
    flat = real.assign(pages_sharing=0)  # nothing shared: the whole run
    assert len(ksmcheck._calibration_window(flat)) == 6
    assert len(ksmcheck._calibration_window(real.iloc[:1])) == 1


def test_merges_by_full_scan_from_the_last_sample_of_each_scan():
    real = pd.DataFrame(
        {"t": [0.0, 1, 2, 3, 4, 5], "pages_sharing": [0, 0, 50, 80, 100, 100], "full_scans": [0, 0, 1, 1, 2, 3]}
    )
    assert ksmcheck._merges_by_scan(real) == [0, 80, 20, 0]


def test_timelines_are_saved_together_or_not_at_all(tmp_path, monkeypatch):
    """``--timelines``: every file of a scenario appears complete, or none does (they were
    written straight into the directory, one after the other, so a failure or a signal left a
    half-written CSV beside the ones before it)."""
    real = pd.DataFrame({"t": [0.0, 0.05], "pages_sharing": [0, 7]})
    pages = pd.DataFrame({"gpfn": np.arange(3, dtype=np.uint64), "hash": np.arange(3, dtype=np.uint64)})
    tl = {(0, "real"): real, (0, "predicted"): real, (0, "input"): pages}
    ksmcheck._save_timelines(tl, tmp_path / "tl", "two")
    names = sorted(p.name for p in (tmp_path / "tl").iterdir())
    assert names == ["two.setting0.input.parquet", "two.setting0.predicted.csv", "two.setting0.real.csv"]
    assert pd.read_csv(tmp_path / "tl/two.setting0.real.csv").equals(real)

    calls = []
    orig = pd.DataFrame.to_csv

    def fail_second(self, *a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return orig(self, *a, **kw)

    monkeypatch.setattr(pd.DataFrame, "to_csv", fail_second)
    with pytest.raises(Exception, match="No space left"):
        ksmcheck._save_timelines(tl, tmp_path / "tl2", "two")
    assert not (tmp_path / "tl2").exists() or not any((tmp_path / "tl2").iterdir())
