"""The KSM emulator against the real KSM on real QEMU guests (pagecore.qemu.ksmcheck).

Needs root (writable /sys/kernel/mm/ksm), qemu-system-x86_64, a kernel in /boot and busybox;
skips with the reason otherwise, and while other processes hold mergeable memory (KSM would
merge theirs too). The pure logic is tested in tests/test_ksmcheck_logic.py.
"""

from __future__ import annotations

import json

import pytest

from pagecore.qemu import ksmcheck


def test_unavailable_reason_is_text_or_none():
    why = ksmcheck.unavailable_reason()
    assert why is None or isinstance(why, str)


def _skip_unless_idle_ksm():
    why = ksmcheck.unavailable_reason()
    if why:
        pytest.skip(why)
    found = ksmcheck.read_ksm()
    if found.get("run") != "0" or int(found.get("pages_shared", "0")):
        pytest.skip("KSM is in use on this host; the check only runs on an idle KSM")
    others = ksmcheck.wait_for_no_foreign([], 120)
    if others:
        pytest.skip(f"other processes hold mergeable memory (KSM would merge theirs too): {', '.join(others)}")
    return found


@pytest.mark.slow
@pytest.mark.qemu
def test_real_ksm_agrees_with_the_emulator_over_time(tmp_path):
    """Issue 15 item 3: identical and mixed guests, KSM at 1000 and then 200 pages per 20 ms.

    Steady pages_shared and pages_sharing within 5 % of the emulator fed the same pages and
    their host view (THP rule of walk_history), at both settings. The first setting runs on the
    freshly booted, THP-backed guests; the second on the 4 KiB pages KSM's splits and unmerging
    left (``collapse=False``): there, ksmd's scan cost fitted on the first setting predicts the
    time to 90 % of the steady pages_sharing within 30 %. (On THP-backed memory the real KSM
    merges a sixth to a third of the sharing one full scan later — the stale zero node the
    emulator models from the host's THP view, ``pagecore.sharing.ksm.ThpBacking``; the first
    setting's own-fit error is printed, not asserted.) Every KSM setting is restored; only our QEMU
    processes are ended. About 5 min under TCG on 2 shared cores, more while other processes
    with mergeable memory make it wait.
    """
    found = _skip_unless_idle_ksm()
    settings = [ksmcheck.KsmSettings(pages_to_scan=p, sleep_millisecs=20, smart_scan=False) for p in (1000, 200)]
    r = ksmcheck.run_scenarios(
        ksmcheck.SCENARIOS, settings, accel="tcg", timeout_s=150, state_file=tmp_path / "state.json", collapse=False
    )
    print("\n" + json.dumps(r, indent=1))
    after = ksmcheck.read_ksm()
    for k in (*ksmcheck.KNOBS, "run"):
        assert after.get(k) == found.get(k), k
    assert r["settings_restored"]
    assert not (tmp_path / "state.json").exists()
    for name, sc in r["scenarios"].items():
        for i, rec in enumerate(sc["settings"]):
            where = (name, rec["settings"]["pages_to_scan"])
            assert rec["real_settled"], where
            assert not rec["foreign_mergeable_after"], where
            for k in ("pages_shared", "pages_sharing"):
                assert abs(rec["error"][k]) <= 0.05, (where, k, rec["real"][k], rec["predicted"][k])
            print(where, "time to 90 %:", rec["seconds_to_90pct"], "error", rec["time_error_calibrated"])
            if i == 1:  # 4 KiB pages, cost fitted on setting 0
                assert abs(rec["time_error_calibrated"]) <= 0.30, (where, rec["seconds_to_90pct"])


@pytest.mark.slow
@pytest.mark.qemu
def test_ksm_predicted_from_a_live_read_matches_real_ksm():
    """Issue 17's goal: KSM's counters predicted from a paused live read are within 5 % of real KSM's.

    Two fresh guests, KSM off while reading; pagecore.qemu.ksmcheck turns KSM on, restores every
    setting and ends only its own QEMU processes. ~5 min under TCG on a loaded host. Here, not in
    tests/test_live.py: that module's own guest (mergeable memory) lives until its last test, and
    the check rightly refuses to run KSM beside another process's mergeable memory.
    """
    _skip_unless_idle_ksm()
    r = ksmcheck.run_check(2, accel="tcg", timeout_s=180, live_read=True)
    assert r["settings_restored"]
    real, pred = r["real"], r["predicted_without_zero_pages"]  # a THP split hides all-zero pieces from KSM
    for k in ("pages_shared", "pages_sharing", "general_profit"):
        assert abs(real[k] - pred[k]) <= 0.05 * real[k], (k, real[k], pred[k])
    print(
        f"\nlive-read prediction vs real KSM: { ({k: (pred[k], real[k]) for k in ('pages_shared', 'pages_sharing')}) }"
    )
