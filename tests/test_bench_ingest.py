"""The ingest benchmark's codec baselines decode exactly what the kdump files hold compressed."""

import re

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


def test_paired_ratio_is_the_median_of_the_ratios_within_each_round():
    """A slow period of the host that spans one round slows the reader and its baseline alike:
    the paired ratio does not move, while the best of each taken apart would pair the baseline's
    fast round with the reader's slow one."""
    from pagecore.bench.ingest import paired

    rounds = {
        "base": [(1.0, 2.0), (2.0, 4.0), (1.1, 2.2)],  # round 2: the host at half speed
        "reader": [(1.25, 2.5), (2.5, 5.0), (1.1 / 0.8, 2.2 / 0.8)],
    }
    wall, cpu = paired(rounds, "reader", "base")
    assert wall == pytest.approx(0.8) and cpu == pytest.approx(0.8)
    rounds["reader"][0] = (2.5, 5.0)  # one round of the reader alone slowed: the median holds
    assert paired(rounds, "reader", "base") == pytest.approx((0.8, 0.8))
    rounds["reader"][2] = (2.2, 4.4)  # two of three slowed: now it shows
    assert paired(rounds, "reader", "base") == pytest.approx((0.5, 0.5))
    with pytest.raises(ValueError):  # rounds must pair up
        paired({"base": [(1.0, 1.0)], "reader": []}, "reader", "base")


def test_main_prints_a_paired_ratio_for_every_reader(capsys):
    """The whole benchmark at a tiny size: every reader's line carries both ratios and the
    paired one, each a number (timings at this size mean nothing; only the report is checked)."""
    from pagecore.bench.ingest import main

    assert main(["--mib", "2", "--repeat", "2"]) == 0
    out = capsys.readouterr().out
    readers = [line for line in out.splitlines() if "ingest+hash" in line or "ingest only" in line]
    assert len(readers) == 3 + 2 * 5  # raw, ELF, LiME; five kdump files read with and without the hash
    for line in readers:  # ratio, CPU ratio, then the paired wall / CPU ratios
        assert re.search(r"\d\.\d\d\s+\d\.\d\d\s+\d+\.\d\d /\s*\d+\.\d\d\s+\S", line), line
