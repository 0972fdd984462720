"""Which file a page table was made from, and whether that file is still the same.

``pagecore hash`` records the dump's absolute path, size and a digest of a
sample of its pages (:func:`source_fingerprint`); verification finds the dump again
(:func:`locate_dump`: the recorded path, else the same name in ``dump_dir``) and refuses it
unless size and digest match, so a moved, replaced or edited dump is reported as such ("dump
changed since hashing") instead of as hash collisions. The digest is BLAKE2b keyed with the
table's page-hash key when the table is keyed, so it confirms no page content to anyone without
the key.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from pagecore.errors import InputError

#: Pages sampled for the digest (evenly spaced, first and last included).
SAMPLE_PAGES = 64
SAMPLE_BYTES = 4096


#: how to go on without the dumps, in every command that verifies (`host` had advice for `share`)
VERIFY_OFF = "turn byte verification off (share --no-verify, host --verify no)"


class DumpChanged(InputError):
    """The dump behind a page table is missing or no longer the one that was hashed."""

    def __init__(self, path, problem, hint=f"re-run `pagecore hash` on it, or {VERIFY_OFF}"):
        super().__init__(path, f"dump changed since hashing: {problem}", hint=hint)


def _digest_key(key) -> bytes:
    if key is None or not getattr(key, "keyed", False):
        return b""
    return int(key.k0).to_bytes(8, "little") + int(key.k1).to_bytes(8, "little")


def sample_digest(path: str | os.PathLike, size: int, key=None) -> str:
    """BLAKE2b-128 of the file size and :data:`SAMPLE_PAGES` evenly spaced 4 KiB samples."""
    h = hashlib.blake2b(digest_size=16, key=_digest_key(key), person=b"pagecore-dump-v1")
    h.update(size.to_bytes(8, "little"))
    last = max(0, size - SAMPLE_BYTES)
    n = SAMPLE_PAGES if size > SAMPLE_BYTES else 1
    with open(path, "rb") as fh:
        for i in range(n):
            off = (last * i // (n - 1)) if n > 1 else 0
            fh.seek(off)
            h.update(fh.read(SAMPLE_BYTES))
    return h.hexdigest()


def source_fingerprint(path: str | os.PathLike, key=None) -> dict:
    """What a page table records about its dump: absolute path, size, sample digest (no mtime: same bytes)."""
    p = Path(path)
    st = p.stat()
    return {
        "source_path": os.path.abspath(p),
        "source_size": st.st_size,
        "source_digest": sample_digest(p, st.st_size, key),
    }


def locate_dump(table: str | os.PathLike, meta: dict, dump_dir: str | os.PathLike | None = None, key=None) -> Path:
    """The dump behind ``table``, checked to be the file that was hashed.

    Looks at the recorded ``source_path``, else at the same file name in ``dump_dir``. The
    size must match and, when the table records a digest, so must the sample digest (keyed
    tables need their ``key`` for that; without it, or with another key, the digest check is
    skipped and verification's re-hashing of every page read still catches a change; a key
    given for an unkeyed table is not used).

    Raises
    ------
    DumpChanged
        Missing, resized or re-written dump; also a table that records no dump or no size.
    """
    if "source_path" not in meta:
        raise DumpChanged(table, "the page table records no source dump", hint=VERIFY_OFF)
    if meta.get("source_size") is None:
        raise DumpChanged(table, "the page table records no dump size (made by an old pagecore?)",
                          hint=f"re-run `pagecore hash`, or {VERIFY_OFF}")  # fmt: skip
    recorded = Path(meta["source_path"])
    candidates = [recorded] if recorded.is_absolute() else []
    if dump_dir is not None:
        candidates.append(Path(dump_dir) / recorded.name)
    src = next((c for c in candidates if c.is_file()), None)
    if src is None:
        where = " or ".join(str(c) for c in candidates) or f"{recorded} (a relative path: use --dump-dir)"
        hint = f"restore it, pass --dump-dir DIR where it now is, or {VERIFY_OFF}"
        raise DumpChanged(table, f"source dump not found at {where}", hint=hint)
    size = src.stat().st_size
    if size != meta["source_size"]:
        raise DumpChanged(src, f"{size:,} bytes now, {meta['source_size']:,} when {table} was made")
    digest = meta.get("source_digest")
    kid = meta.get("hash_key_id", "none")
    # the digest is keyed with the table's own key: another key (also one given for an unkeyed
    # table) gave another digest, reported as "dump changed" for an unchanged dump; a wrong key
    # is the caller's to refuse (verify.unavailable_reason, verify_tables)
    if kid == "none":
        key = None
    elif key is None or key.key_id != kid:
        digest = None
    if digest and sample_digest(src, size, key) != digest:
        raise DumpChanged(src, f"its content differs from when {table} was made (sample digest)")
    return src
