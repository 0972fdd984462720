"""The ingest benchmark's codec baselines decode exactly what the kdump files hold compressed."""

import numpy as np
import pytest

from pagecore.bench.ingest import _codec_blobs, _read, baseline, guest_like_pages
from pagecore.dumps.kdump import COMPRESSION_FLAGS, PAGE_DESC, KdumpReader, write_kdump


@pytest.mark.parametrize("codec", ["zlib", "snappy", "lzo", "zstd"])
def test_codec_blobs_are_the_files_compressed_pages(tmp_path, codec):
    pages = guest_like_pages(512, seed=3)
    pages[7] = 0  # zero pages are stored once, raw
    pages[9] = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)  # does not shrink: raw
    path = write_kdump(tmp_path / f"g.{codec}", np.arange(len(pages), dtype=np.uint64), pages, compression=codec)
    # the file's own descriptors (frame order): the pages its reader decodes with this codec
    with KdumpReader(path) as r:
        desc_at = r._header(r._source())["desc_at"]
    raw = path.read_bytes()
    descs = np.frombuffer(raw[desc_at : desc_at + len(pages) * PAGE_DESC.itemsize], PAGE_DESC)
    flag = {v: k for k, v in COMPRESSION_FLAGS.items()}[codec]
    stored = [raw[int(d["offset"]) : int(d["offset"]) + int(d["size"])] for d in descs if int(d["flags"]) == flag]
    assert int(descs["flags"][7]) == 0 and int(descs["flags"][9]) == 0
    blobs = _codec_blobs(pages, codec)
    assert 0 < len(blobs) < len(pages)
    assert blobs == stored


def test_reader_alone_reads_every_page_and_is_judged_against_its_decoder(tmp_path):
    pages = guest_like_pages(300, seed=5)
    path = write_kdump(tmp_path / "g.snappy", np.arange(len(pages), dtype=np.uint64), pages, compression="snappy")
    assert _read(path, 2, 128) == len(pages)
    res = {"snappy decode 2T": 1.0, "snappy decode kernel 2T": 2.0, "hash only": 5.0, "read bandwidth": 4.0}
    assert baseline(res, "kdump-snappy (flat) ingest only", 2) == ("snappy decode kernel 2T", 2.0)
    assert baseline(res, "raw ingest+hash", 2) == ("hash only", 5.0)
    assert baseline(res, "snappy decode 2T", 2) is None


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_kernel_baseline_decodes_every_compressed_page_once(threads):
    """The N-thread decoder baseline (tasks that pull 256-page batches, as the reader runs its
    batches) decodes every blob exactly once, into its own row: the same work as the 1-thread line."""
    from concurrent.futures import ThreadPoolExecutor

    from pagecore.bench.ingest import _kernel_measures
    from pagecore.dumps import _pagecodec

    pages = guest_like_pages(2000, seed=6)
    blobs = _codec_blobs(pages, "snappy")
    assert len(blobs) > 600  # several batches
    seen = []

    def decode(buf, offs, sizes, idx, out, status):
        seen.extend(idx.tolist())
        _pagecodec.unsnappy_pages(buf, offs, sizes, idx, out, status)
        out_ref.append(out)

    out_ref: list = []
    with ThreadPoolExecutor(threads) as pool:
        m = _kernel_measures(blobs, decode, "k", threads, pool)
        seen.clear()
        m[f"k {threads}T"]()
    assert sorted(seen) == list(range(len(blobs)))
    got = out_ref[-1]
    import cramjam

    assert all(got[i].tobytes() == bytes(cramjam.snappy.decompress_raw(b)) for i, b in enumerate(blobs))
