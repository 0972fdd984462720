"""The rows of `pagecore share`'s table (and CSV): each VM alone, then the whole set, one unit."""

from __future__ import annotations

MIB = 2**20

#: What each column means, printed under the table (one unit: MiB = 2^20 bytes, which is what
#: the paper calls MB and what every ``*_mb`` field of pagecore's JSON holds).
LEGEND = (
    "pages: guest pages of 4 KiB; zero: pages of all zero bytes; shared: pages whose content at "
    "least one other page has (all backed by one copy-on-write machine page per content); "
    "reclaimed = saved: machine pages sharing frees (shared minus one copy per content); "
    "shared-reclaimed: the copies kept; MiB = 2^20 bytes (what the paper calls megabytes); %: of pages"
)

#: (CSV column, table header) in order.
COLUMNS = [
    ("set", "set"),
    ("vms", "VMs"),
    ("total_pages", "pages"),
    ("zero_pages", "zero"),
    ("shared_pages", "shared"),
    ("reclaimed_pages", "reclaimed"),
    ("shared_minus_reclaimed_pages", "shared-reclaimed"),
    ("saved_mib", "saved MiB"),
    ("saved_pct", "saved %"),
]


def share_rows(rep: dict, by_vm: bool = False) -> list[dict]:
    """One row per VM counted alone (``by_vm``), then one for the whole set.

    Parameters
    ----------
    rep : dict
        A report of :func:`pagecore.experiments.analyze_page_tables`.
    by_vm : bool
        Add each VM's sharing with itself only (its ``alone_*`` counts) before the set's row.

    Returns
    -------
    list of dict
        Keys as in :data:`COLUMNS`: page counts, ``saved_mib`` (reclaimed pages × page size /
        2^20) and ``saved_pct`` (reclaimed over total pages, percent). VM names are never cut.
    """
    page = rep.get("page_size", 4096)

    def row(label, vms, total, zero, shared, reclaimed):
        return {
            "set": label,
            "vms": vms,
            "total_pages": total,
            "zero_pages": zero,
            "shared_pages": shared,
            "reclaimed_pages": reclaimed,
            "shared_minus_reclaimed_pages": shared - reclaimed,
            "saved_mib": reclaimed * page / MIB,
            "saved_pct": 100.0 * reclaimed / total if total else 0.0,
        }

    rows = []
    if by_vm:
        for name, d in rep["by_vm"].items():
            rows.append(
                row(
                    f"{name} alone",
                    1,
                    d["total_pages"],
                    d["zero_pages"],
                    d["alone_shared_pages"],
                    d["alone_reclaimed_pages"],
                )
            )
    rows.append(
        row("all", rep["vms"], rep["total_pages"], rep["zero_pages"], rep["shared_pages"], rep["reclaimed_pages"])
    )
    return rows
