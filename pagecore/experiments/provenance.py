"""Where every parameter that moves a compared number comes from (machine-readable).

One row per config key (dotted path; ``*`` matches every element of a list): its *kind* of
source and the source itself, the figures it moves, and for UNCONFIRMED parameters the
plausible range the sensitivity sweep (``snakemake sensitivity``) covers.

Kinds:

``paper``        stated in the paper (section, figure or table; TEXT or GRAPH)
``doc``          later VMware documentation (ESX 2.x / ESX 4), not the paper
``measurement``  an independent measurement or source (e.g. a kernel's data structures)
``assumption``   no source; the reason is given
``fitted``       chosen to match named paper points (those records are ``fitted``)
``input``        arithmetic on paper values (the records it fixes are ``input``)

The config comments say the same in prose; ``tests/test_provenance.py`` checks that every row
resolves in the default config and that schedules typed into the config equal
:mod:`pagecore.paper`.
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("paper", "doc", "measurement", "assumption", "fitted", "input")


@dataclass(frozen=True)
class Param:
    key: str
    kind: str
    source: str
    moves: tuple[str, ...]
    low: float | None = None  # sensitivity range (UNCONFIRMED parameters only)
    high: float | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"{self.key}: kind must be one of {KINDS}")


def _pm50(key, kind, source, moves, value):
    """A parameter swept over ±50 % of its default."""
    return Param(key, kind, source, moves, 0.5 * value, 1.5 * value)


S = ("fig06", "fig07", "fig08")

PARAMETERS: tuple[Param, ...] = (
    # --- memory manager (pagecore.sim) -----------------------------------------------------
    Param("sim.tau", "paper", "§5.2 TEXT: default tax rate 75 %", S),
    Param("sim.sampling.sample_pages", "paper", "§5.3 TEXT: n = 100 pages per period", S),
    Param("sim.sampling.period_s", "paper", "§5.3 TEXT: 30 s of VM time", S),
    Param(
        "sim.sampling.alpha_slow",
        "fitted",
        "fitted on paper.FIG06 slow_decay_mb (11 points, 28.5-33.5 min)",
        S,
        0.135,
        0.405,
    ),
    Param(
        "sim.sampling.alpha_fast", "fitted", "read off Figure 6's fast average by eye (reference §3.4)", S, 0.35, 0.95
    ),
    Param("sim.sampling.initial_fraction", "assumption", "averages start at 0 at power-on (no source)", S, 0.0, 0.5),
    Param("sim.rebalance_s", "doc", "UNCONFIRMED; ESX 2.x/4 15-s reallocation period [DOC]", S, 7.5, 22.5),
    Param("sim.states.high_pct", "paper", "§6.3 TEXT: 6 %", S),
    Param("sim.states.soft_pct", "paper", "§6.3 TEXT: 4 %", S),
    Param("sim.states.hard_pct", "paper", "§6.3 TEXT: 2 %", S),
    Param("sim.states.low_pct", "paper", "§6.3 TEXT: 1 %", S),
    Param(
        "sim.states.hysteresis_pct",
        "assumption",
        "UNCONFIRMED 'significantly exceeding'; 1 point (BSD's 5 %/7 % analogy in §6.3 suggests 1-2)",
        S,
        0.5,
        2.0,
    ),
    Param(
        "sim.target_pool",
        "paper",
        "§6.3: 'in every state, targets are computed to drive free memory above the high threshold'",
        S,
    ),
    Param(
        "sim.credit_shared",
        "paper",
        "§4.3/§6.3 and Figure 8: allocation counts shared pages, sharing eases pressure",
        S,
    ),
    Param(
        "sim.balloon_in_high",
        "assumption",
        "UNCONFIRMED; §6.3's table: high = no reclamation, so false (set from the text, not from a figure)",
        S,
    ),
    Param("sim.balloon.poll_s", "paper", "§3.2 TEXT: drivers poll once per second", S),
    Param(
        "sim.balloon.max_fraction",
        "doc",
        "UNCONFIRMED; documented range 0.5 (ESX 2.x) to 0.65 (ESX 4 Mem.CtlMaxPercent) [DOC]",
        S,
        0.5,
        0.65,
    ),
    _pm50("sim.balloon.rate_min_mb_s", "assumption", "UNCONFIRMED adaptive rate limit: floor", S, 1.0),
    _pm50("sim.balloon.rate_max_mb_s", "assumption", "UNCONFIRMED adaptive rate limit: ceiling", S, 16.0),
    Param("sim.balloon.unavailable_during_boot", "paper", "§3.2/Figure 8 TEXT: drivers start late in boot", S),
    Param(
        "sim.overrides.fig07.sharing",
        "fitted",
        "sharing off in Figure 7, inferred from its allocations adding up to the memory for VMs",
        ("fig07",),
    ),
    Param("sim.paging.swap_rate_mb_s", "assumption", "UNCONFIRMED; 2002 SCSI disks stream 20-40 MB/s", S, 16.0, 48.0),
    _pm50("sim.sharing.rate_vm_pages_s", "doc", "UNCONFIRMED; ESX 2.x Mem.ShareScanVM = 50 pages/s [DOC]", S, 50.0),
    _pm50(
        "sim.sharing.rate_total_pages_s", "doc", "UNCONFIRMED; ESX 2.x Mem.ShareScanTotal = 200 pages/s [DOC]", S, 200.0
    ),
    Param(
        "sim.mechanisms.sharing",
        "paper",
        "§4.2-4.3: content-based sharing (hint and shared frames, copy-on-write) is `content`; the default `zero` "
        "shares only zero pages, kept because `content` left the default run's Figure 6-8 score unchanged "
        "(17 of 160 on 5 seeds) and would add the unsourced sim.contents.os_shared; not chosen by looking at a figure",
        S,
    ),
    Param(
        "sim.contents.os_shared.windows",
        "assumption",
        "UNCONFIRMED: half of the boot-loaded OS pages are code and read-only data identical across Windows guests; "
        "no source, set before any content run was scored; moves numbers only with sim.mechanisms.sharing: content",
        S,
    ),
    Param(
        "sim.contents.os_shared.linux",
        "assumption",
        "UNCONFIRMED: as for Windows; moves numbers only with sim.mechanisms.sharing: content",
        ("fig07",),
    ),
    # --- workloads (pagecore.synth.workloads) ------------------------------------------------
    Param(
        "workloads.*.host.overhead_used_mb",
        "assumption",
        "UNCONFIRMED part of the 32-MB overhead reservation in use: frame buffer 4-8 MB (§6.2 TEXT) + pmap and "
        "shadow page tables",
        S,
        8.0,
        32.0,
    ),
    Param(
        "workloads.fig07.host.esx_mb",
        "input",
        "set so 512 MB - ESX - 2 x 32 MB overhead = the paper's 'about 360 MB' for VMs (Figure 7 TEXT)",
        ("fig07",),
    ),
    Param(
        "workloads.fig08.host.system_mb",
        "input",
        "Figure 8 TEXT arithmetic: 'only 1 GB is available for VMs' + ESX 88 MB (as Figure 7). The 1 GB holds the "
        "VMs and their overhead: the text's 'overcommitted by more than 60 %' is (1472 MB max + 160 MB overhead) over "
        "the memory for VMs (reference esx2002.md: 1632/1024 = 59 %, 1632/1000 = 63 %; with the overhead outside the "
        "1 GB it would be 1472/1024 = 44 %). Independent of the figure, so the records it moves stay predicted. The "
        "base, 1000 or 1024 MB, is UNCONFIRMED: swept 1000-1048 MB + ESX. An earlier host of 1272 MB (overhead "
        "outside the 1 GB) contradicts the 60 %; the README's 'How close is it' gives both hosts' scores",
        ("fig08",),
        1088.0,
        1136.0,
    ),
    Param("workloads.fig06.vms.*.max_mb", "assumption", "UNCONFIRMED VM size; above the 285-MB peak", ("fig06",)),
    Param("workloads.fig06.vms.*.background.mb", "paper", "Figure 6 TEXT: 10-20 MB of background activity", ("fig06",)),
    Param(
        "workloads.fig06.vms.*.foreground.schedule",
        "paper",
        "Figure 6 GRAPH: toucher schedule = paper.FIG06_TOUCHER (equality tested)",
        ("fig06",),
    ),
    Param(
        "workloads.fig06.vms.*.foreground.period_s",
        "assumption",
        "UNCONFIRMED: toucher sweeps every 10 s",
        ("fig06",),
        5,
        15,
    ),
    Param(
        "workloads.fig06.vms.*.zpt_mb_s",
        "fitted",
        "zero page thread rate chosen so Figure 6's spike lands within one sample",
        ("fig06",),
        4.0,
        12.0,
    ),
    Param(
        "workloads.fig07.tau_schedule_min",
        "paper",
        "Figure 7 GRAPH: tau 0 -> 75 % at paper.FIG07 tau_change_min (equality tested)",
        ("fig07",),
    ),
    Param("workloads.fig07.vms.*.max_mb", "paper", "Figure 7 TEXT: 256 MB VMs", ("fig07",)),
    Param("workloads.fig07.vms.*.background.mb", "fitted", "read off Figure 7's idle usage (5-14 MB)", ("fig07",)),
    Param(
        "workloads.fig07.vms.*.foreground.schedule",
        "fitted",
        "dbench working set 190 MB read off Figure 7's usage at tau = 75 %",
        ("fig07",),
    ),
    Param("workloads.fig07.vms.*.start_min", "paper", "Figure 7 GRAPH: VM2 starts at about 5.2 min", ("fig07",)),
    Param(
        "workloads.*.vms.*.boot.zero_mb_s",
        "fitted",
        "Windows boot zeroing rate iterated until Figure 8's boot peaks landed at ~2.4 min",
        ("fig07", "fig08"),
        3.0,
        9.0,
    ),
    Param(
        "workloads.*.vms.*.boot.boot_s",
        "paper",
        "Figure 7 GRAPH: 'VM1 boots' 0-1.6 min (about 100 s of OS loading)",
        ("fig07", "fig08"),
    ),
    Param(
        "workloads.fig08.vms.*.boot.os_mb",
        "assumption",
        "UNCONFIRMED: each Windows 2000 guest loads 40 MB of OS data at boot (no source; set when the replay was "
        "first written; Figure 7's Windows VM uses 32 MB). It is the only non-zero data while the guests zero their "
        "memory with no balloon driver, so ESX's random pager writes about 2.4 MB per MB of it to swap at boot "
        "(measured, issue 14: os_mb 20/30/40 give 49/74/96 MB, paper 35); not swept",
        ("fig08",),
    ),
    Param(
        "workloads.fig08.vms.*.max_mb", "paper", "Figure 8 TEXT: = paper.FIG08_VMS max_mb (equality tested)", ("fig08",)
    ),
    Param(
        "workloads.fig08.vms.*.min_mb", "paper", "Figure 8 TEXT: = paper.FIG08_VMS min_mb (equality tested)", ("fig08",)
    ),
    Param(
        "workloads.fig08_fit",
        "fitted",
        "the declared fit fig08_active: every fig08 VM's foreground schedule from paper.FIG08 citrix_active, "
        "sql_active and total_active - citrix_active - sql_active (targets listed in results/fits/fig08_active.json); "
        "no segment starts before its VM has booted (OS loading + zeroing): the applications run on the booted guest "
        "(§6.3 TEXT: the VMs boot together zeroing all memory, the balloon drivers start late in boot, the "
        "benchmarks start later)",
        ("fig08",),
    ),
    Param(
        "workloads.fig08.free_on_shrink",
        "assumption",
        "false: pages a fitted working set gives up stay cached in the guest; the paper does not say whether "
        "Figure 8's applications released memory (true, a what-if: Windows' zero page thread zeroes what they free)",
        ("fig08",),
    ),
    Param(
        "workloads.fig08_fit.split",
        "assumption",
        "how the exchange, exchange_client and citrix_client VMs share panel (b) - (c) - (d): in proportion to their "
        "max sizes (TEXT); the paper draws only their sum",
        ("fig08",),
    ),
    Param(
        "workloads.fig08_fit.lead_min",
        "assumption",
        "a working-set segment starts this long before the midpoint between marks (the fast average needs about "
        "two 30-s samples to catch up); set before any fitted run was scored",
        ("fig08",),
        0.0,
        2.0,
    ),
    # --- Figure 2 (pagecore.sim.guestcache) ------------------------------------------------
    Param(
        "reclaim.guest.kernel_bytes_per_page",
        "measurement",
        "Linux 2.4 i386 struct page 64 B + page-cache hash pointer 4 B (include/linux/mm.h, mm/filemap.c)",
        ("fig02",),
        34.0,
        102.0,
    ),
    _pm50(
        "reclaim.guest.fixed_mb", "assumption", "UNCONFIRMED kernel + daemons + 40 dbench processes", ("fig02",), 24.0
    ),
    Param(
        "reclaim.trace.mb_per_client",
        "fitted",
        "chosen from the curvature of Figure 2's configured bars",
        ("fig02",),
    ),
    Param(
        "reclaim.trace.popularity_power",
        "fitted",
        "chosen from the curvature of Figure 2's configured bars",
        ("fig02",),
    ),
    Param(
        "reclaim.fig02.fit_mb",
        "fitted",
        "cost model t_ref, t_disk fitted on paper.FIG02 configured_mbps at these sizes (declared fit fig02_cost)",
        ("fig02",),
    ),
    Param("reclaim.trace.clients", "paper", "Figure 2 TEXT: dbench with 40 clients", ("fig02",)),
    # --- Figures 4 and 5 (pagecore.synth) --------------------------------------------------
    Param("synth.fig04.fractions", "fitted", "calibrate_fig04 on synth.fig04.fitted_to", ("fig04",)),
    Param(
        "synth.fig04.variants",
        "assumption",
        "UNCONFIRMED per-boot versions per slot, chosen before fitting",
        ("fig04",),
    ),
    Param("synth.fig04.mem_mb", "paper", "Figure 4 TEXT: 40 MB guests", ("fig04",)),
    Param("catalogue.os.*.shared_mb", "fitted", "guests.fit on fig05.fitted_to", ("fig05",)),
    Param("catalogue.os.linux.zero", "fitted", "guests.fit on zero_reclaimed_mb@B", ("fig05",)),
    Param("catalogue.os.winnt4.zero", "assumption", "NT's zero page thread keeps ~10 % free pages zeroed", ("fig05",)),
    Param("catalogue.apps", "assumption", "sizes of the era's server binaries and libraries", ("fig05",)),
)


def _resolve(cfg, parts):
    if not parts:
        return [cfg]
    head, rest = parts[0], parts[1:]
    if head == "*":
        items = cfg.values() if isinstance(cfg, dict) else cfg if isinstance(cfg, list) else []
        return [x for item in items for x in _resolve(item, rest)]
    if isinstance(cfg, dict) and head in cfg:
        return _resolve(cfg[head], rest)
    return []


def lookup(cfg: dict, key: str) -> list:
    """Every value of dotted ``key`` (``*`` = every list element / mapping value) in ``cfg``."""
    return _resolve(cfg, key.split("."))


def provenance_table(cfg: dict):
    """The provenance rows with the values the config holds (a pandas DataFrame)."""
    import pandas as pd

    rows = []
    for p in PARAMETERS:
        vals = lookup(cfg, p.key)
        if vals and all(isinstance(v, int | float | bool | str) for v in vals):
            uniq = sorted({str(v) for v in vals})
            value = uniq[0] if len(uniq) == 1 else ", ".join(uniq)
        else:
            value = "(structured)" if vals else "(absent)"
        rows.append(
            {
                "key": p.key,
                "value": value,
                "kind": p.kind,
                "source": p.source,
                "moves": " ".join(p.moves),
                "sweep_low": p.low,
                "sweep_high": p.high,
            }
        )
    return pd.DataFrame(rows)


def swept(figures: tuple[str, ...] = S) -> list[Param]:
    """Parameters with a sensitivity range that move one of ``figures``."""
    return [p for p in PARAMETERS if p.low is not None and set(p.moves) & set(figures)]


def _assign(cfg, parts, value):
    head, rest = parts[0], parts[1:]
    targets = (
        list(cfg.values())
        if head == "*" and isinstance(cfg, dict)
        else cfg
        if head == "*" and isinstance(cfg, list)
        else [cfg]
    )
    n = 0
    for t in targets:
        if head != "*":
            if not isinstance(t, dict) or head not in t:
                continue
            if not rest:
                t[head] = value
                n += 1
            else:
                n += _assign(t[head], rest, value)
        elif not rest:
            raise ValueError("a key cannot end in *")
        else:
            n += _assign(t, rest, value)
    return n


def with_value(cfg: dict, key: str, value) -> dict:
    """A deep copy of ``cfg`` with every match of dotted ``key`` set to ``value``."""
    import copy

    out = copy.deepcopy(cfg)
    if _assign(out, key.split("."), value) == 0:
        raise KeyError(f"{key} matches nothing in the config")
    return out
