"""The page stage: every 4 KiB page of a dump → one row of a page table.

Owns: the Numba page-hash kernels (:mod:`.hashing`), dump → page table (:mod:`.ingest`),
hash-then-compare verification against the dumps (:mod:`.verify`), and the Arrow schemas,
readers and atomic writers of page tables (:mod:`.tables`). Must not: know any policy
(sharing vocabularies, memory managers) or draw.
"""

from pagecore.pages.hashing import ALGORITHM, PageKey, hash_pages
from pagecore.pages.ingest import hash_dump
from pagecore.pages.tables import (
    PAGE_TABLE_SCHEMA,
    PageTableWriter,
    page_table_frame,
    page_table_metadata,
    read_page_table,
    read_page_tables,
    write_page_table,
)
from pagecore.pages.verify import Verification, dumps_available, verify_tables

__all__ = [
    "ALGORITHM",
    "PAGE_TABLE_SCHEMA",
    "PageKey",
    "PageTableWriter",
    "Verification",
    "dumps_available",
    "hash_dump",
    "hash_pages",
    "page_table_frame",
    "page_table_metadata",
    "read_page_table",
    "read_page_tables",
    "verify_tables",
    "write_page_table",
]
