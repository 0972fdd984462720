"""Dump → page table: stream a dump through the page hash into a Parquet page table.

This is the one place that joins :mod:`pagecore.dumps` (which reads) and
:mod:`pagecore.pages.hashing` (which hashes), so each of those stays ignorant of the other.
"""

from __future__ import annotations

import os

import numpy as np

from pagecore._util import progress
from pagecore.dumps import DEFAULT_CHUNK_PAGES, open_dump
from pagecore.pages.hashing import ALGORITHM, PageKey, hash_pages
from pagecore.pages.provenance import source_fingerprint
from pagecore.pages.tables import PageTableWriter


def hash_dump(
    dump: str | os.PathLike,
    out: str | os.PathLike,
    vm: str,
    *,
    format: str = "auto",
    key: PageKey | None = None,
    threads: int | None = None,
    chunk_pages: int = DEFAULT_CHUNK_PAGES,
    skip_bad_pages: bool = False,
    show_progress: bool = True,
    compress: tuple[str, ...] = (),
) -> dict:
    """Hash every page of ``dump`` and write the page table ``out``; return its metadata.

    Memory is bounded by ``chunk_pages``: pages are hashed chunk by chunk from the reader's
    (memory-mapped, read-only) view and only hashes are kept. ``out`` appears only if the
    whole dump was read. ``compress`` adds ``csize_<alg>`` (bytes after compression, computed
    once per distinct content) and ``same_filled`` columns for ``pagecore compress``.
    """
    key = key or PageKey.default()
    if compress:  # imported only when asked for: its Numba kernels cost start-up (issue 18)
        from pagecore.pages.compress import ChunkSizer, page_table_columns, page_table_fields
    with open_dump(dump, format, chunk_pages=chunk_pages, skip_bad_pages=skip_bad_pages) as reader:
        hbuf = np.empty(reader.chunk_pages, np.uint64)
        zbuf = np.empty(reader.chunk_pages, np.bool_)
        bar = progress(reader.pages_hint, desc=f"hash {vm}") if show_progress else None
        sizer = ChunkSizer(compress, threads) if compress else None
        fields = page_table_fields(compress) if compress else ()
        with PageTableWriter(out, vm, inputs=[dump], extra_fields=fields) as writer:
            for chunk in reader:
                k = len(chunk)
                h, z = hash_pages(chunk.pages, key, threads=threads, out=(hbuf[:k], zbuf[:k]))
                extra = page_table_columns(sizer, chunk.pages, h, z) if sizer is not None else None
                writer.write(chunk.gpfn, h, z, extra=extra)
                if bar is not None:
                    bar.update(k)
            meta = reader.metadata()
            meta.update(source_fingerprint(dump, key))
            meta.update(
                hash_algorithm=ALGORITHM,
                hash_key_id=key.key_id,
                verified=False,
                pages=writer.rows,
            )
            if sizer is not None:
                meta["compress_algorithms"] = list(sizer.algorithms)
                sizer.close()
            writer.metadata.update(meta)
        if bar is not None:
            bar.close()
    return {"vm": vm, **meta}
