"""Raw physical memory images: QEMU ``pmemsave``, flat VMware ``.vmem``.

There is no header: the byte at offset ``a`` is guest-physical address ``a``, so page ``i`` of
the file is guest frame ``i``. Holes are not recorded (a hole reads as whatever the producer
wrote there, usually zeros).

What is checked: the size is a whole number of pages (else an error, or under
``skip_bad_pages`` the trailing partial page is skipped and counted), and the file does not
shrink while it is read. What no check can protect: every byte (:data:`UNPROTECTED`) — a raw
image has no header and no checksum, so a changed byte is a changed page.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from pagecore.dumps.base import MmapReader, PageChunk, register
from pagecore.errors import InputError

#: Byte ranges of a raw image that no check can protect, as (start, end) pairs with ``None``
#: meaning the end of the file: all of it (page data, no header, no checksum).
UNPROTECTED = (("page data", 0, None),)

#: Files starting like these are not memory images, whatever their size: auto-detection does not
#: take them as raw (a qcow2 disk, a compressed dump or a QEVM stream of another version whose
#: size was a multiple of 4 KiB was hashed as guest pages with exit 0); ``--format raw`` still can.
FOREIGN_MAGICS = (
    (b"\x1f\x8b\x08", "a gzip-compressed file"),
    (b"\xfd7zXZ\x00", "an xz-compressed file"),
    (b"\x28\xb5\x2f\xfd", "a zstd-compressed file"),
    (b"\x89LZO\x00\r\n\x1a\n", "an lzop-compressed file"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"PK\x03\x04", "a zip archive"),
    (b"QFI\xfb", "a qcow2 disk image"),
    (b"KDMV", "a VMDK disk image"),
    (b"vhdxfile", "a VHDX disk image"),
    (b"QEVM", "a QEMU migration stream of a version pagecore does not read"),
    (b"PAGEDU64", "a Windows crash dump"),
    (b"PAGEDUMP", "a Windows crash dump"),
    (b"PAR1", "a Parquet file (a page table?)"),
)


def foreign_magic(head: bytes) -> str | None:
    """What a file starting with ``head`` is if its magic says it is no memory image, else None."""
    for magic, what in FOREIGN_MAGICS:
        if head.startswith(magic):
            return what
    if head[:3] == b"BZh" and head[3:4] in b"123456789" and head[4:10] == b"1AY&SY":
        return "a bzip2-compressed file"
    return None


@register
class RawReader(MmapReader):
    """Reader for headerless physical images; page data is a zero-copy view of a read-only mmap."""

    name = "raw"
    magic_description = None

    @classmethod
    def sniff(cls, head: bytes, size: int) -> bool:
        return size > 0 and size % cls.page_size == 0

    @property
    def pages_hint(self) -> int:
        return self.file_size // self.page_size

    def _validate(self) -> int:
        size = self.file_size
        if size == 0:
            raise InputError(
                self.path,
                "file is empty",
                offset=0,
                expected="at least one 4096-byte page",
                hint="check that the dump finished writing",
            )
        rem = size % self.page_size
        if rem:
            if not self.skip_bad_pages:
                raise InputError(
                    self.path,
                    f"size {size:,} bytes is not a multiple of the {self.page_size}-byte page size "
                    f"({rem} trailing bytes)",
                    offset=size - rem,
                    expected="a raw physical image of whole pages",
                    hint=(
                        "the dump may be truncated or not raw; pass --format, "
                        "or --skip-bad-pages to ignore the partial page"
                    ),
                )
            self.stats.bytes_skipped = rem
            self.stats.pages_skipped = 1
        return size // self.page_size

    def chunks(self) -> Iterator[PageChunk]:
        npages = self._validate()
        if npages == 0:
            return
        buf = self._map()
        ps = self.page_size
        step = self.chunk_pages
        held: list[tuple[int, int]] = []  # the chunks handed out that may still be in use
        for lo in range(0, npages, step):
            hi = min(npages, lo + step)
            if len(held) == 2:  # a chunk stays mapped until two more have been requested
                a, b = held.pop(0)
                self._release(a * ps, (b - a) * ps)
            self._check_size()
            self._populate(lo * ps, (hi - lo) * ps)
            pages = buf[lo * ps : hi * ps].reshape(hi - lo, ps)
            self.stats.pages_read += hi - lo
            yield PageChunk(np.arange(lo, hi, dtype=np.uint64), pages, file_at=(self._fh.fileno(), lo * ps))
            held.append((lo, hi))
