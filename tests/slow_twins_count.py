"""Slow, obviously-correct twin of :func:`pagecore.sharing.count_sharing`, written from the
module docstring of :mod:`pagecore.sharing.counts` with dicts and lists: every total, every
per-VM counter, esxtop SHRDSVD per VM and the top contents (ties broken by salt, then hash)."""

from __future__ import annotations

from collections import Counter


def count_sharing_twin(hashes, zero, vm, nvm, *, salt=None, eligible=None, use_zero_pages=False, mps=256, top_n=10):
    n = len(hashes)
    zero = [False] * n if zero is None else [bool(x) for x in zero]
    vm = [0] * n if vm is None else [int(x) for x in vm]
    salt = [0] * n if salt is None else [int(x) for x in salt]
    eligible = [True] * n if eligible is None else [bool(x) for x in eligible]
    per_vm = [dict.fromkeys(("pages", "zero", "shared", "alone_shared", "alone_reclaimed", "inter_shared",
                             "ineligible", "zero_shared"), 0) for _ in range(nvm)]  # fmt: skip
    svd = [0.0] * nvm
    groups: dict[tuple[int, int], list[int]] = {}  # (salt, hash) -> page indices in input order
    ineligible = 0
    for i in range(n):
        v = vm[i]
        per_vm[v]["pages"] += 1
        per_vm[v]["zero"] += zero[i]
        if not eligible[i]:
            per_vm[v]["ineligible"] += 1
            ineligible += 1
            continue
        groups.setdefault((salt[i], int(hashes[i])), []).append(i)
    t = Counter()
    top = []
    for (s, h), pages in groups.items():
        c = len(pages)
        zz = zero[pages[0]]
        by_vm = Counter(vm[p] for p in pages)
        k = len(by_vm)
        if use_zero_pages and zz:
            t["ksm_zero"] += c
        elif c >= 2:
            full, rest = divmod(c, mps)
            if rest == 1:  # the last copy has no partner for a new KSM page
                t["ksm_shared"] += full
                t["ksm_sharing"] += c - full - 1
                t["ksm_unshared"] += 1
            else:
                kp = full + (rest > 0)
                t["ksm_shared"] += kp
                t["ksm_sharing"] += c - kp
        else:
            t["ksm_unshared"] += 1
        if c < 2:
            t["unshared"] += 1
            continue
        t["shared"] += c
        t["groups"] += 1
        t["reclaimed"] += c - 1
        t["intra"] += sum(cv - 1 for cv in by_vm.values())
        t["inter"] += k - 1
        t["zero_saved"] += (c - 1) if zz else 0
        t["inter_shared"] += c if k >= 2 else 0
        for v, cv in by_vm.items():
            per_vm[v]["shared"] += cv
            per_vm[v]["zero_shared"] += cv if zz else 0
            per_vm[v]["inter_shared"] += cv if k >= 2 else 0
            if cv >= 2:
                per_vm[v]["alone_shared"] += cv
                per_vm[v]["alone_reclaimed"] += cv - 1
            svd[v] += cv * (c - 1) / c
        top.append((h, s, c, k, zz))
    top = sorted(top, key=lambda x: (-x[2], x[1], x[0]))[:top_n]  # most copies; ties: salt, hash
    top.sort(key=lambda x: (-x[2], x[0], x[1]))
    totals = {
        "pages": n,
        "zero": sum(zero),
        "distinct": len(groups) + ineligible,
        "shared": t["shared"],
        "shared_groups": t["groups"],
        "reclaimed": t["reclaimed"],
        "intra": t["intra"],
        "inter": t["inter"],
        "zero_saved": t["zero_saved"],
        "ineligible": ineligible,
        "unshared": t["unshared"] + ineligible,
        "ksm_shared": t["ksm_shared"],
        "ksm_sharing": t["ksm_sharing"],
        "ksm_unshared": t["ksm_unshared"] + ineligible,
        "ksm_zero": t["ksm_zero"],
        "inter_shared": t["inter_shared"],
    }
    return totals, per_vm, svd, top
