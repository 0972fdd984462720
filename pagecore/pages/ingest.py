"""Dump → page table: stream a dump through the page hash into a Parquet page table.

This is the one place that joins :mod:`pagecore.dumps` (which reads) and
:mod:`pagecore.pages.hashing` (which hashes), so each of those stays ignorant of the other.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from pagecore._util import progress
from pagecore.dumps import DEFAULT_CHUNK_PAGES, open_dump
from pagecore.errors import InputError
from pagecore.pages.hashing import (
    ALGORITHM,
    PageKey,
    can_hash_files,
    hash_file_start,
    hash_pages,
    hash_pages_start,
    rows_hasher,
)
from pagecore.pages.names import check_vm_name
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

    Memory is bounded by ``chunk_pages``: pages are hashed chunk by chunk (read from the file
    into the hashing threads' buffers where they lie one after another in it, else from the
    reader's read-only view) and only hashes are kept. ``out`` appears only if the
    whole dump was read. ``compress`` adds ``csize_<alg>`` (bytes after compression, computed
    once per distinct content) and ``same_filled`` columns for ``pagecore compress``.

    ``vm`` is the VM name stored in every row: any non-blank text (``pagecore hash --vm`` takes
    the same), else :class:`~pagecore.errors.ConfigError` (a ``ValueError``) before the dump is read.
    """
    check_vm_name(vm)
    key = key or PageKey.default()
    # an algorithm named twice (`--compress lz4 --compress lz4`) wrote two csize_lz4 columns: a
    # table pandas and pyarrow then refuse to read ("Multiple matches for FieldRef")
    compress = tuple(dict.fromkeys(compress))
    if compress:  # imported only when asked for: its Numba kernels cost start-up (issue 18)
        from pagecore.pages.compress import ChunkSizer, page_table_columns, page_table_fields
    # the reader's decoding threads too: kdump decoded on every CPU whatever --threads said (audit C)
    with open_dump(dump, format, chunk_pages=chunk_pages, skip_bad_pages=skip_bad_pages, threads=threads) as reader:
        bar = progress(reader.pages_hint, desc=f"hash {vm}") if show_progress else None
        sizer = ChunkSizer(compress, threads) if compress else None
        fields = page_table_fields(compress) if compress else ()
        # the reader's own inputs too: `hash g.vmss -o g.vmem` replaced the guest's memory file
        inputs = [dump, *reader.input_paths]
        stamps = _stamps(inputs)
        with PageTableWriter(out, vm, inputs=inputs, extra_fields=fields) as writer:
            for chunk, h, z in hashed_chunks(reader, key, threads, pages_used=sizer is not None):
                extra = page_table_columns(sizer, chunk.pages, h, z) if sizer is not None else None
                writer.write(chunk.gpfn, h, z, extra=extra)
                if bar is not None:
                    bar.update(len(chunk))
            _check_unchanged(inputs, stamps)
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


def _stamps(paths) -> list[tuple | None]:
    """Device, inode, size and modification time of each path (None where it cannot be read)."""
    out = []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            out.append(None)
        else:
            out.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
    return out


def _check_unchanged(paths, stamps) -> None:
    """Refuse a dump written or replaced while it was hashed: the readers refuse one whose size
    changed, but a write in place (a running guest's memory file, an image being rewritten) or a
    rename over it gave a table of pages from two states of the file, recording the size and
    sample digest of the last one, with exit 0."""
    for p, before, now in zip(paths, stamps, _stamps(paths), strict=True):
        if before != now:
            raise InputError(
                p, "the file was written or replaced while it was hashed (its modification time, inode or size "
                "changed): the table would mix pages of two states",
                expected="a dump nothing writes while pagecore reads it",
                hint="wait until its producer has finished (or copy it) and hash it again",
            )  # fmt: skip


class _HashAsDecoded:
    """A kdump chunk's decode hook (:class:`pagecore.dumps.kdump.DecodeHook`): hashes each range
    of pages on the thread that decoded it, right after, while the pages are in its cache."""

    #: rows :meth:`known_zero` and :meth:`elsewhere` name are never read in the chunk's buffer, so
    #: the reader need not fill them while it decodes (it fills them if the chunk's pages are read:
    #: ``hash_dump --compress`` does)
    lazy_rows = True

    def __init__(self, key: PageKey, pages: np.ndarray):
        k = pages.shape[0]
        self.key, self.pages = key, pages
        self.hashes = np.empty(k, np.uint64)
        self.zero = np.empty(k, np.bool_)
        self._mask = self._src = None
        self.decoded = rows_hasher(pages, key, self.hashes, self.zero)

    def known_zero(self, rows: np.ndarray) -> None:
        """Rows the reader fills with zeros (its shared zero page): their hash is the key's zero-page
        hash, not read (a third of a guest's pages, often more)."""
        if len(rows):
            self._mask = np.zeros(self.pages.shape[0], np.bool_)
            self._mask[rows] = True
            self.decoded = rows_hasher(self.pages, self.key, self.hashes, self.zero, self._mask, self._src)

    def elsewhere(self, rows: np.ndarray, src: np.ndarray, offsets: np.ndarray) -> None:
        """Rows whose pages the reader has not copied into the buffer (a kdump file's raw pages): each
        is hashed where it lies, ``src[offsets[row] : offsets[row] + page size]``."""
        if len(rows):
            off = np.full(self.pages.shape[0], -1, np.int64)
            off[rows] = offsets[rows]
            self._src = (src, off)
            self.decoded = rows_hasher(self.pages, self.key, self.hashes, self.zero, self._mask, self._src)

    def done(self, keep: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        # they refer to the page buffer (reused once nothing refers to it) and the mapped file
        del self.decoded, self.pages, self._src
        if keep is None:
            return self.hashes, self.zero
        return self.hashes[keep], self.zero[keep]


def hashed_chunks(
    reader, key: PageKey | None = None, threads: int | None = None, *, pages_used: bool = True
) -> Iterator[tuple]:
    """Yield ``(chunk, hashes, zero)`` for every chunk of ``reader``, hashing one chunk while the
    reader makes the next.

    Reading a chunk (mapping it, decoding it) and hashing it used to take turns, so the hashing
    threads waited while the reader worked and the other way round (issue 18: readers at
    0.25-0.64 x their decoders). Here chunk *i* is hashed on the hashing threads while the
    caller writes chunk *i - 1* and the reader makes chunk *i + 1*. ``hashes`` and ``zero`` are
    valid until the next chunk is requested (two buffers take turns); readers keep a chunk's
    pages valid until two more chunks have been requested (mapped readers release them then).

    Readers that decode pages (kdump: ``reader.decode_hook``) hash them instead on their own
    decoding threads, each range of pages right after decoding it: hashing a whole chunk after it
    was decoded read its 64 MiB back from memory (issue 18). Pages a Python codec decoded again
    are hashed again, pages dropped by ``skip_bad_pages`` are dropped from the hashes, so the
    hashes are those of :func:`~pagecore.pages.hashing.hash_pages` on ``chunk.pages``.

    ``pages_used=False`` says the caller will not read ``chunk.pages`` (``pagecore hash``
    without ``--compress``): chunks whose pages lie one after another in the reader's file
    (``chunk.file_at``: raw, ELF, LiME, .vmem) are then not mapped first but read by the hashing
    threads into buffers of their own (:func:`~pagecore.pages.hashing.hash_file_start`),
    1.15-1.3 x faster from the page cache in one process (issue 18; the whole ``pagecore hash``
    command, bound by 2 cores, did not gain on the benchmark's file); ``chunk.pages`` stays valid
    either way. A file that shrinks meanwhile is refused as the mapped path refuses it.
    """
    key = key or PageKey.default()
    if hasattr(reader, "decode_hook") and reader.decode_hook is None:
        yield from _hashed_as_decoded(reader, key, threads)
        return
    from_file = not pages_used and can_hash_files()
    if from_file and hasattr(reader, "populate_on_read"):
        reader.populate_on_read(False)  # nothing maps the pages first: the threads read them
    bufs = [(np.empty(reader.chunk_pages, np.uint64), np.empty(reader.chunk_pages, np.bool_)) for _ in range(2)]
    pending = None
    try:
        for i, chunk in enumerate(reader):
            k = len(chunk)
            hb, zb = bufs[i % 2]
            if from_file and chunk.file_at is not None:
                fd, offset = chunk.file_at
                started = (chunk, hash_file_start(fd, offset, k, key, threads, out=(hb[:k], zb[:k])))
            else:
                started = (chunk, hash_pages_start(chunk.pages, key, threads, out=(hb[:k], zb[:k])))
            if pending is not None:
                done, pending = pending, None
                yield (done[0], *_collect(reader, done[1]))
            pending = started
        if pending is not None:
            done, pending = pending, None
            yield (done[0], *_collect(reader, done[1]))
    finally:
        if pending is not None:  # an error or an abandoned loop: let the threads finish with the pages
            try:
                pending[1]()
            except EOFError:
                pass  # the error that ended the loop says more


def _collect(reader, wait) -> tuple:
    """Wait for a chunk's hashes; a file read short (it shrank under us) is the reader's error."""
    try:
        return wait()
    except EOFError as e:
        check = getattr(reader, "_check_size", None)
        if check is not None:
            check()  # raises InputError: the file shrank
        raise InputError(
            getattr(reader, "path", "the dump"),
            f"the file ended early while being read: {e}",
            expected="an input that nothing writes while pagecore reads it",
            hint="wait until the producer has finished (or copy the dump) and run again",
        ) from e


def _hashed_as_decoded(reader, key: PageKey, threads: int | None) -> Iterator[tuple]:
    """:func:`hashed_chunks` for a reader with a ``decode_hook``: the reader hashes as it decodes."""
    reader.decode_hook = lambda pages: _HashAsDecoded(key, pages)
    try:
        for chunk in reader:
            hz = chunk.decoded
            if not (isinstance(hz, tuple) and len(hz) == 2 and len(hz[0]) == len(chunk)):
                hz = hash_pages(chunk.pages, key, threads)  # a chunk the hook did not see
            yield chunk, *hz
    finally:
        reader.decode_hook = None
