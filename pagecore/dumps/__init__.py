"""Read guest memory dumps as streams of page chunks.

One entry point, :func:`open_dump`, detects the format from magic bytes (or takes it from the
caller) and returns a :class:`~pagecore.dumps.base.DumpReader`. Iterating the reader yields
:class:`~pagecore.dumps.base.PageChunk` objects — guest frame numbers and a zero-copy,
read-only ``uint8[k, 4096]`` view of their pages where the format allows — so memory use is
bounded by the chunk size, never by the dump. Inputs are opened read-only.

Formats are registered in :data:`READERS`, one module each (layouts in their docstrings):

==================  ===============================================  ==========================
name                producers                                        pages
==================  ===============================================  ==========================
``raw``             QEMU ``pmemsave``, a lone ``.vmem``              zero-copy mmap views
``elf``             QEMU ``dump-guest-memory`` elf, ``virsh dump``   zero-copy mmap views
``lime``            LiME (``format=lime``)                           zero-copy mmap views
``kdump``           makedumpfile, QEMU ``kdump-raw-*``               decoded in a thread pool
``kdump-flat``      ``makedumpfile -F``, QEMU ``kdump-zlib/lzo/…``   decoded, read in place
``qemu-migration``  QEMU ``migrate "exec:cat > FILE"`` (QEVM)        RAM sections, streamed
``libvirt-save``    ``virsh save`` / managed save (+ gzip/bz2/xz)    the QEMU stream inside
``vmware``          ``.vmem`` placed by its ``.vmss``/``.vmsn`` map  zero-copy mmap views
==================  ===============================================  ==========================

Every page of a dump ends up in the reader's ``stats``: read, skipped (unreadable, under
``skip_bad_pages``) or excluded (left out by the producer, e.g. kdump ``dump_level``).

Owns: format detection, one reader per format, header consistency checks, and the writers the
tests and the capture use to make dumps. Must not: hash, count, or plot; write to an input.
:meth:`DumpStats.damage` is one line for the user when pages were skipped or the dump says it
is incomplete (it is also in :meth:`DumpReader.metadata` as ``damage``); a dump of which no
page can be read is an error even under ``skip_bad_pages``.

Each format module says in its docstring what it checks and, in ``UNPROTECTED``, which bytes
no check can protect (page data without a checksum, and the like); ``tests/test_dumps_fuzz.py``
holds them to it.
"""

from __future__ import annotations

import os
from pathlib import Path

# Importing a format module registers its reader (see ``register``); add new formats here.
from pagecore.dumps import elf, flattened, kdump, libvirt_save, lime, qemu_migration, vmware  # noqa: F401 - register
from pagecore.dumps.base import (
    DEFAULT_CHUNK_PAGES,
    READERS,
    DumpReader,
    DumpStats,
    PageChunk,
    check_input_path,
    register,
)
from pagecore.dumps.raw import RawReader, foreign_magic
from pagecore.errors import InputError

SNIFF_BYTES = 4096


def _vmem_beside_checkpoint(path: Path) -> str | None:
    """``"vmware"`` for a ``.vmem`` with its VMware checkpoint (``.vmss``/``.vmsn``) beside it.

    Such a file has no header, so it looked raw, and its pages were read with file offsets as
    guest frame numbers: wrong for every page above the PCI hole, which the checkpoint's region
    map places (and gpfns are what large-page regions and live guests' views are built on). A
    checkpoint of that name that is not one (no VMware magic) is refused: it may be a damaged
    one, and only the user can say the ``.vmem`` is flat.

    A symbolic link to a ``.vmem`` is followed: the checkpoint is looked for beside the link, then
    beside the file it names (a link to one was read as raw, every frame above the hole wrong)."""
    from pagecore.dumps.vmware import VmwareReader, beside

    if path.suffix.lower() != ".vmem" and path.resolve().suffix.lower() != ".vmem":
        return None
    for meta in beside(path, (".vmss", ".vmsn")):
        with open(meta, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
        if VmwareReader.sniff(head, meta.stat().st_size):
            return VmwareReader.name
        raise InputError(
            path,
            f"{meta.name} beside it is not a VMware checkpoint (no .vmss/.vmsn magic), so where its pages lie in "
            "guest-physical memory is unknown",
            expected=VmwareReader.magic_description,
            hint=f"pass --format raw to read {path.name} as a flat image (file offsets as frame numbers), or copy "
            "the checkpoint again",
        )
    return None


def detect_format(path: str | os.PathLike) -> str:
    """Name of the format of ``path``, from its magic bytes.

    Readers with a magic number are tried first; a file that matches none of them and whose
    size is a whole number of pages is taken as a raw physical image (which has no header) —
    except a VMware ``.vmem`` with its checkpoint beside it, which is read through the
    checkpoint's region map (``vmware``).

    Raises
    ------
    InputError
        If no format fits; the message lists what was tried.
    """
    path = check_input_path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    tried = []
    for name, reader in READERS.items():
        if reader.magic_description is None:
            continue
        tried.append(f"{name} ({reader.magic_description})")
        if reader.sniff(head, size):
            return name
    foreign = foreign_magic(head)
    if foreign is not None:  # not a raw image, whatever its size
        raise InputError(
            path,
            f"the file starts with the magic bytes of {foreign}, not a memory dump",
            offset=0,
            expected="one of: " + "; ".join(tried),
            hint="decompress or convert it first (a raw image has no header); --format raw reads it as it is",
        )
    if RawReader.sniff(head, size):
        return _vmem_beside_checkpoint(path) or RawReader.name
    tried.append(f"raw (size a multiple of {RawReader.page_size} bytes; this file has {size:,})")
    raise InputError(
        path,
        "unrecognised memory dump format",
        offset=0,
        expected="one of: " + "; ".join(tried),
        hint="pass --format to force one, or convert the dump to a raw physical image",
    )


def open_dump(
    path: str | os.PathLike,
    format: str = "auto",
    *,
    chunk_pages: int = DEFAULT_CHUNK_PAGES,
    skip_bad_pages: bool = False,
    threads: int | None = None,
) -> DumpReader:
    """Open a guest memory dump for streaming.

    Parameters
    ----------
    path : path-like
        The dump. It is opened read-only and never written.
    format : str
        ``"auto"`` (detect from magic bytes) or one of ``READERS``.
    chunk_pages : int
        Pages per yielded chunk; bounds memory use.
    skip_bad_pages : bool
        Count and skip pages that cannot be read instead of failing: for kdump, corrupt or
        truncated compressed pages and missing descriptors; for ELF and LiME, segment data
        cut off by a truncated file; for raw images (no per-page structure), a trailing
        partial page. Malformed headers are always an error.
    threads : int, optional
        Decoding threads of a reader that decodes on several (kdump: its ``threads``); None or 0
        is the reader's default (kdump: every usable CPU). ``pagecore hash --threads`` and
        ``pagecore bench ingest --threads`` pass theirs here.

    Returns
    -------
    DumpReader
        Iterable of :class:`PageChunk`; also a context manager.
    """
    path = check_input_path(path)
    if format in (None, "auto"):
        format = detect_format(path)
    try:
        reader = READERS[format]
    except KeyError:
        raise InputError(
            path,
            f"unknown dump format {format!r}",
            expected="auto or one of " + ", ".join(sorted(READERS)),
        ) from None
    r = reader(Path(path), chunk_pages=chunk_pages, skip_bad_pages=skip_bad_pages)
    if threads and hasattr(r, "threads"):
        from pagecore._jit import resolve_threads

        r.threads = resolve_threads(threads)  # at most the cores, as the hash's threads
    return r


__all__ = [
    "DEFAULT_CHUNK_PAGES",
    "READERS",
    "DumpReader",
    "DumpStats",
    "PageChunk",
    "detect_format",
    "open_dump",
    "register",
]
