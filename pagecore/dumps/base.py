"""The reader contract shared by every dump format."""

from __future__ import annotations

import mmap
import os
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from pagecore import PAGE_SIZE
from pagecore._defaults import DEFAULT_CHUNK_PAGES, MAX_CHUNK_PAGES
from pagecore.dumps import _sigbus
from pagecore.errors import ConfigError, InputError

#: A dump read under ``skip_bad_pages`` whose skipped share of pages exceeds this is "mostly
#: bad": :meth:`DumpStats.damage` reports it, and the caller must say so loudly.
MOSTLY_BAD_FRACTION = 0.5


@dataclass
class PageChunk:
    """A run of guest pages.

    Attributes
    ----------
    gpfn : numpy.ndarray
        ``uint64[k]`` guest-physical frame numbers (guest-physical address // 4096).
    pages : numpy.ndarray
        ``uint8[k, 4096]``; a read-only view into the dump where the format allows.
    decoded : object
        What a decode hook made of these pages while the reader decoded them
        (:attr:`pagecore.dumps.kdump.KdumpReader.decode_hook`: the page hashes, for
        :func:`pagecore.pages.ingest.hashed_chunks`), else ``None``.
    file_at : tuple of (int, int), optional
        ``(fd, offset)`` where the reader's open file holds these pages one after another, 4 KiB
        each, from byte ``offset`` (raw, ELF, LiME and .vmem chunks): what ``pages`` shows, so
        :func:`pagecore.pages.ingest.hashed_chunks` may read them from there instead (issue 18).
        Valid while the reader is open.
    """

    gpfn: np.ndarray
    pages: np.ndarray
    decoded: object = None
    file_at: tuple[int, int] | None = None

    def __len__(self) -> int:
        return int(self.gpfn.shape[0])


class LazyPageChunk(PageChunk):
    """A :class:`PageChunk` whose ``pages`` are completed by ``fill()`` when first read.

    A kdump reader whose decode hook needs no bytes of the rows that point at the dump's shared
    zero page (the page hash: it knows a zero page's hash) leaves those rows unfilled; whoever
    reads ``pages`` (``pagecore hash --compress``, a test) gets them filled with zeros first, so
    ``pages`` is always what an eager reader returns. ``fill`` runs once, under a lock.
    """

    def __init__(self, gpfn: np.ndarray, pages: np.ndarray, decoded: object = None, fill=None):
        self._fill = fill
        self._fill_lock = threading.Lock()
        super().__init__(gpfn, pages, decoded)

    @property
    def pages(self) -> np.ndarray:  # type: ignore[override]
        if self._fill is not None:
            with self._fill_lock:
                if self._fill is not None:
                    self._fill()
                    self._fill = None  # only now: another thread must not see the rows unfilled
        return self._pages

    @pages.setter
    def pages(self, value: np.ndarray) -> None:
        self._pages = value

    @property
    def filled(self) -> bool:
        """Whether ``pages`` is complete (read once, or nothing was left to fill)."""
        return self._fill is None


@dataclass
class DumpStats:
    """What a reader saw: every page of the dump is read, skipped or excluded."""

    pages_read: int = 0
    pages_skipped: int = 0  # unreadable pages dropped under --skip-bad-pages
    pages_excluded: int = 0  # pages the dump itself left out (e.g. kdump dump_level)
    bytes_skipped: int = 0  # bytes that do not form a whole page (raw), or a segment or header
    # lacks because the file is cut short (ELF, LiME; under skip_bad_pages)
    pages_partial: int = 0  # pages only partly present (ELF/LiME ranges not page-aligned);
    # they are counted in pages_read too, and the bytes the dump lacks read as zero
    incomplete: bool = False  # the dump's own header says the producer did not finish (kdump)

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def bad_fraction(self) -> float:
        """Share of the dump's pages that could not be read (skipped / (read + skipped))."""
        total = self.pages_read + self.pages_skipped
        return self.pages_skipped / total if total else 0.0

    def damage(self) -> str | None:
        """One line saying how the dump is damaged, or None if every page was read.

        Callers reading with ``skip_bad_pages`` must show this to the user (and record it):
        numbers from a damaged dump describe only the pages that could be read.
        """
        parts = []
        if self.incomplete:
            parts.append("the dump's header says it is incomplete")
        if self.pages_skipped:
            parts.append(
                f"{self.pages_skipped:,} of {self.pages_read + self.pages_skipped:,} pages "
                f"({100 * self.bad_fraction:.1f} %) were unreadable and skipped"
            )
        if not parts:
            return None
        if self.bad_fraction > MOSTLY_BAD_FRACTION:
            parts.append(f"MOSTLY BAD: over {100 * MOSTLY_BAD_FRACTION:.0f} % of the pages are missing")
        return "; ".join(parts)


def check_chunk_pages(chunk_pages) -> int:
    """Return ``chunk_pages`` if it is a sensible pages-per-chunk count, else raise ConfigError."""
    if isinstance(chunk_pages, bool) or not isinstance(chunk_pages, int | np.integer):
        raise ConfigError(f"chunk_pages must be an integer, got {chunk_pages!r}")
    if not 1 <= chunk_pages <= MAX_CHUNK_PAGES:
        raise ConfigError(
            f"chunk_pages {chunk_pages:,} is out of range: expected 1..{MAX_CHUNK_PAGES:,} "
            f"(a chunk of pages is held in memory; the default is {DEFAULT_CHUNK_PAGES:,})"
        )
    return int(chunk_pages)


def check_input_path(path: str | os.PathLike) -> Path:
    """Return ``path`` as a Path if it is a readable regular file, else raise InputError."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, "no such file", hint="check the path")
    if p.is_dir():
        raise InputError(p, "is a directory, not a memory dump", hint="name a dump file inside it")
    if not p.is_file():
        raise InputError(p, "is not a regular file", hint="copy the dump to a regular file first")
    if not os.access(p, os.R_OK):
        raise InputError(p, "permission denied", hint="make the file readable by this user")
    return p


class DumpReader(ABC):
    """One dump format. Subclasses set the class attributes and implement :meth:`chunks`.

    A reader must:

    * open its input read-only and never write it;
    * yield :class:`PageChunk` objects of at most ``chunk_pages`` pages, in any gpfn order,
      each gpfn at most once;
    * never reuse a chunk's page buffer for a later chunk, and keep mapped pages mapped until
      two more chunks have been requested (the caller hashes a chunk while the next is read:
      :func:`pagecore.pages.ingest.hashed_chunks`);
    * account for every page in :attr:`stats` (read, skipped or excluded);
    * raise :class:`~pagecore.errors.InputError` naming the file, byte offset, what was
      expected and what to do, for any malformed input.
    """

    name: ClassVar[str]
    #: Human-readable magic for error messages; None for formats without one (raw).
    magic_description: ClassVar[str | None] = None
    page_size: ClassVar[int] = PAGE_SIZE

    def __init__(self, path: Path, *, chunk_pages: int = DEFAULT_CHUNK_PAGES, skip_bad_pages: bool = False):
        check_chunk_pages(chunk_pages)
        self.path = Path(path)
        self.chunk_pages = int(chunk_pages)
        self.skip_bad_pages = skip_bad_pages
        self.file_size = self.path.stat().st_size
        self.stats = DumpStats()

    @classmethod
    @abstractmethod
    def sniff(cls, head: bytes, size: int) -> bool:
        """True if a file starting with ``head`` (up to 4 KiB) of ``size`` bytes is this format."""

    @abstractmethod
    def chunks(self) -> Iterator[PageChunk]:
        """Yield the dump's pages in chunks."""

    def __iter__(self) -> Iterator[PageChunk]:
        yield from self.chunks()
        self._check_complete()

    def _check_complete(self) -> None:
        """After the last chunk: a dump of which no page could be read is an error, skip or not;
        so is one that holds no page at all (every page excluded by its producer: an ELF core of
        PT_LOADs without data, a migration stream that sent none), which made an empty table."""
        st = self.stats
        if st.pages_read == 0 and st.pages_skipped == 0 and st.pages_excluded > 0:
            raise InputError(
                self.path,
                f"the dump holds no guest page: all {st.pages_excluded:,} pages are left out of it",
                expected="at least one page of guest memory",
                hint="the producer wrote no memory (a filter or a cut that kept nothing); re-create the dump",
            )
        if st.pages_read == 0 and st.pages_skipped > 0:
            raise InputError(
                self.path,
                f"no page could be read: all {st.pages_skipped:,} pages are bad"
                + (" and the header says the dump is incomplete" if st.incomplete else ""),
                expected="at least one readable page",
                hint="the dump is corrupt or truncated; re-create it",
            )

    @property
    def pages_hint(self) -> int | None:
        """Expected number of pages (for progress bars), or None if unknown up front."""
        return None

    @property
    def input_paths(self) -> list[Path]:
        """Every file this reader reads (the dump, and any file found beside it): an output must be none."""
        return [self.path]

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources; safe to call twice."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def metadata(self) -> dict:
        """Provenance of this read, for the page table's file metadata."""
        return {
            "source_path": str(self.path),
            "source_size": self.file_size,
            "format": self.name,
            "page_size": self.page_size,
            **self.stats.as_dict(),
            # one line for the user when pages were skipped or the dump is incomplete, else None
            "damage": self.stats.damage(),
        }


#: format name -> reader class; readers with a magic number are tried in registration order.
READERS: dict[str, type[DumpReader]] = {}


def register(reader: type[DumpReader]) -> type[DumpReader]:
    """Class decorator: make ``reader`` available to ``open_dump`` under its ``name``."""
    READERS[reader.name] = reader
    return reader


def refuse_shrunk(path, opened: int, now: int, wait: str) -> None:
    """Raise InputError if a mapped input of ``opened`` bytes has ``now`` fewer: touching a mapped
    page past the end of a file kills the process with SIGBUS. ``wait`` says what to wait for."""
    if now < opened:
        raise InputError(
            path,
            f"the file shrank while being read: {opened:,} bytes when opened, {now:,} now",
            expected="an input that nothing writes while pagecore reads it",
            hint=f"{wait} and run again",
        )


class MmapReader(DumpReader):
    """Helper base for formats whose page data can be viewed in a read-only memory map."""

    def __init__(self, path: Path, **kw):
        super().__init__(path, **kw)
        self._fh = None
        self._mm = None
        self._buf = None

    def _map(self) -> np.ndarray:
        """Map the whole file read-only; returns a uint8 view (empty files cannot be mapped)."""
        if self._buf is None:
            _sigbus.install_async()  # a truncation while a view is in use: one line, not a silent death
            _sigbus.set_current(self.path)
            self._fh = open(self.path, "rb")
            self._check_size()
            try:
                self._mm = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)
            except OSError as exc:  # a /sys or /proc file: "No such device", naming no file
                self._fh.close()
                self._fh = None
                raise InputError(
                    self.path, f"cannot be mapped into memory ({exc.strerror or exc})",
                    expected="a memory dump in a regular file", hint="copy it to a regular file first",
                ) from None  # fmt: skip
            if hasattr(self._mm, "madvise") and hasattr(mmap, "MADV_SEQUENTIAL"):
                self._mm.madvise(mmap.MADV_SEQUENTIAL)
            self._buf = np.frombuffer(self._mm, dtype=np.uint8)
        return self._buf

    def _check_size(self) -> None:
        """Raise InputError if the input shrank since it was opened.

        Touching a mapped page past the end of a file kills the process with SIGBUS, so every
        reader calls this before it hands out (or reads) each chunk. A file truncated while a
        chunk is being hashed faults anyway; :mod:`._sigbus` then prints one line and exits.
        """
        fh = self._fh
        size = os.fstat(fh.fileno()).st_size if fh is not None else self.path.stat().st_size
        refuse_shrunk(self.path, self.file_size, size, "wait until the producer has finished (or copy the dump)")

    def _check_complete(self) -> None:
        """Also refuse an input that grew while read: a raw image still being written (or copied)
        was hashed up to the size it had when opened, with exit 0."""
        super()._check_complete()
        fh = self._fh
        size = os.fstat(fh.fileno()).st_size if fh is not None else self.path.stat().st_size
        if size != self.file_size:
            raise InputError(
                self.path,
                f"the file changed size while being read: {self.file_size:,} bytes when opened, {size:,} now",
                expected="an input that nothing writes while pagecore reads it",
                hint="wait until the producer (or the copy) has finished and run again",
            )

    #: ``MADV_POPULATE_READ`` (Linux 5.14): map a range's cached pages in one call instead of
    #: one page fault per 64 KiB (1.5 times faster hashing of a cached raw dump, issue 18)
    _MADV_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22 if sys.platform.startswith("linux") else None)

    def populate_on_read(self, on: bool) -> None:
        """Whether each chunk is mapped with ``MADV_POPULATE_READ`` before it is handed out (the
        default). Off, its pages are faulted in by whoever touches them first (e.g. several
        hashing threads at once, cheaper for a dump in the page cache); the read-ahead hint for
        the next chunk stays either way."""
        if on:
            self.__dict__.pop("_MADV_POPULATE_READ", None)
        else:
            self._MADV_POPULATE_READ = None

    def _populate(self, start: int, length: int) -> None:
        """Map ``[start, start + length)`` before it is read, and ask the kernel to start reading
        the ``length`` bytes after it from disk (hints: failures are ignored).

        Without the read-ahead, a dump that is not in the page cache was read in the page
        faults of ``MADV_POPULATE_READ``, 2.4 times slower than ``cat`` reads it (issue 18)."""
        adv = self._MADV_POPULATE_READ
        if self._mm is not None and adv is not None and length > 0:
            lo = start - start % mmap.PAGESIZE
            try:
                self._mm.madvise(adv, lo, start + length - lo)
            except (OSError, ValueError):  # an older kernel: fall back to page faults from now on
                self._MADV_POPULATE_READ = None
        self._willneed(start + length, length)

    def _willneed(self, start: int, length: int) -> None:
        """Start reading ``[start, start + length)`` of the file into the page cache (asynchronous)."""
        if self._mm is None or not hasattr(mmap, "MADV_WILLNEED"):
            return
        length = min(length, len(self._mm) - start)
        if length <= 0:
            return
        lo = start - start % mmap.PAGESIZE
        try:
            self._mm.madvise(mmap.MADV_WILLNEED, lo, start + length - lo)
        except (OSError, ValueError):
            pass

    def _release(self, start: int, length: int) -> None:
        """Tell the kernel we are done with a mapped range, so resident memory stays bounded."""
        if self._mm is not None and hasattr(mmap, "MADV_DONTNEED") and length > 0:
            lo = start - start % mmap.PAGESIZE
            try:
                self._mm.madvise(mmap.MADV_DONTNEED, lo, start + length - lo)
            except (OSError, ValueError):
                pass

    def close(self) -> None:
        self._buf = None
        if self._mm is not None:
            try:
                self._mm.close()
            except BufferError:
                # a caller still holds a chunk view; the map closes when that view is freed
                pass
            self._mm = None
        if self._fh is not None:
            self._fh.close()
            self._fh = None
