"""The KSM emulator against the real KSM on real QEMU guests (pagecore.qemu.ksmcheck).

Needs root (writable /sys/kernel/mm/ksm), qemu-system-x86_64, a kernel in /boot and busybox;
skips with the reason otherwise. 1.5-2.5 minutes under TCG on 2 cores (two 128 MB guests).
"""

from __future__ import annotations

import pytest

from pagecore.qemu import ksmcheck


def test_unavailable_reason_is_text_or_none():
    why = ksmcheck.unavailable_reason()
    assert why is None or isinstance(why, str)


@pytest.mark.slow
@pytest.mark.qemu
def test_real_ksm_agrees_with_the_emulator():
    why = ksmcheck.unavailable_reason()
    if why:
        pytest.skip(why)
    found = ksmcheck.read_ksm()
    if found.get("run") != "0" or int(found.get("pages_shared", "0")):
        pytest.skip("KSM is in use on this host; the check only runs on an idle KSM")
    r = ksmcheck.run_check(2, accel="tcg", smart_scan=False, timeout_s=120)
    after = ksmcheck.read_ksm()
    for k in (*ksmcheck.KNOBS, "run"):
        assert after.get(k) == found.get(k), k
    assert r["settings_restored"]
    real, lo, hi = r["real"], r["predicted_without_zero_pages"], r["predicted"]
    # KSM sees at most what the emulator was given; the all-zero pieces a THP split maps to the
    # zero page it never sees: the real saving lies between the two predictions (5 % slack for
    # the ROM and firmware blocks QEMU also marks mergeable)
    assert 0.95 * lo["pages_sharing"] <= real["pages_sharing"] <= 1.05 * hi["pages_sharing"]
    assert abs(real["pages_shared"] - hi["pages_shared"]) <= 0.05 * hi["pages_shared"] + 10
