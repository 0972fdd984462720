"""The kdump reader's lzo and zstd kernels (``dumps._pagecodec.unlzo_pages``, ``unzstd_pages``: the
system liblzo2 / libzstd called from nogil Numba kernels) against the reader's Python codecs
(``kdump.CODECS``: lzokay, zstandard), their reference: every page the kernels accept, the Python
codec accepts too, with the same bytes; valid pages are all accepted; what they refuse is left to
the Python codec (the reader decodes it again there: its verdict and message stand)."""

from __future__ import annotations

import numpy as np
import pytest
from dumps_helpers import PS, make_pages, read_all, write_dump

from pagecore.dumps import _pagecodec
from pagecore.dumps import kdump as K
from pagecore.errors import InputError

KERNELS = {
    "lzo": (K.FLAG_LZO, "HAVE_LZO", "unlzo_pages"),
    "zstd": (K.FLAG_ZSTD, "HAVE_ZSTD", "unzstd_pages"),
}


def _kernel(codec: str):
    _, have, name = KERNELS[codec]
    if not getattr(_pagecodec, have):
        pytest.skip(f"no system library for the {codec} kernel")
    return getattr(_pagecodec, name)


def run_kernel(codec: str, blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """The kernel on ``blobs`` laid out back to back (after a 3-byte prefix: any alignment)."""
    decode = _kernel(codec)
    buf = np.frombuffer(b"pad" + b"".join(blobs), np.uint8)
    sizes = np.array([len(b) for b in blobs], np.int64)
    offs = (3 + np.concatenate([[0], np.cumsum(sizes)[:-1]])).astype(np.int64)
    out = np.full((len(blobs), PS), 0xA5, np.uint8)
    status = np.full(len(blobs), 77, np.int32)
    decode(buf, offs, sizes, np.arange(len(blobs)), out, status)
    return out, status


def reference(codec: str, blob: bytes) -> bytes | None:
    """The reader's Python codec: the page, or None where it refuses."""
    try:
        page = K.CODECS[KERNELS[codec][0]](blob, PS)
    except Exception:  # every refusal (each codec has its own errors)
        return None
    return bytes(page) if len(page) == PS else None


def check(codec: str, blobs: list[bytes]) -> int:
    """Every page the kernel accepts is the reference's page; returns how many it accepted."""
    out, status = run_kernel(codec, blobs)
    assert set(status.tolist()) <= {0, _pagecodec.LEFT_TO_PYTHON}
    for blob, page, st in zip(blobs, out, status.tolist(), strict=True):
        if st == 0:
            assert reference(codec, blob) == page.tobytes()
    return int((status == 0).sum())


def _valid_pages() -> list[bytes]:
    rng = np.random.default_rng(31)
    pages = [p.tobytes() for p in make_pages(40, seed=3)]
    pages += [bytes(PS), b"\x01" * PS, bytes(PS - 1) + b"\x01", b"\x01" + bytes(PS - 1)]
    pages += [bytes(range(256)) * 16, (b"abc" * 2000)[:PS]]
    text = rng.integers(97, 123, (64, 8), dtype=np.uint8)
    pages += [text[rng.integers(0, 64, PS // 8)].tobytes() for _ in range(10)]
    half = rng.integers(0, 256, PS // 2, dtype=np.uint8).tobytes()
    pages += [half + bytes(PS // 2), bytes(PS // 2) + half]  # the second ends in zero: lzo's double check
    return pages


@pytest.mark.parametrize("codec", ["lzo", "zstd"])
def test_valid_pages_are_accepted_and_decode_as_the_python_codec(codec):
    flag = KERNELS[codec][0]
    # as kdump writers store them: a page that does not shrink is stored raw (a longer blob never
    # reaches a kernel: the reader refuses compressed blobs over one page before decoding)
    stored = [(p, K._compress(flag, p)) for p in _valid_pages()]
    pages = [p for p, b in stored if len(b) < PS]
    blobs = [b for p, b in stored if len(b) < PS]
    assert len(pages) > 40
    out, status = run_kernel(codec, blobs)
    assert not status.any()
    assert [p.tobytes() for p in out] == pages
    assert check(codec, blobs) == len(blobs)


@pytest.mark.parametrize("codec", ["lzo", "zstd"])
def test_random_corruptions_and_garbage(codec):
    """Flipped, cut, extended and random streams: whatever the kernel accepts, the Python codec
    accepts with the same bytes (most are refused and left to it)."""
    flag = KERNELS[codec][0]
    rng = np.random.default_rng(32)
    good = [b for b in (K._compress(flag, p) for p in _valid_pages()) if len(b) < PS]
    bad = []
    for b in good:
        arr = bytearray(b)
        for _ in range(3):
            c = bytearray(arr)
            for j in rng.integers(0, len(c), int(rng.integers(1, 4))).tolist():
                c[j] ^= int(rng.integers(1, 256))
            bad.append(bytes(c))
        bad.append(b[: int(rng.integers(1, len(b)))])  # cut short
        bad.append(b + b"\x00")  # a trailing byte
        bad.append(b + rng.integers(0, 256, 9, dtype=np.uint8).tobytes())
    bad += [rng.integers(0, 256, int(rng.integers(1, 600)), dtype=np.uint8).tobytes() for _ in range(100)]
    check(codec, bad)
    # the refused ones still get the Python codec's verdict in the reader (below); here: no crash,
    # and a clean page after garbage in the same batch still decodes
    out, status = run_kernel(codec, [bad[0], good[5], bad[1]])
    assert status[1] == 0 and out[1].tobytes() == K.CODECS[flag](good[5], PS)


def test_lzo_named_cases():
    page = _valid_pages()[5]
    short = K._compress(K.FLAG_LZO, page[:-1])  # decodes to 4095 bytes (lzokay would pad it with a zero)
    long = K._compress(K.FLAG_LZO, page + b"\x07")  # 4097 bytes
    zero_end = K._compress(K.FLAG_LZO, page[:-1] + b"\x00")
    out, status = run_kernel("lzo", [short, long, zero_end, b"", b"\x11\x00\x00"])
    assert status.tolist()[:2] == [_pagecodec.LEFT_TO_PYTHON] * 2
    assert reference("lzo", short) is None and reference("lzo", long) is None
    assert status[2] == 0 and out[2].tobytes() == page[:-1] + b"\x00"
    assert status[3] == status[4] == _pagecodec.LEFT_TO_PYTHON  # empty; an end marker and nothing else
    # liblzo2 ends a stream at any M4 of distance 0x4000 whatever its length, lzokay only at 11 00 00:
    # other lengths (13 00 00; an extended length 10 11 00 00, or 10 00 11 00 00) are left to lzokay
    good = K._compress(K.FLAG_LZO, page)
    assert good.endswith(b"\x11\x00\x00")
    body = good[:-3]
    odd = [body + b"\x13\x00\x00", body + b"\x17\x00\x00", body + b"\x10\x11\x00\x00", body + b"\x10\x00\x11\x00\x00"]
    out, status = run_kernel("lzo", [good, *odd])
    assert status.tolist() == [0] + [_pagecodec.LEFT_TO_PYTHON] * len(odd)
    assert all(reference("lzo", b) is None for b in odd) and out[0].tobytes() == page


def _streamed(compressor, data: bytes) -> bytes:
    obj = compressor.compressobj()
    return obj.compress(data) + obj.flush()


def test_zstd_named_cases():
    import zstandard as zs

    page = _valid_pages()[5]
    plain = zs.ZstdCompressor(level=1).compress(page)
    checksum = zs.ZstdCompressor(level=3, write_checksum=True).compress(page)
    broken_sum = checksum[:-1] + bytes([checksum[-1] ^ 1])
    unknown = zs.ZstdCompressor(write_content_size=False).compress(page)  # no declared size: decoded, checked
    unknown_short = zs.ZstdCompressor(write_content_size=False).compress(page[:-1])
    declared_other = zs.ZstdCompressor().compress(page + b"x")
    two_frames = zs.ZstdCompressor().compress(page[:2048]) + zs.ZstdCompressor().compress(page[2048:])
    skippable = (0x184D2A50).to_bytes(4, "little") + (4).to_bytes(4, "little") + b"skip" + plain
    # a 2 MiB window (more than ZSTD_MAX_WINDOW): a streamed frame, no content size, not single-segment
    wide_c = zs.ZstdCompressor(compression_params=zs.ZstdCompressionParameters(window_log=21, write_content_size=0))
    wide = _streamed(wide_c, page)
    rng = np.random.default_rng(35)
    words = [bytes(rng.integers(97, 123, 6, dtype=np.uint8)) for _ in range(50)]
    samples = [b" ".join(words[j] for j in rng.integers(0, 50, 200)) for _ in range(200)]
    d = zs.train_dictionary(2048, samples)
    assert d.dict_id() != 0
    with_dict = zs.ZstdCompressor(dict_data=d).compress((samples[0] * 3)[:PS])  # names its dictionary
    blobs = [
        plain,
        checksum,
        broken_sum,
        unknown,
        unknown_short,
        declared_other,
        two_frames,
        skippable,
        wide,
        with_dict,
    ]
    out, status = run_kernel("zstd", blobs)
    left = _pagecodec.LEFT_TO_PYTHON
    assert status.tolist() == [0, 0, left, 0, left, left, left, left, left, left]
    assert out[0].tobytes() == out[1].tobytes() == out[3].tobytes() == page
    for b in blobs[2:3] + blobs[4:6] + blobs[8:]:
        assert reference("zstd", b) is None  # refused by the Python codec as well
    check("zstd", blobs)


@pytest.mark.parametrize("codec", ["lzo", "zstd"])
@pytest.mark.parametrize("container", ["kdump", "kdump-flat"])
def test_the_reader_decodes_valid_pages_with_the_kernel(tmp_path, monkeypatch, codec, container):
    """A valid dump needs no Python codec call (also for pages split over flattened records)."""
    _kernel(codec)
    flag = KERNELS[codec][0]
    pages = make_pages(90, seed=33)
    pfns = np.arange(len(pages)) * 2
    kw = {"record_bytes": 700} if container == "kdump-flat" else {}
    path = write_dump(container, tmp_path / f"v.{container}", pfns, pages, compression=codec, **kw)

    def never(src, n):
        raise AssertionError("Python codec called for a valid page")

    monkeypatch.setitem(K.CODECS, flag, never)
    got, stats = read_all(path, chunk_pages=32)
    assert got == {int(g): p.tobytes() for g, p in zip(pfns, pages, strict=True)}
    assert stats.pages_read == len(pages)


@pytest.mark.parametrize("codec", ["lzo", "zstd"])
def test_a_page_the_kernel_refuses_gets_the_python_codecs_error(tmp_path, codec):
    _kernel(codec)
    pages = make_pages(30, seed=34)
    pfns = np.arange(len(pages))
    path = write_dump("kdump", tmp_path / "c.kdump", pfns, pages, compression=codec)
    r = K.KdumpReader(path)
    h = r._prepare(r._source())
    r.close()
    raw = bytearray(path.read_bytes())
    descs = np.frombuffer(bytes(raw[h["desc_at"] : h["desc_at"] + h["ndesc"] * K.PAGE_DESC.itemsize]), K.PAGE_DESC)
    i = int(np.flatnonzero(descs["flags"] != 0)[2])
    off, size = int(descs[i]["offset"]), int(descs[i]["size"])
    raw[off : off + size] = bytes(size)  # zeros: no valid stream of one page
    path.write_bytes(raw)
    blob = bytes(size)
    assert run_kernel(codec, [blob])[1][0] == _pagecodec.LEFT_TO_PYTHON and reference(codec, blob) is None
    with pytest.raises(InputError, match=f"{codec} page"):
        read_all(path)
    got, stats = read_all(path, skip_bad_pages=True)
    assert stats.pages_skipped == 1 and len(got) == len(pages) - 1 and i not in got
