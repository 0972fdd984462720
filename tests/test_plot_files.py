"""What a figure file holds: TrueType (Type 42) fonts in PDFs, 150 dpi PNGs, ordinary file modes."""

from __future__ import annotations

import os
import re
import struct
import zlib

import matplotlib.pyplot as plt

from pagecore.plotting import save_figure, style


def _figure():
    with style():
        fig, ax = plt.subplots(figsize=(2, 1.5))
        ax.plot([0, 1], [0, 1], label="a line")
        ax.set_xlabel("Time (min)")
        ax.set_title("fonts and dpi")
        ax.legend()
    return fig


def png_dpi(data: bytes) -> tuple[float, float]:
    """Pixels per inch from the PNG's pHYs chunk (which matplotlib writes from savefig's dpi)."""
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        assert zlib.crc32(kind + body) == struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0]
        if kind == b"pHYs":
            x, y, unit = struct.unpack(">IIB", body)
            assert unit == 1  # metres
            return x * 0.0254, y * 0.0254
        pos += 12 + length
    raise AssertionError("PNG has no pHYs chunk")


def test_pdf_embeds_truetype_fonts_not_type3(tmp_path):
    (pdf,) = [p for p in save_figure(_figure(), tmp_path / "f", formats=("pdf",))]
    data = pdf.read_bytes()
    subtypes = set(re.findall(rb"/Subtype\s*/(Type3|TrueType|Type1|CIDFontType2|Type0)", data))
    assert b"Type3" not in subtypes, subtypes
    assert subtypes & {b"TrueType", b"CIDFontType2"}, subtypes
    assert b"/FontFile2" in data  # the embedded TrueType program


def test_png_is_150_dpi(tmp_path):
    (png,) = save_figure(_figure(), tmp_path / "f", formats=("png",))
    x, y = png_dpi(png.read_bytes())
    assert round(x) == round(y) == 150


def test_outputs_get_the_umask_mode_not_0600(tmp_path):
    old = os.umask(0o027)
    try:
        paths = save_figure(_figure(), tmp_path / "f")
    finally:
        os.umask(old)
    for p in paths:
        assert p.stat().st_mode & 0o777 == 0o640, (p, oct(p.stat().st_mode))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind
