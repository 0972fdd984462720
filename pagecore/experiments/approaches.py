"""Transparent vs cooperative reclamation on the same VMs: what each approach wins, how fast, at what cost (issue 20).

The classic critique of the paper: ESX guesses from below — it hashes memory to find duplicates,
samples to find idle memory and inflates a balloon — where a protocol between guest and host
would be simpler. Linux now has one (virtio-balloon free page reporting). This module puts the
approaches side by side on one set of VMs, each asked for *everything it can give* (the host is
short of memory from the start), and reports over time the memory each reclaims, the CPU or
operations it spends, and what it needs from the guest:

=============================  ==============================================  =====================
approach                       how it is computed                              needs from the guest
=============================  ==============================================  =====================
zero pages (ESX scanner)       the ESX scanner with every non-zero page        nothing
                               unique (:mod:`pagecore.sharing.scanner`)
content sharing (ESX scanner)  the ESX scanner on the real contents            nothing
content sharing (KSM)          the KSM emulator (:mod:`pagecore.sharing.ksm`)  nothing
ballooning                     each VM's idle memory (``1 − active``, at most  a balloon driver
                               ``balloon_max_pct``), inflated at the balloon
                               driver's adaptive rate (1 MB/s doubling each
                               second to 16 MB/s, ``sim.balloon``)
free page reporting            :func:`pagecore.experiments.cooperative`        a driver and OS
                               ``reclaim_timeline`` on the guests' free pages  support (Linux ≥ 5.7)
combinations                   reporting first (discarded pages leave the      what each part needs
                               scanners' input), then sharing, then the
                               balloon on the idle part of what is left
=============================  ==============================================  =====================

The idle memory tax reclaims nothing by itself: it decides *which* VMs the balloon takes from,
so its column is the memory it moves (:func:`pagecore.experiments.host.evaluate`'s ``idle_tax``
at ``host_mb``), never added to the reclaimed memory.

Free pages come from a ``guest_free`` column (a guest's own free-page list, issue 20's real
guests) or, for synthetic guests, from the content model
(:func:`pagecore.experiments.cooperative.synthetic_guest_free`, rule ``top`` or ``zero``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pagecore.vocab import GUEST_FREE_COLUMN

PAGES_PER_MIB = 256

NEEDS = {
    "zero pages (ESX scanner)": "nothing",
    "content sharing (ESX scanner)": "nothing",
    "content sharing (KSM)": "nothing",
    "ballooning": "a balloon driver",
    "free page reporting": "a driver and OS support (Linux >= 5.7)",
    "reporting + KSM": "a driver and OS support",
    "ESX sharing + ballooning": "a balloon driver",
    "reporting + KSM + ballooning": "a driver and OS support",
}


def _balloon_curve(pages: np.ndarray, t: np.ndarray, rate_min_mb_s: float, rate_max_mb_s: float) -> np.ndarray:
    """Pages ballooned by time ``t`` when every VM inflates towards ``pages[i]`` at a rate that
    starts at ``rate_min_mb_s`` and doubles every second up to ``rate_max_mb_s`` (the simulator's
    adaptive balloon rate, :mod:`pagecore.sim.balloon`)."""
    whole = np.floor(np.asarray(t, float)).astype(np.int64)
    j = np.arange(int(whole.max()) + 1 if len(whole) else 1, dtype=np.float64)
    rates = np.minimum(rate_min_mb_s * 2.0 ** np.minimum(j, 60.0), rate_max_mb_s)
    cum_pages = np.concatenate([[0.0], np.cumsum(rates)]) * PAGES_PER_MIB  # after k whole seconds
    done = cum_pages[whole]
    return np.minimum(np.asarray(pages, float)[:, None], done[None, :]).sum(axis=0)


def _step_on(t_src: np.ndarray, v_src: np.ndarray, t: np.ndarray) -> np.ndarray:
    """A step function (value from each time on) sampled at ``t``."""
    if not len(t_src):
        return np.zeros_like(t, dtype=np.float64)
    idx = np.searchsorted(t_src, t, side="right") - 1
    return np.where(idx >= 0, v_src[np.clip(idx, 0, None)], 0.0)


def with_guest_free(vms, rule: str = "top") -> list:
    """The VMs, each with a ``guest_free`` column: its own, or the content model's (``rule``)."""
    from pagecore.experiments.cooperative import synthetic_guest_free

    for v in vms:
        if GUEST_FREE_COLUMN not in v.frame:
            f = v.frame
            v.frame = f.assign(
                **{GUEST_FREE_COLUMN: synthetic_guest_free(f["gpfn"].to_numpy(), f["zero"].to_numpy(), rule=rule)}
            )
    return vms


def compare_approaches(vms, settings, *, host_mb: float | None = None, balloon: dict | None = None, points: int = 200):
    """Memory reclaimed over time by each approach on ``vms`` (with ``guest_free`` columns).

    Returns ``(timeline, table)``: ``timeline`` rows ``approach, t_s, reclaimed_mb``; ``table``
    one row per approach: ``reclaimed_mb`` (steady), ``seconds_to_90pct``, ``cpu`` (what it
    spends, in words and numbers), ``needs_from_guest``, and ``idle_tax_moved_mb`` for the
    ballooning rows.
    """
    from pagecore.experiments import cooperative as coop
    from pagecore.experiments.host import content_keys, evaluate, page_set, replicate, scan_over_time

    balloon = {"rate_min_mb_s": 1.0, "rate_max_mb_s": 16.0, **(balloon or {})}
    keys = content_keys(vms, "no")
    members = replicate(vms, keys, len(vms))
    frames = pd.concat([v.frame for v in vms], ignore_index=True)
    params = settings.reporting_params()
    rep_mask = coop.reportable_mask(frames, params)
    pages_total = len(frames)

    # free page reporting alone
    tl = coop.reclaim_timeline(frames, params)
    fpr_t = np.array(sorted(set(tl["t"].tolist())), float)
    # what the host gets back: the pages it backed before minus what it backs now (a reported
    # page the host never backed wins nothing)
    start = tl[tl["event"] == "start"].groupby("vm")["backed"].first()
    fpr_v = np.array([(start - tl[tl["t"] <= t].groupby("vm")["backed"].last()).sum() for t in fpr_t], float)
    fpr_final = float(fpr_v[-1]) if len(fpr_v) else 0.0
    reports = int(tl["event"].eq("report").sum())

    # scanners: alone, and on what reporting leaves
    def scans(mask):
        out = {}
        sub = []
        lo = 0
        for name, v, k, i in members:
            n = len(v.frame)
            m = mask[lo : lo + n]
            lo += n
            vv = type(v)(name=v.name, frame=v.frame[~m].reset_index(drop=True), size_mb=v.size_mb, active=v.active)
            sub.append((name, vv, k[~m], i))
        for p in ("esx2002", "kvm-ksm"):
            out[p] = scan_over_time(sub, p, settings)
        return out

    alone = scans(np.zeros(pages_total, bool))
    after = scans(rep_mask)
    zero_only = _zero_only(members, settings)

    # ballooning: idle memory of each VM, at most balloon_max_pct of it
    ps = page_set(members, "esx2002", settings)
    touched = np.bincount(ps.vm, weights=ps.cost.astype(float), minlength=ps.n_vms)
    act = np.array([v.active for _, v, _, _ in members])
    sizes = np.array([v.size_mb for _, v, _, _ in members]) * PAGES_PER_MIB

    def balloonable(backed):
        return np.minimum((1 - act) * backed, settings.balloon_max_pct / 100.0 * sizes)

    share_pv = _per_vm_saved(ps, "esx2002", settings)
    ksm_after_pv = _per_vm_saved(page_set(members, "kvm-ksm", settings), "kvm-ksm", settings, exclude=rep_mask)
    rep_pv = np.bincount(ps.vm, weights=rep_mask.astype(float), minlength=ps.n_vms)
    horizon = max(
        [alone[p]["seconds_to_90pct"] for p in alone]
        + [after[p]["seconds_to_90pct"] for p in after]
        + [zero_only["seconds_to_90pct"], float(fpr_t[-1]) if len(fpr_t) else 0.0, 60.0]
    )
    t = np.unique(np.concatenate([[0.0], np.geomspace(0.1, 3 * horizon, points)]))

    def scan_curve(r):
        tt = r["timeline"]["t_s"].to_numpy(float)
        vv = r["timeline"]["saved_mb"].to_numpy(float) * PAGES_PER_MIB
        return _step_on(tt, vv, t)

    curves = {
        "zero pages (ESX scanner)": scan_curve(zero_only),
        "content sharing (ESX scanner)": scan_curve(alone["esx2002"]),
        "content sharing (KSM)": scan_curve(alone["kvm-ksm"]),
        "ballooning": _balloon_curve(balloonable(touched), t, **balloon),
        "free page reporting": _step_on(fpr_t, fpr_v, t),
    }
    curves["reporting + KSM"] = curves["free page reporting"] + scan_curve(after["kvm-ksm"])
    curves["ESX sharing + ballooning"] = curves["content sharing (ESX scanner)"] + _balloon_curve(
        balloonable(touched - share_pv), t, **balloon
    )
    curves["reporting + KSM + ballooning"] = curves["reporting + KSM"] + _balloon_curve(
        balloonable(touched - rep_pv - ksm_after_pv), t, **balloon
    )
    rows = []
    timeline = []
    tax = None
    if host_mb is not None:
        tax = evaluate(members, "esx2002", host_mb, settings).idle_tax_mb
    for name, c in curves.items():
        final = float(c[-1])
        hit = np.flatnonzero(c >= 0.9 * final) if final > 0 else []
        t90 = float(t[hit[0]]) if len(hit) else 0.0
        timeline.append(pd.DataFrame({"approach": name, "t_s": t, "reclaimed_mb": c / PAGES_PER_MIB}))
        rows.append(
            {
                "approach": name,
                "reclaimed_mb": final / PAGES_PER_MIB,
                "reclaimed_pct": 100.0 * final / max(pages_total, 1),
                "seconds_to_90pct": t90,
                "cpu": _cpu(name, alone, zero_only, balloon, reports),
                "needs_from_guest": NEEDS[name],
                "idle_tax_moved_mb": tax if "ballooning" in name else None,
            }
        )
    return pd.concat(timeline, ignore_index=True), pd.DataFrame(rows), {"fpr_reports": reports, "fpr_pages": fpr_final}


def _cpu(name: str, alone: dict, zero_only: dict, balloon: dict, reports: int) -> str:
    if name.startswith("zero pages"):
        return f"{zero_only['scan_pages_per_s']:,.0f} pages hashed/s"
    if "ESX scanner" in name:
        return f"{alone['esx2002']['scan_pages_per_s']:,.0f} pages hashed/s"
    if name == "content sharing (KSM)":
        return f"{alone['kvm-ksm']['scan_pages_per_s']:,.0f} pages compared/s"
    if name == "ballooning":
        return f"balloon ops up to {balloon['rate_max_mb_s'] * PAGES_PER_MIB:,.0f} pages/s per VM"
    if name == "free page reporting":
        return f"{reports:,} report passes"
    if name == "reporting + KSM":
        return f"{reports:,} report passes + {alone['kvm-ksm']['scan_pages_per_s']:,.0f} pages compared/s"
    if name == "ESX sharing + ballooning":
        return f"{alone['esx2002']['scan_pages_per_s']:,.0f} pages hashed/s + balloon ops"
    return "report passes + pages compared + balloon ops"


def _zero_only(members, settings) -> dict:
    """The ESX scanner finding only zero pages: every non-zero page made unique."""
    from pagecore.experiments.host import _mix64, scan_over_time

    out = []
    base = np.uint64(0)
    for name, v, k, i in members:
        z = v.frame["zero"].to_numpy(bool)
        kk = k.copy()
        idx = np.arange(len(kk), dtype=np.uint64) + base
        kk[~z] = _mix64(idx[~z] ^ np.uint64(0x5EED_0000_0000_0001))
        base += np.uint64(len(kk))
        out.append((name, v, kk, i))
    return scan_over_time(out, "esx2002", settings)


def _per_vm_saved(ps, policy: str, settings, exclude=None) -> np.ndarray:
    from pagecore.experiments.host import sharing_savings

    mask = None if exclude is None else ~exclude
    s = sharing_savings(ps, policy, settings, mask=mask)["per_vm"]
    return s["zero"] + s["share_intra"] + s["share_inter"]


__all__ = ["NEEDS", "compare_approaches", "with_guest_free"]
