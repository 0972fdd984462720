"""The naive predictor a reviewer tries first, one per figure: the bar our model must clear.

A null model maps a record's quantity name (``<series>@<point>`` or a named number) to the value
a trivial predictor gives, using only the experiment's stated inputs (:mod:`pagecore.paper`'s TEXT
setup) and the paper points our own model was fitted on, never a number it is judged on. The
comparison table (:func:`pagecore.experiments.records.comparison_table`) scores the null model
beside ours: a predicted record is *non-trivial* when the null model misses it.

=======  ==================================================================================
figure   null model
=======  ==================================================================================
fig02    "ballooned = configured": a ballooned VM runs as fast as one configured with that
         memory (the paper's configured bar), overhead 0 %
fig04    "linear in the number of VMs" through the fitted points of each series (the run's
         ``synth.fig04.fitted_to``): between two fitted VM counts the straight line joining
         them (shipped config, shared: 1, 2 and 10 VMs), beyond the last the last segment;
         reclaimed, fitted only at 1 VM: identical guests, each shared content once in every
         VM, so all but one of its n copies are reclaimed: (1 − 1/n) × the null shared MB
         (since session 24; before, n × the 1-VM point, which no sharing between VMs gives: a
         weak null for a figure about sharing between VMs); a series fitted only at 1 VM with
         no shared series fitted beyond it, n times that point
fig05    "constant fraction": every host reclaims the mean fraction of the fitted hosts (the
         run's ``fig05.fitted_to``; shipped config: A, B), shared = reclaimed, zero pages the
         mean fraction of the hosts whose zero pages were fitted (B); none fitted: 0
fig06    "estimate = what is touched": toucher schedule + 15 MB background (TEXT: 10-20 MB);
         no zero page thread spike, no smoothing
fig07    "τ-blind equal split": both VMs get half of the memory for VMs (TEXT: about 360 MB)
         before and after the τ change
fig08    "allocation = configured share, constant": each VM gets 1024 MB × max/Σmax at all
         times, balloon = max − allocation, nothing shared, nothing paged, always high
=======  ==================================================================================
"""

from __future__ import annotations

import functools
import math

from pagecore import paper

NULL_MODELS = {
    "fig02": "ballooned = configured (paper's configured bar); overhead 0",
    "fig04": "linear in #VMs through the fitted points (shipped config, shared: 1, 2, 10 VMs); reclaimed = "
    "(1 - 1/n) x that shared (identical guests: one copy of each content kept)",
    "fig05": "constant fraction: mean reclaimed % of the fitted hosts (shipped config: A, B)",
    "fig06": "estimate = toucher schedule + 15 MB background",
    "fig07": "tau-blind equal split of ~360 MB",
    "fig08": "allocation = 1024 MB x max/sum(max), constant; no sharing/paging; always high",
}


def _split(quantity: str) -> tuple[str, str]:
    name, _, at = quantity.partition("@")
    return name, at


def _fig02(q: str) -> float:
    name, at = _split(q)
    p = paper.FIG02.set_index("vm_mb")
    if name in ("configured_mbps", "ballooned_mbps"):
        return float(p.at[int(at), "configured_mbps"])
    if name == "overhead_pct":
        return 0.0
    return math.nan


def _points(fitted, at_type=str) -> dict[str, list]:
    """``{"shared_mb": [1, 2, 10], ...}`` from quantity names ``series@point`` (``fitted``)."""
    out: dict[str, list] = {}
    for q in fitted:
        name, _, at = q.partition("@")
        out.setdefault(name, []).append(at_type(at))
    return out


def fitted_points(config: dict) -> dict[str, list[str]]:
    """The paper points ``config`` calibrates Figures 4 and 5 on (``synth.fig04.fitted_to``,
    ``fig05.fitted_to``), by figure: what :func:`null_value` draws their null models through."""
    return {"fig04": list(config["synth"]["fig04"]["fitted_to"]), "fig05": list(config["fig05"]["fitted_to"])}


@functools.cache
def _default_fitted() -> dict[str, tuple[str, ...]]:
    from pagecore.config import default_config

    return {k: tuple(v) for k, v in fitted_points(default_config()).items()}


def _fitted_vms(name: str, fitted, p) -> list[int]:
    """The VM counts ``name`` was fitted at that the paper has a point at (only those can have
    calibrated anything), and 1."""
    return sorted(k for k in set(_points(fitted, int).get(name, [])) | {1} if k > 0 and k in p.index)


def _fig04(q: str, fitted) -> float:
    """Linear in #VMs through the fitted points of ``q``'s series (``fitted``: quantity names such
    as ``shared_mb@2``). The reclaimed MB, fitted at no VM count other than 1 while the shared MB
    is: (1 − 1/n) × the null's shared MB at n ≥ 2 VMs (the guests are identical, so each shared
    content is in every VM once and all copies but one are reclaimed). Any other series fitted at
    no VM count other than 1 is n times its 1-VM point."""
    name, at = _split(q)
    p = paper.FIG04.set_index("vms")
    if name not in p.columns:
        return math.nan
    one = float(p.at[1, name])
    if name.endswith("_pct"):
        return one
    n = int(at)
    vms = _fitted_vms(name, fitted, p)
    if name == "reclaimed_mb" and vms == [1] and n >= 2 and len(_fitted_vms("shared_mb", fitted, p)) > 1:
        return (1.0 - 1.0 / n) * _fig04(f"shared_mb@{n}", fitted)
    pts = [(0, 0.0)] + [(k, float(p.at[k, name])) for k in vms]
    # the segment of fitted points that holds n (the last one beyond the last point)
    i = next((j for j in range(1, len(pts)) if n <= pts[j][0]), len(pts) - 1)
    (k0, y0), (k1, y1) = pts[i - 1], pts[i]
    return y0 + (y1 - y0) * (n - k0) / (k1 - k0)


def _fig05_fraction(fitted) -> tuple[float, float]:
    """The mean reclaimed fraction of the hosts whose reclaimed MB was fitted, and the mean zero
    fraction of those whose zero MB was (0 without any: the null model then reclaims nothing)."""
    p = paper.FIG05.set_index("workload")
    pts = _points(fitted)

    def mean_fraction(col: str) -> float:
        hosts = sorted(h for h in set(pts.get(col, [])) if h in p.index)
        return float((p.loc[hosts, col] / p.loc[hosts, "total_mb"]).mean()) if hosts else 0.0

    return mean_fraction("reclaimed_mb"), mean_fraction("zero_reclaimed_mb")


def _fig05(q: str, fitted) -> float:
    name, at = _split(q)
    p = paper.FIG05.set_index("workload")
    frac, zero = _fig05_fraction(fitted)
    total = float(p.at[at, "total_mb"])
    return {
        "shared_mb": frac * total,
        "reclaimed_mb": frac * total,
        "shared_pct": 100 * frac,
        "reclaimed_pct": 100 * frac,
        "zero_reclaimed_mb": zero * total,
    }.get(name, math.nan)


FIG06_BACKGROUND_MB = sum(paper.FIG06["background_text_mb"]) / 2  # TEXT: "10-20 MB" of background activity, midpoint
FIG06_TOUCHER_PEAK_MB = float(paper.FIG06_TOUCHER.mb.max())  # the toucher's largest set (250 MB)


def _touched(t_min: float) -> float:
    s = paper.FIG06_TOUCHER
    row = s[(s.from_min <= t_min) & (s.to_min > t_min)]
    return float(row.mb.iloc[0]) if len(row) else 0.0


def _fig06(q: str) -> float:
    name, at = _split(q)
    if name == "baseline_estimate_mb":
        return FIG06_BACKGROUND_MB
    if name == "peak_estimate_mb":
        return FIG06_TOUCHER_PEAK_MB + FIG06_BACKGROUND_MB
    if name == "zpt_spike_mb":
        return _touched(sum(paper.FIG06["zpt_spike_min"]) / 2) + FIG06_BACKGROUND_MB
    if name == "slow_average_mb":
        return _touched(float(at.removesuffix("min"))) + FIG06_BACKGROUND_MB
    return math.nan


def _fig07(q: str) -> float:
    name, _ = _split(q)
    half = paper.FIG07["available_mb"] / 2
    if name.startswith("alloc_") and name.endswith(("_tau0_mb", "_tau75_mb")):
        return half
    if name == "alloc_idle_peak_mb":
        return paper.FIG07["vm_max_mb"]
    if name.startswith("usage_"):
        # usage = what the workload asks for, capped by the equal split
        key = name
        return min(half, float(paper.FIG07[key])) if key in paper.FIG07 else math.nan
    return math.nan


def _fig08_vm_alloc() -> dict[str, float]:
    v = paper.FIG08_VMS
    host = paper.FIG08_TEXT["host_mb"]
    total = float(v.max_mb.sum())
    return {name: host * float(mx) / total for name, mx in zip(v.vm, v.max_mb, strict=True)}


def _fig08(q: str) -> float:
    name, _ = _split(q)
    alloc = _fig08_vm_alloc()
    vmax = dict(zip(paper.FIG08_VMS.vm, paper.FIG08_VMS.max_mb.astype(float), strict=True))
    host = float(paper.FIG08_TEXT["host_mb"])
    series = {
        "total_alloc": host,
        "total_balloon": float(sum(vmax.values())) - host,
        "total_shared": 0.0,
        "citrix_alloc": alloc["citrix"],
        "citrix_balloon": vmax["citrix"] - alloc["citrix"],
        "citrix_shared": 0.0,
        "sql_alloc": alloc["sql"],
        "sql_balloon": vmax["sql"] - alloc["sql"],
        "sql_shared": 0.0,
    }
    if name in series:
        return series[name]
    named = {
        "zero_pages_shared_before_swap_mb": 0.0,
        "paged_nonzero_boot_mb": 0.0,
        "swapped_after_boot_max_mb": 0.0,
        "sql_alloc_idle_min_mb": alloc["sql"],
        "time_in_high_pct": 100.0,
        "total_alloc_max_mb": host,
        "total_alloc_min_mb": host,
        "total_shared_max_mb": 0.0,
        "total_shared_min_mb": 0.0,
        "total_balloon_max_mb": series["total_balloon"],
        "sql_query_alloc_peak_mb": alloc["sql"],
        "sql_query_balloon_min_mb": series["sql_balloon"],
        "citrix_alloc_min_mb": alloc["citrix"],
    }
    return named.get(name, math.nan)


_FUNCS = {"fig02": _fig02, "fig04": _fig04, "fig05": _fig05, "fig06": _fig06, "fig07": _fig07, "fig08": _fig08}


#: Null models drawn through the paper points the model was fitted on (``fitted_to``)
_FITTED_ON = ("fig04", "fig05")


def null_value(figure: str, quantity: str, fitted: dict[str, list[str]] | None = None) -> float:
    """The figure's null-model value for ``quantity`` (NaN when it has none: e.g. the
    active-memory series of Figure 8, which are fitted inputs). ``fitted``: per figure, the paper
    points our model was fitted on (the run's ``synth.fig04.fitted_to`` and ``fig05.fitted_to``;
    default: the shipped config's), which the Figure 4 and 5 null models go through."""
    f = _FUNCS.get(figure)
    if f is None:
        return math.nan
    if figure in _FITTED_ON:
        pts = (_default_fitted() if fitted is None else fitted).get(figure, ())
        return float(f(quantity, tuple(pts)))
    return float(f(quantity))
