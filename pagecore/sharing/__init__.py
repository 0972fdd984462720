"""Content-based sharing analysis (paper §4, Figures 4 and 5).

* :mod:`.basic` — the paper's Figure 4 metrics for a set of hashes and the 1..N VM sweep.
* :mod:`.counts` — exact, verified-aware counts in every vocabulary (paper, KSM, esxtop,
  attribution), additive across hash partitions.
* :mod:`.salting` — ESXi ``Mem.ShareForceSalting`` sharing domains.
"""

from .basic import MB, SharingReport, sharing_report, vm_count_sweep
from .counts import SharingCounts, count_sharing

__all__ = [
    "MB",
    "SharingCounts",
    "SharingReport",
    "count_sharing",
    "sharing_report",
    "vm_count_sweep",
]
