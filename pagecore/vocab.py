"""The words every reporting command shares: mechanism keys, output formats, optional page-table columns.

Defined once here (issue 15) and used by ``share``, ``ksm``, ``scan``, ``compress``, ``host`` and the
workflow, so a number means the same thing wherever it is printed.

Mechanism keys (:data:`MECHANISMS`) name *where memory was won*; each is memory the host no longer
backs with a machine page of its own:

==============  ===========================================================================
``zero``        all-zero guest pages backed by one shared zero page (ESX) or the kernel zero
                page (KSM ``use_zero_pages``); never double-counted in ``share_*``
``share_intra`` further copies of a non-zero content within one VM
``share_inter`` further copies of a non-zero content found in another VM
``compress``    pages kept compressed instead of swapped: the bytes saved (page − compressed)
``balloon``     guest pages given back through the balloon driver
``swap``        pages written to host swap (won, but at a cost: reported, never a goal)
``free_report`` guest-free pages the guest reported and the host discarded (virtio-balloon
                free page reporting)
==============  ===========================================================================

The idle memory tax does not win memory: it moves it from idle VMs to active ones, so it is
reported as :data:`REALLOCATIONS` (``idle_tax``), never summed with the savings.

Optional page-table columns later inputs add (:data:`HOST_VIEW_COLUMNS` from ``pagecore live``
reading ``/proc/PID/pagemap`` and ``/proc/kpageflags``; ``csize_<alg>`` / ``same_filled`` from
``pagecore hash --compress ALG``; ``guest_free`` from a guest's own free-page list). KSM only
sees pages that are present in the host; a command that counts KSM sharing says which
eligibility it used (:data:`KSM_ELIGIBILITY`): ``all`` pages of the table, or the ``host_view``
(``host_present`` pages only).
"""

from __future__ import annotations

#: Where memory is won, in report order.
MECHANISMS = ("zero", "share_intra", "share_inter", "compress", "balloon", "swap", "free_report")

#: Memory moved between VMs rather than won.
REALLOCATIONS = ("idle_tax",)

#: One ``--format`` set for every reporting command.
FORMATS = ("table", "json", "csv", "parquet")

#: Host-view columns of a page table (``pagecore live``): booleans per page.
HOST_VIEW_COLUMNS = ("host_present", "host_thp", "host_zero_page", "host_ksm")

#: Per-algorithm compressed size column prefix (``csize_lz4`` …) and the same-filled flag.
COMPRESSED_SIZE_PREFIX = "csize_"
SAME_FILLED_COLUMN = "same_filled"

#: The guest's own free-page flag (free page reporting; issue 20).
GUEST_FREE_COLUMN = "guest_free"

#: Which pages a KSM count considered.
KSM_ELIGIBILITY = ("all", "host_view")


def ksm_eligibility(columns) -> str:
    """``host_view`` when a table carries ``host_present``, else ``all``."""
    return "host_view" if "host_present" in set(columns) else "all"
