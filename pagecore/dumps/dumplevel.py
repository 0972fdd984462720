"""What a kdump ``dump_level`` (makedumpfile ``-d``) leaves out, and why that biases sharing counts.

makedumpfile's dump level is a bit mask of page classes it excludes (``makedumpfile(8)``,
"-d dump_level"): each class is exactly a kind of page that content-based sharing counts, so a
filtered dump holds fewer zero and duplicate pages than the guest had, and every sharing number
computed from it is a lower bound.
"""

from __future__ import annotations

#: dump_level bit -> the page class makedumpfile excludes for it
DUMP_LEVEL_CLASSES = {
    1: "zero pages",
    2: "cache pages without private data",
    4: "cache pages with private data",
    8: "user process data pages",
    16: "free pages",
}


def excluded_classes(dump_level: int) -> list[str]:
    """Names of the page classes a dump at ``dump_level`` left out (unknown bits named as such)."""
    out = [name for bit, name in DUMP_LEVEL_CLASSES.items() if dump_level & bit]
    unknown = dump_level & ~sum(DUMP_LEVEL_CLASSES)
    if unknown:
        out.append(f"unknown dump_level bits {unknown:#x}")
    return out


def bias_of(meta: dict, zero_pages: int | None = None) -> dict | None:
    """Why a page table from a dump with this metadata undercounts sharing, or None if it does not.

    A dump is biased when its ``dump_level`` names excluded page classes *and* it actually left
    pages out (``pages_excluded`` > 0): QEMU's kdump writer puts ``dump_level`` 1 in its header
    but keeps every page, so its dumps are not flagged. ``zero_pages`` (all-zero pages the table
    holds, if known) is quoted in the message: makedumpfile ``-d 31`` dumps still hold some.

    Returns ``{"vm", "source_path", "dump_level", "missing_classes", "pages_excluded", "message"}``.
    """
    level = meta.get("dump_level")
    vm = meta.get("vm", "?")
    missing = excluded_classes(int(level)) if level else []
    excluded = int(meta.get("pages_excluded", 0) or 0)
    if not missing or excluded == 0:
        return None
    held = f"; it still holds {zero_pages:,} all-zero pages" if zero_pages else ""
    msg = (
        f"{vm}: kdump dump_level {level} (makedumpfile -d {level}) left out {', '.join(missing)}"
        f" ({excluded:,} pages excluded{held}): sharing is underestimated"
    )
    return {
        "vm": vm,
        "source_path": meta.get("source_path"),
        "dump_level": int(level),
        "missing_classes": missing,
        "pages_excluded": excluded,
        "message": msg,
    }


__all__ = ["DUMP_LEVEL_CLASSES", "bias_of", "excluded_classes"]
