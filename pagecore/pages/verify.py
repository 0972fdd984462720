"""Hash, then verify (paper §4.2–4.3): byte-compare pages whose hashes are equal.

ESX shares two pages only after a full comparison confirms that their contents are equal; a
page whose hash matches a different content (a *false match*) becomes ineligible for
sharing. pagecore does the same after hashing: it re-reads from the dumps only the pages whose
hash occurs more than once and compares each with the first page of that hash (its
representative). Memory is bounded: representatives are held for at most
``budget_bytes`` worth of hashes at a time, and hash ranges that do not fit are verified in
further passes.

This module joins :mod:`pagecore.dumps` (reading) with page tables; it never writes page bytes
anywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numba import njit

from pagecore import PAGE_SIZE
from pagecore._jit import SERIAL
from pagecore._util import progress
from pagecore.dumps import open_dump
from pagecore.errors import InputError
from pagecore.pages.tables import page_table_metadata, read_page_table

WORDS = PAGE_SIZE // 8


@njit(**SERIAL)
def _verify_chunk(pages, hashes, rows, cand, lo, hi, rep, rep_set, inelig, stats):
    """Compare each page whose hash is a candidate in [lo, hi) with its representative.

    ``pages`` uint64[k, 512]; ``hashes``/``rows`` the page-table hash and global row of each
    page; ``cand`` sorted candidate hashes; ``rep`` uint64[hi-lo, 512] representatives,
    ``rep_set`` bool[hi-lo]; ``inelig`` bool[n_rows] output; ``stats`` int64[3]: pages
    compared, words compared, false matches.
    """
    for p in range(pages.shape[0]):
        h = hashes[p]
        i = np.searchsorted(cand, h)
        if i < lo or i >= hi or cand[i] != h:
            continue
        r = i - lo
        if not rep_set[r]:
            for w in range(WORDS):
                rep[r, w] = pages[p, w]
            rep_set[r] = True
            continue
        stats[0] += 1
        same = True
        for w in range(WORDS):
            stats[1] += 1
            if pages[p, w] != rep[r, w]:
                same = False
                break
        if not same:
            inelig[rows[p]] = True
            stats[2] += 1


@dataclass
class Verification:
    """Result of verifying a set of page tables against their dumps."""

    ineligible: np.ndarray  # bool[n] over the concatenated page tables
    candidates: int  # distinct hashes with >= 2 pages
    pages_compared: int
    bytes_compared: int
    false_matches: int
    passes: int

    def as_dict(self) -> dict:
        return {
            "verified": True,
            "candidate_hashes": self.candidates,
            "pages_compared": self.pages_compared,
            "bytes_compared": self.bytes_compared,
            "false_matches": self.false_matches,
            "ineligible_pages": int(self.ineligible.sum()),
            "passes": self.passes,
        }


def dump_of(table_path: str | os.PathLike) -> tuple[Path, str]:
    """The source dump and format recorded in a page table's metadata."""
    meta = page_table_metadata(table_path)
    if "source_path" not in meta:
        raise InputError(table_path, "page table records no source dump", hint="pass the dump explicitly")
    src = Path(meta["source_path"])
    if not src.is_file():
        raise InputError(
            src, "source dump of page table is gone", hint=f"restore it, or share {table_path} with --no-verify"
        )
    if src.stat().st_size != meta.get("source_size"):
        raise InputError(
            src,
            f"dump size changed since {table_path} was made",
            expected=f"{meta.get('source_size'):,} bytes",
            hint="re-run `pagecore hash` on it",
        )
    return src, meta.get("format", "auto")


def dumps_available(table_paths) -> bool:
    """True if every page table's source dump still exists with the recorded size."""
    for t in table_paths:
        meta = page_table_metadata(t)
        src = meta.get("source_path")
        if not src or not Path(src).is_file() or Path(src).stat().st_size != meta.get("source_size"):
            return False
    return True


def verify_tables(
    table_paths,
    dumps: list[tuple[str | os.PathLike, str]] | None = None,
    *,
    budget_bytes: int = 1 << 30,
    chunk_pages: int = 4096,
    show_progress: bool = False,
) -> Verification:
    """Byte-compare every page whose hash occurs more than once across ``table_paths``.

    Parameters
    ----------
    table_paths : list of path-like
        Page tables, in the order their rows are concatenated (the order of
        :func:`pagecore.pages.tables.read_page_tables`).
    dumps : list of (path, format), optional
        The dump behind each table; default: the ``source_path``/``format`` in each table's
        metadata.
    budget_bytes : int
        Memory for representative pages; more candidates than fit are verified in passes.

    Returns
    -------
    Verification
        ``ineligible[i]`` is True for row ``i`` (of the concatenated tables) whose content
        differs from the first page with the same hash.
    """
    table_paths = [Path(p) for p in table_paths]
    if dumps is None:
        dumps = [dump_of(p) for p in table_paths]
    if len(dumps) != len(table_paths):
        raise ValueError("need one dump per page table")
    cols = [read_page_table(p, ["gpfn", "hash"]) for p in table_paths]
    offsets = np.cumsum([0] + [c.num_rows for c in cols])
    all_hash = np.concatenate([c["hash"].to_numpy() for c in cols]) if cols else np.zeros(0, np.uint64)
    uniq, counts = np.unique(all_hash, return_counts=True)
    cand = np.ascontiguousarray(uniq[counts > 1])
    inelig = np.zeros(all_hash.shape[0], np.bool_)
    stats = np.zeros(3, np.int64)
    per_pass = max(1, int(budget_bytes // PAGE_SIZE))
    passes = 0
    for lo in range(0, len(cand), per_pass):
        hi = min(len(cand), lo + per_pass)
        passes += 1
        rep = np.empty((hi - lo, WORDS), np.uint64)
        rep_set = np.zeros(hi - lo, np.bool_)
        for t, (tbl, (dump, fmt)) in enumerate(zip(cols, dumps, strict=True)):
            gpfn = tbl["gpfn"].to_numpy()
            hashes = tbl["hash"].to_numpy()
            order = np.argsort(gpfn, kind="stable")
            gsorted = gpfn[order]
            with open_dump(dump, fmt, chunk_pages=chunk_pages) as reader:
                bar = progress(reader.pages_hint, desc=f"verify {Path(dump).name}") if show_progress else None
                for chunk in reader:
                    pos = np.searchsorted(gsorted, chunk.gpfn)
                    pos_c = np.minimum(pos, len(gsorted) - 1)
                    if len(gsorted) == 0 or np.any(gsorted[pos_c] != chunk.gpfn):
                        bad = chunk.gpfn[(len(gsorted) == 0) | (gsorted[pos_c] != chunk.gpfn)][0]
                        raise InputError(
                            dump,
                            f"guest frame {int(bad)} is not in page table {table_paths[t]}",
                            expected="the dump the page table was made from",
                            hint="re-run `pagecore hash` on this dump",
                        )
                    rows = order[pos_c]
                    _verify_chunk(
                        chunk.pages.view(np.uint64),
                        np.ascontiguousarray(hashes[rows]),
                        rows + offsets[t],
                        cand,
                        lo,
                        hi,
                        rep,
                        rep_set,
                        inelig,
                        stats,
                    )
                    if bar is not None:
                        bar.update(len(chunk))
                if bar is not None:
                    bar.close()
    return Verification(
        ineligible=inelig,
        candidates=len(cand),
        pages_compared=int(stats[0]),
        bytes_compared=int(stats[1]) * 8,
        false_matches=int(stats[2]),
        passes=passes,
    )
