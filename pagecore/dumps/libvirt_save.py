"""libvirt's save image (``virsh save``, managed save): header, domain XML, then QEMU's migration stream.

Layout (libvirt ``src/qemu/qemu_saveimage.h``; integers in the saving host's byte order,
little-endian on x86, detected from ``version``)::

    char     magic[16]       "LibvirtQemudSave" ("LibvirtQemudPart": the save did not finish)
    uint32   version         2
    uint32   data_len        bytes of XML + cookie + padding that follow the header
    uint32   was_running
    uint32   compressed      0 raw, 1 gzip, 2 bzip2, 3 xz, 4 lzop, 5 zstd, 6 sparse
    uint32   cookieOffset    offset of the save cookie inside the data (0: none)
    uint32   unused[14]
    data_len bytes           domain XML (NUL-terminated), cookie, zero padding (64 KiB slack)
    ...                      the QEMU migration stream (QEVM), compressed as ``compressed`` says

The stream is read by :mod:`pagecore.dumps.qemu_migration`; gzip, bzip2 and xz are decompressed
on the fly with Python's standard library (two streaming passes, bounded memory), zstd with the
``zstandard`` package where installed. lzop and libvirt's ``sparse`` format (QEMU ``mapped-ram``)
are refused with what to do instead.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import re
import struct
from pathlib import Path
from typing import BinaryIO

from pagecore.dumps.base import register
from pagecore.dumps.qemu_migration import StreamReader
from pagecore.errors import InputError

MAGIC = b"LibvirtQemudSave"
PARTIAL = b"LibvirtQemudPart"
VERSION = 2
HEADER = struct.Struct("16s5I56x")
#: longest domain XML read (libvirt's are a few KiB; data_len adds 64 KiB of padding and the cookie)
XML_MAX = 16 << 20
COMPRESSION = {0: "raw", 1: "gzip", 2: "bzip2", 3: "xz", 4: "lzop", 5: "zstd", 6: "sparse"}
_OPENERS = {
    1: lambda f, mode="rb": gzip.GzipFile(fileobj=f, mode=mode, compresslevel=1),
    2: lambda f, mode="rb": bz2.BZ2File(f, mode=mode, compresslevel=1),
    3: lambda f, mode="rb": lzma.LZMAFile(f, mode=mode, preset=1 if mode == "wb" else None),
}


def parse_header(head: bytes, path: Path, size: int) -> dict:
    """The save image header as a dict; raises InputError for anything inconsistent."""
    if len(head) < HEADER.size:
        raise InputError(path, "file shorter than a libvirt save header", offset=0, expected=f"{HEADER.size} bytes")
    magic = head[:16]
    if magic == PARTIAL:
        raise InputError(
            path,
            "libvirt save image is incomplete (magic LibvirtQemudPart)",
            offset=0,
            hint="the save did not finish; libvirt itself refuses to restore it",
        )
    if magic != MAGIC:
        raise InputError(path, f"bad magic {magic!r}", offset=0, expected=repr(MAGIC))
    for order in "<>":
        fields = struct.unpack_from(order + "5I", head, 16)
        if fields[0] <= VERSION:
            break
    else:
        raise InputError(
            path, f"libvirt save image version {fields[0]}", offset=16, expected=f"1 or {VERSION} in either byte order"
        )
    version, data_len, was_running, compressed, cookie = fields
    if version < 1 or data_len == 0 or HEADER.size + data_len > size or cookie > data_len:
        raise InputError(
            path,
            f"inconsistent header: version {version}, data_len {data_len}, cookieOffset {cookie}",
            offset=16,
            expected=f"version 1-2, 0 < data_len <= {size - HEADER.size:,} (file size), cookieOffset <= data_len",
        )
    if compressed not in COMPRESSION:
        raise InputError(path, f"unknown compression {compressed}", offset=28, expected=str(COMPRESSION))
    return {
        "version": version,
        "data_len": data_len,
        "was_running": bool(was_running),
        "compressed": COMPRESSION[compressed],
        "compressed_code": compressed,
        "cookie_offset": cookie,
        "byte_order": "little" if order == "<" else "big",
        "stream_offset": HEADER.size + data_len,
    }


class _Both:
    """A decompressor over an open file; closing it closes both."""

    def __init__(self, dec, fh):
        self.dec, self.fh = dec, fh
        self.read = dec.read

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.dec.close()
        self.fh.close()


@register
class LibvirtSaveReader(StreamReader):
    """libvirt save image around a QEMU migration stream."""

    name = "libvirt-save"
    magic_description = "libvirt save image 'LibvirtQemudSave'"

    @classmethod
    def sniff(cls, head: bytes, size: int) -> bool:
        return head[:16] in (MAGIC, PARTIAL)

    def __init__(self, path: Path, **kw):
        super().__init__(path, **kw)
        with open(self.path, "rb") as fh:
            head = fh.read(HEADER.size)
            self.header = parse_header(head, self.path, self.file_size)
            # only the XML is used (up to its NUL): data_len (up to 4 GiB) was read whole, and copied
            xml_len = self.header["cookie_offset"] or self.header["data_len"]
            data = bytearray()
            while len(data) < min(xml_len, XML_MAX) and (piece := fh.read(min(1 << 16, xml_len - len(data)))):
                data += piece
                if b"\0" in piece:
                    break
            xml = bytes(data[: min(xml_len, XML_MAX)]).split(b"\0", 1)[0]
        if len(xml) == XML_MAX < xml_len:
            raise InputError(
                self.path,
                f"no end to the domain XML in its first {XML_MAX >> 20} MiB (data_len {self.header['data_len']:,})",
                offset=HEADER.size,
                expected="a NUL-terminated domain XML",
                hint="the header is corrupt",
            )
        if not xml.lstrip().startswith(b"<domain"):
            raise InputError(self.path, "no domain XML after the header", offset=HEADER.size, expected="<domain ...>")
        self.xml = xml.decode("utf-8", "replace")
        code = self.header["compressed_code"]
        if code in (4, 6):
            how = (
                "decompress the stream with lzop -dc (skip the first stream_offset bytes) and read it as qemu-migration"
                if code == 4
                else "libvirt's sparse format is QEMU's mapped-ram layout, which pagecore does not read; "
                "save with --image-format raw"
            )
            raise InputError(
                self.path, f"{COMPRESSION[code]} save image", offset=28, expected="raw/gzip/bzip2/xz/zstd", hint=how
            )

    def _open_stream(self) -> tuple[BinaryIO, int, str]:
        off = self.header["stream_offset"]
        code = self.header["compressed_code"]
        fh = open(self.path, "rb", buffering=1 << 20)  # the caller closes it
        fh.seek(off)
        if code == 0:
            return fh, off, "migration stream"
        what = f"offset in the {COMPRESSION[code]}-decompressed stream that starts at byte {off:,}"
        if code == 5:
            try:
                import zstandard
            except ImportError:
                fh.close()
                raise InputError(self.path, "zstd save image", offset=28, hint="pip install zstandard") from None
            return zstandard.ZstdDecompressor().stream_reader(fh, closefd=True), 0, what
        return _Both(_OPENERS[code](fh), fh), 0, what

    def metadata(self) -> dict:
        meta = super().metadata()
        name = re.search(r"<name>([^<]*)</name>", self.xml)
        mem = re.search(r"<memory(?: unit='(\w+)')?>(\d+)</memory>", self.xml)
        meta.update(
            libvirt_header={k: v for k, v in self.header.items() if k != "compressed_code"},
            domain_name=name.group(1) if name else None,
            domain_memory=f"{mem.group(2)} {mem.group(1) or 'KiB'}" if mem else None,
        )
        return meta


def write_libvirt_save(dst: str | Path, xml: str, stream: str | Path, compressed: str = "raw") -> Path:
    """Write a save image around an existing migration stream, as libvirt lays it out (for tests).

    ``compressed`` is raw, gzip, bzip2 or xz. The XML gets libvirt's 64 KiB of padding.
    """
    code = {v: k for k, v in COMPRESSION.items()}[compressed]
    body = xml.encode() + b"\0"
    data_len = len(body) + 64 * 1024
    dst = Path(dst)
    with open(dst, "wb") as out:
        out.write(HEADER.pack(MAGIC, VERSION, data_len, 0, code, 0))
        out.write(body + b"\0" * (data_len - len(body)))
        comp = out if code == 0 else _OPENERS[code](out, mode="wb")
        with open(stream, "rb") as src:
            while block := src.read(1 << 20):
                comp.write(block)
        if comp is not out:
            comp.close()
    return dst


__all__ = ["LibvirtSaveReader", "parse_header", "write_libvirt_save"]
