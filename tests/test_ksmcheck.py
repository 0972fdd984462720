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
    """Issue 15 item 3: identical and mixed guests, KSM at 1000 and 200 pages per 20 ms.

    Steady pages_shared and pages_sharing within 5 % of the emulator fed the same pages and
    their host view (THP rule of walk_history); ksmd's cost fitted on 1000:20 predicts the time
    to 90 % of the steady pages_sharing at 200:20 within 30 % (and the other way round, from the
    same runs, reported). Every KSM setting is restored; only our QEMU processes are ended. About 4-6 min
    under TCG on 2 shared cores.
    """
    found = _skip_unless_idle_ksm()
    settings = [ksmcheck.KsmSettings(pages_to_scan=p, sleep_millisecs=20, smart_scan=False) for p in (1000, 200)]
    r = ksmcheck.run_scenarios(
        ksmcheck.SCENARIOS, settings, accel="tcg", timeout_s=150, state_file=tmp_path / "state.json"
    )
    print("\n" + json.dumps(r, indent=1))
    after = ksmcheck.read_ksm()
    for k in (*ksmcheck.KNOBS, "run"):
        assert after.get(k) == found.get(k), k
    assert r["settings_restored"]
    assert not (tmp_path / "state.json").exists()
    for name, sc in r["scenarios"].items():
        for rec in sc["settings"]:
            where = (name, rec["settings"]["pages_to_scan"])
            assert rec["real_settled"], where
            assert not rec["foreign_mergeable_after"], where
            for k in ("pages_shared", "pages_sharing"):
                assert abs(rec["error"][k]) <= 0.05, (where, k, rec["real"][k], rec["predicted"][k])
            if rec["settings"]["pages_to_scan"] != settings[rec["calibrated_on"]].pages_to_scan:
                assert abs(rec["time_error_calibrated"]) <= 0.30, (where, rec["seconds_to_90pct"])
