"""Content-based sharing (paper §4, Figures 4 and 5), exact and over time.

Owns: the Figure 4 metrics and the 1..N VM sweep (:mod:`.basic`); exact counts in every
vocabulary — paper, KSM, esxtop, intra/inter-VM attribution — additive across hash partitions
(:mod:`.counts`, :mod:`.fastcount`, :mod:`.partition`); ESXi ``Mem.ShareForceSalting`` domains
(:mod:`.salting`); the Figure 5 table (:mod:`.tables`); and sharing over time: page histories
(:mod:`.pagehistory`), the ESX page-sharing scanner (:mod:`.scanner`), the Linux KSM emulator
(:mod:`.ksm`), what they saved by mechanism (:mod:`.emulated_savings`), duplicate lifetimes
(:mod:`.lifetime`); large pages (:mod:`.largepages`). Must not: read dump formats (bytes
come through :mod:`pagecore.pages`), replay a memory manager, or draw.
"""

from pagecore.sharing.basic import MB, SharingReport, sharing_report, vm_count_sweep
from pagecore.sharing.counts import SharingCounts, count_sharing
from pagecore.sharing.emulated_savings import ksm_savings, scanner_savings
from pagecore.sharing.ksm import KsmResult, KsmSettings, ThpBacking, emulate_ksm, stale_below
from pagecore.sharing.largepages import large_page_report, large_page_savings
from pagecore.sharing.lifetime import catchable_fraction, duplicate_episodes, ksm_catchable_fraction, survival
from pagecore.sharing.pagehistory import PageHistory, read_history, with_random_writes
from pagecore.sharing.partition import count_partition, gather, load_counts, save_counts, scatter_table
from pagecore.sharing.salting import salt_domains
from pagecore.sharing.scanner import ScannerSettings, ScanResult, emulate_scanner
from pagecore.sharing.tables import fig05_scaled, fig05_structure, fig05_table

__all__ = [
    "MB",
    "KsmResult",
    "KsmSettings",
    "PageHistory",
    "ScanResult",
    "ScannerSettings",
    "SharingCounts",
    "SharingReport",
    "ThpBacking",
    "catchable_fraction",
    "count_partition",
    "count_sharing",
    "duplicate_episodes",
    "emulate_ksm",
    "emulate_scanner",
    "fig05_scaled",
    "fig05_structure",
    "fig05_table",
    "gather",
    "ksm_catchable_fraction",
    "ksm_savings",
    "large_page_report",
    "large_page_savings",
    "load_counts",
    "read_history",
    "salt_domains",
    "save_counts",
    "scanner_savings",
    "scatter_table",
    "sharing_report",
    "stale_below",
    "survival",
    "vm_count_sweep",
    "with_random_writes",
]
