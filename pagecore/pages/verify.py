"""Hash, then verify (paper §4.2–4.3): byte-compare pages whose hashes are equal.

ESX shares two pages only after a full comparison confirms that their contents are equal; a
page whose hash matches a different content (a *false match*) does not share with it. pagecore
does the same after hashing: it re-reads from the dumps only the pages whose hash occurs more
than once and groups them **by bytes** within each hash: the first content of a hash is
variant 0, a different content with the same hash variant 1, and so on, so a hash that covers
two true contents still shares each of them with its own copies. False matches are counted in
pages (pages whose content is not their hash's first content) and in pairs (pairs of distinct
contents under one hash). Memory is bounded: representatives are held for at most
``budget_bytes`` worth of hashes at a time, and hash ranges that do not fit are verified in
further passes; a pass that runs out of room for extra variants marks those pages unresolved
(ineligible) and says so.

**Every compared byte comes from the file that was hashed.** Before reading, the dump's size
and a digest of a sample of its pages are checked against what ``pagecore hash`` recorded
(:mod:`pagecore.pages.provenance`); while reading, every page read is hashed again and must give
the hash in the table. A dump that is missing, moved (``dump_dir`` finds moved dumps by name) or
changed is reported as such ("dump changed since hashing"), never as false matches. Keyed
tables need their key to be verified.

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
from pagecore.pages.hashing import PageKey, hash_pages
from pagecore.pages.provenance import DumpChanged, locate_dump, sample_digest
from pagecore.pages.tables import hashed_skipping, page_table_metadata, read_page_table

WORDS = PAGE_SIZE // 8


@njit(**SERIAL)
def _verify_chunk(pages, hashes, rows, cand, lo, hi, first, nxt, rep, used, nvar, variant, stats):
    """Group the pages whose hash is a candidate in [lo, hi) by their bytes.

    ``pages`` uint64[k, 512]; ``hashes``/``rows`` the page-table hash and global row of each
    page; ``cand`` sorted candidate hashes. Representatives: ``rep`` uint64[slots, 512],
    ``first[r]`` the first slot of candidate ``lo + r`` (-1 none), ``nxt[s]`` the next slot of
    the same candidate, ``used[0]`` slots in use, ``nvar[r]`` distinct contents found so far.
    Output ``variant[row]``: 0 for the hash's first content, v > 0 for its v-th other content,
    -1 when no slot was left for a new content (unresolved). ``stats`` int64[4]: pages
    compared, words compared, pages of another content (false-match pages), unresolved pages.
    """
    for p in range(pages.shape[0]):
        h = hashes[p]
        i = np.searchsorted(cand, h)
        if i < lo or i >= hi or cand[i] != h:
            continue
        r = i - lo
        s = first[r]
        if s >= 0:
            stats[0] += 1
        v = 0
        prev = -1
        found = -1
        while s >= 0:
            same = True
            for w in range(WORDS):
                stats[1] += 1
                if pages[p, w] != rep[s, w]:
                    same = False
                    break
            if same:
                found = v
                break
            prev = s
            s = nxt[s]
            v += 1
        if found < 0:
            if used[0] >= rep.shape[0]:
                variant[rows[p]] = -1
                stats[3] += 1
                continue
            s = used[0]
            used[0] += 1
            for w in range(WORDS):
                rep[s, w] = pages[p, w]
            nxt[s] = -1
            if prev < 0:
                first[r] = s
            else:
                nxt[prev] = s
            nvar[r] += 1
            found = v
        variant[rows[p]] = found
        if found > 0:
            stats[2] += 1


@dataclass
class Verification:
    """Result of verifying a set of page tables against their dumps."""

    variant: np.ndarray  # int32[n] over the concatenated page tables (see _verify_chunk)
    candidates: int  # distinct hashes with >= 2 pages
    pages_compared: int
    bytes_compared: int
    false_match_pages: int  # pages whose content is not the first content of their hash
    false_match_pairs: int  # pairs of distinct contents that share a hash
    unresolved_pages: int  # pages left ineligible: no room for another content of their hash
    pages_read: int  # pages read from the dumps, summed over all passes (each pass reads every dump)
    passes: int

    @property
    def ineligible(self) -> np.ndarray:
        """Rows that may not share: unresolved ones."""
        return self.variant < 0

    @property
    def false_matches(self) -> int:
        return self.false_match_pages

    def content_keys(self, hashes: np.ndarray) -> np.ndarray:
        """Hashes made distinct per true content: variant v > 0 of hash h gets a remixed key.

        A remixed key that equals some other hash in ``hashes`` (probability ~n²/2⁶⁴) is
        reported by making its pages unresolved instead (:attr:`ineligible`).
        """
        keys = np.array(hashes, np.uint64, copy=True)
        m = self.variant > 0
        if m.any():
            x = keys[m] ^ (self.variant[m].astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))
            x ^= x >> np.uint64(31)
            x *= np.uint64(0xBF58476D1CE4E5B9)
            x ^= x >> np.uint64(29)
            clash = np.isin(x, hashes)
            keys[m] = x
            if clash.any():
                idx = np.flatnonzero(m)[clash]
                self.variant[idx] = -1
                self.unresolved_pages += int(clash.sum())
        return keys

    def as_dict(self) -> dict:
        return {
            "verified": True,
            "candidate_hashes": self.candidates,
            "pages_read": self.pages_read,
            "pages_compared": self.pages_compared,
            "bytes_compared": self.bytes_compared,
            "false_match_pages": self.false_match_pages,
            "false_match_pairs": self.false_match_pairs,
            "unresolved_pages": self.unresolved_pages,
            "ineligible_pages": int((self.variant < 0).sum()),
            "passes": self.passes,
        }


def dump_of(table_path: str | os.PathLike, dump_dir: str | os.PathLike | None = None, key=None) -> tuple[Path, str]:
    """The source dump and format recorded in a page table's metadata, checked unchanged.

    Raises :class:`~pagecore.pages.provenance.DumpChanged` when it is missing or changed.
    """
    meta = page_table_metadata(table_path)
    return locate_dump(table_path, meta, dump_dir, key), meta.get("format", "auto")


def dumps_available(table_paths, dump_dir: str | os.PathLike | None = None) -> bool:
    """True if every page table's source dump is there, unchanged (size and sample digest)."""
    return unavailable_reason(table_paths, dump_dir) is None


def key_mismatch(table, kid: str, key: PageKey | None) -> str | None:
    """Why ``key`` cannot verify a table hashed with key id ``kid`` (one line), or None.

    A key given for an unkeyed table was reported as "dump changed since hashing" (the sample
    digest taken with it), and a wrong key for a keyed table as "pass its key" although one was
    passed."""
    given = "none" if key is None else key.key_id
    if given == kid:
        return None
    if kid == "none":
        return f"{table}: unkeyed table, but a key ({given}) was given: verify it without --key-env/--key-file"
    if given == "none":
        return f"{table}: keyed table (key {kid}); pass its key (--key-env/--key-file) to verify"
    return f"{table}: keyed table (key {kid}); the key given ({given}) is not the key it was hashed with"


def unavailable_reason(table_paths, dump_dir: str | os.PathLike | None = None, key: PageKey | None = None):
    """Why the tables cannot be verified (one line), or ``None`` if they can."""
    for t in table_paths:
        meta = page_table_metadata(t)
        if meta.get("hash_only"):
            return f"{t}: hash-only table (no dump behind it)"
        if meta.get("format") == "live":
            return f"{t}: a live read of a running guest (its pages cannot be read again to compare bytes)"
        why = key_mismatch(t, meta.get("hash_key_id", "none"), key)
        if why is not None:
            return why
        try:
            locate_dump(t, meta, dump_dir, key)
        except InputError as exc:
            return str(exc)
    return None


class HashMismatch(DumpChanged):
    """A page hashes differently from its table row while the dump still matches the size and
    sample digest the table records: the table or the dump is damaged, or the dump changed
    between the sampled pages (a :class:`DumpChanged`, so its callers handle it alike)."""

    def __init__(self, path, problem, hint):
        InputError.__init__(self, path, problem, hint=hint)


def _refuse_page_mismatch(dump, table: Path, meta: dict, key: PageKey, gpfn: int) -> None:
    """A page of ``dump`` hashes differently from its row in ``table``. Said to be a changed dump
    only when the dump's size or sample digest differs from what the table records: a flipped
    byte in the table's hash column was reported as "dump changed" for an intact dump."""
    problem = f"guest frame {gpfn} no longer has the content hashed into {table}"
    try:
        size = os.stat(dump).st_size
        digest = meta.get("source_digest")
        kid = meta.get("hash_key_id", "none")
        same = (
            meta.get("source_size") == size
            and bool(digest)
            and (kid == "none" or key.key_id == kid)
            and sample_digest(dump, size, None if kid == "none" else key) == digest
        )
    except OSError:
        same = False
    if not same:
        raise DumpChanged(dump, problem)
    raise HashMismatch(
        table, f"guest frame {gpfn}'s hash differs from its page in {dump}, though the dump's size and sample "
        "digest still match what the table records: the table or the dump may be damaged (or the dump changed "
        "between the sampled pages)",
        hint="check the dump against a copy or checksum you trust, then re-run `pagecore hash` on it",
    )  # fmt: skip


def verify_tables(
    table_paths,
    dumps: list[tuple[str | os.PathLike, str]] | None = None,
    *,
    key: PageKey | None = None,
    dump_dir: str | os.PathLike | None = None,
    budget_bytes: int = 1 << 30,
    chunk_pages: int = 4096,
    show_progress: bool = False,
    rehash=None,
) -> Verification:
    """Byte-compare every page whose hash occurs more than once across ``table_paths``.

    Parameters
    ----------
    table_paths : list of path-like
        Page tables, in the order their rows are concatenated (the order of
        :func:`pagecore.pages.tables.read_page_tables`).
    dumps : list of (path, format), optional
        The dump behind each table; default: the recorded ``source_path``/``format`` of each
        table (or the same file name in ``dump_dir``), checked unchanged.
    key : PageKey, optional
        The key the tables were hashed with (default: the unkeyed default); every page read is
        hashed again with it and must match its table row.
    budget_bytes : int
        Memory for representative pages; more candidates than fit are verified in passes.
    rehash : callable, optional
        ``pages uint8[k, 4096] -> uint64[k]``: the hash the tables were made with, when it is not
        pcx64 under ``key`` (tests of deliberately weak hashes use this).

    Returns
    -------
    Verification
        ``variant[i]`` for row ``i`` of the concatenated tables: 0 for the first content of its
        hash, v > 0 for another content with the same hash, -1 if unresolved.

    Raises
    ------
    DumpChanged
        A dump is missing or differs from the one hashed (size, sample digest, or a page that
        hashes differently now).
    """
    table_paths = [Path(p) for p in table_paths]
    metas = [page_table_metadata(p) for p in table_paths]
    key = key or PageKey.default()
    for p, m in zip(table_paths, metas, strict=True):
        kid = m.get("hash_key_id", "none")
        if kid != key.key_id:
            raise InputError(
                p, f"table hashed with key {kid}, verification given key {key.key_id}",
                hint="pass the key the table was hashed with (--key-env/--key-file)",
            )  # fmt: skip
    if dumps is None:
        dumps = [dump_of(p, dump_dir, key) for p in table_paths]
    if len(dumps) != len(table_paths):
        raise ValueError("need one dump per page table")
    cols = [read_page_table(p, ["gpfn", "hash"]) for p in table_paths]
    offsets = np.cumsum([0] + [c.num_rows for c in cols])
    all_hash = np.concatenate([c["hash"].to_numpy() for c in cols]) if cols else np.zeros(0, np.uint64)
    uniq, counts = np.unique(all_hash, return_counts=True)
    cand = np.ascontiguousarray(uniq[counts > 1])
    variant = np.zeros(all_hash.shape[0], np.int32)
    stats = np.zeros(4, np.int64)
    per_pass = max(1, int(budget_bytes // PAGE_SIZE))
    passes = pairs = pages_read = 0
    for lo in range(0, len(cand), per_pass):
        hi = min(len(cand), lo + per_pass)
        passes += 1
        # room for one other content per candidate hash: np.empty only reserves address space, so
        # the pages cost memory only when collisions actually fill them
        slots = 2 * (hi - lo) + 16
        rep = np.empty((slots, WORDS), np.uint64)
        first = np.full(hi - lo, -1, np.int64)
        nxt = np.full(slots, -1, np.int64)
        used = np.zeros(1, np.int64)
        nvar = np.zeros(hi - lo, np.int64)
        for t, (tbl, (dump, fmt)) in enumerate(zip(cols, dumps, strict=True)):
            gpfn = tbl["gpfn"].to_numpy()
            hashes = tbl["hash"].to_numpy()
            order = np.argsort(gpfn, kind="stable")
            gsorted = gpfn[order]
            skip = hashed_skipping(metas[t])  # a table hashed from a damaged dump: read it as it was hashed
            with open_dump(dump, fmt, chunk_pages=chunk_pages, skip_bad_pages=skip) as reader:
                bar = progress(reader.pages_hint, desc=f"verify {Path(dump).name}") if show_progress else None
                for chunk in reader:
                    pos = np.searchsorted(gsorted, chunk.gpfn)
                    pos_c = np.minimum(pos, len(gsorted) - 1)
                    if len(gsorted) == 0 or np.any(gsorted[pos_c] != chunk.gpfn):
                        bad = chunk.gpfn[(len(gsorted) == 0) | (gsorted[pos_c] != chunk.gpfn)][0]
                        raise DumpChanged(dump, f"guest frame {int(bad)} is not in page table {table_paths[t]}")
                    rows = order[pos_c]
                    want = np.ascontiguousarray(hashes[rows])
                    got = hash_pages(chunk.pages, key)[0] if rehash is None else rehash(chunk.pages)
                    if not np.array_equal(got, want):
                        bad = int(chunk.gpfn[np.flatnonzero(got != want)[0]])
                        _refuse_page_mismatch(dump, table_paths[t], metas[t], key, bad)
                    pages_read += len(chunk)
                    _verify_chunk(
                        chunk.pages.view(np.uint64), want, rows + offsets[t], cand, lo, hi,
                        first, nxt, rep, used, nvar, variant, stats,
                    )  # fmt: skip
                    if bar is not None:
                        bar.update(len(chunk))
                if bar is not None:
                    bar.close()
        pairs += int((nvar * (nvar - 1) // 2).sum())
    return Verification(
        variant=variant,
        candidates=len(cand),
        pages_compared=int(stats[0]),
        bytes_compared=int(stats[1]) * 8,
        false_match_pages=int(stats[2]),
        false_match_pairs=pairs,
        unresolved_pages=int(stats[3]),
        pages_read=pages_read,
        passes=passes,
    )
