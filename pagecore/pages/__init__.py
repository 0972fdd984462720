"""The page stage: every 4 KiB page of a dump → one row of a page table.

Owns: the Numba page-hash kernels (:mod:`.hashing`), dump → page table (:mod:`.ingest`),
hash-then-compare verification against the dumps (:mod:`.verify`), and the Arrow schemas,
readers and atomic writers of page tables (:mod:`.tables`). Must not: know any policy
(sharing vocabularies, memory managers) or draw.

The names below are imported on first use, so ``pagecore hash`` (which needs ``ingest``) does
not import ``verify``'s Numba kernels at start-up (issue 18).
"""

from __future__ import annotations

from pagecore import lazy_exports

#: exported name -> submodule that defines it
_EXPORTS = {
    "ALGORITHM": "hashing",
    "PageKey": "hashing",
    "hash_pages": "hashing",
    "hash_dump": "ingest",
    "PAGE_TABLE_SCHEMA": "tables",
    "PageTableWriter": "tables",
    "page_table_frame": "tables",
    "page_table_metadata": "tables",
    "read_page_table": "tables",
    "read_page_tables": "tables",
    "write_page_table": "tables",
    "Verification": "verify",
    "dumps_available": "verify",
    "verify_tables": "verify",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports("pagecore.pages", _EXPORTS, globals())
