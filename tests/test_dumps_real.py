"""Readers against real files written by QEMU 7.2 and makedumpfile 1.7.2 for one paused guest.

The proof that each reader is right: the raw image (QMP ``pmemsave``), the ELF core and the
kdump files (QMP ``dump-guest-memory``; makedumpfile's re-assembly and ``-d 31`` dumps) and
the LiME file of the same paused guest give identical (gpfn, page bytes), frame for frame.
The fixtures are cropped to a few guest-physical windows (data/README.md, "Real QEMU
dumps"); outside them the raw image is zero and the other formats have no pages.
"""

from __future__ import annotations

import numpy as np
import pytest
from dumps_helpers import FIXTURE_ARCHIVE, PS, read_all, unpack_fixture

from pagecore.dumps import detect_format, open_dump
from pagecore.pages.ingest import hash_dump
from pagecore.pages.tables import page_table_metadata

pytestmark = pytest.mark.skipif(not FIXTURE_ARCHIVE.exists(), reason=f"{FIXTURE_ARCHIVE} not present")


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    d, manifest = unpack_fixture(tmp_path_factory.mktemp("real"))
    raw = read_all(d / "guest.raw")[0]
    return d, manifest, raw


def _window_frames(manifest) -> set[int]:
    return {g for lo, hi in manifest["windows_pfn"] for g in range(lo, hi)}


def test_manifest_and_formats(real):
    d, manifest, _ = real
    assert manifest["formats_offered"]  # recorded by the capture
    for name, info in manifest["files"].items():
        assert detect_format(d / name) == info["format"], name


@pytest.mark.parametrize("name", ["guest.elf", "guest.lime", "guest.kdump-zlib.flat", "guest.kdump-zlib.kdump"])
def test_every_format_gives_the_raw_pages(real, name):
    """QEMU's ELF and kdump, makedumpfile's re-assembly and LiME: exactly the raw image's pages."""
    d, manifest, raw = real
    got, stats = read_all(d / name)
    frames = _window_frames(manifest)
    assert set(got) == frames
    assert all(got[g] == raw[g] for g in frames)
    assert stats.pages_read == len(frames) and stats.pages_skipped == 0
    if "kdump" in name:
        # every frame of the guest outside the windows is reported as excluded
        assert stats.pages_excluded > 0
    # raw is zero outside the windows, so nothing is lost there
    assert all(not any(raw[g]) for g in set(raw) - frames)


@pytest.mark.parametrize("name", ["guest.d31-zlib.kdump", "guest.d31-lzo.kdump", "guest.d31-zlib.flat"])
def test_makedumpfile_dump_level_31(real, name):
    """makedumpfile -d 31 (zlib, lzo, flattened): dumped pages match raw, the rest are counted."""
    d, manifest, raw = real
    path = d / name
    if not path.exists():
        pytest.skip(f"{name} not in this capture")
    got, stats = read_all(path)
    frames = _window_frames(manifest)
    assert set(got) <= frames
    assert all(got[g] == raw[g] for g in got)
    # level 31 left out some frames inside the windows too (free, cache, user, zero pages);
    # they were in the raw image, and the reader reports them as excluded, not lost
    assert len(frames - set(got)) > 100
    with open_dump(path) as r:
        for _ in r:
            pass
        assert r.metadata()["dump_level"] == 31
        bm_frames = r.stats.pages_read + r.stats.pages_excluded
    assert bm_frames == stats.pages_read + stats.pages_excluded >= len(frames)


def test_variants_agree_with_each_other(real):
    d, manifest, _ = real
    ref = read_all(d / "guest.elf")[0]
    for name in manifest["files"]:
        if name in ("guest.raw",) or ".d31-" in name:
            continue
        assert read_all(d / name)[0] == ref, name


def test_lzo_pages_really_are_lzo(real):
    """The d31-lzo fixture exercises the lzo codec (not only raw pages)."""
    d, _, _ = real
    path = d / "guest.d31-lzo.kdump"
    if not path.exists():
        pytest.skip("no lzo dump in this capture")
    from pagecore.dumps.kdump import FLAG_LZO, PAGE_DESC, KdumpReader

    r = KdumpReader(path)
    h = r._parse(r._source())
    n = int(np.unpackbits(np.asarray(r._source().read(h["bitmap2"], h["bitmap2"] - h["bitmap1"]))).sum())
    descs = np.frombuffer(bytes(r._source().read(h["desc_at"], n * PAGE_DESC.itemsize)), PAGE_DESC)
    r.close()
    assert np.count_nonzero(descs["flags"] == FLAG_LZO) > n // 2


@pytest.mark.parametrize("name", ["guest.elf", "guest.kdump-zlib.flat", "guest.d31-lzo.kdump"])
def test_hash_real_dump_to_page_table(real, tmp_path, name):
    d, manifest, _raw = real
    if not (d / name).exists():
        pytest.skip(f"{name} not in this capture")
    out = tmp_path / "p.parquet"
    meta = hash_dump(d / name, out, "guest", show_progress=False)
    stored = page_table_metadata(out)
    assert stored["format"] == manifest["files"][name]["format"]
    assert stored["pages_read"] == meta["pages_read"] > 0
    assert stored["source_size"] == (d / name).stat().st_size
    assert "pages_excluded" in stored and stored["pages_excluded"] == meta["pages_excluded"]
    assert PS == 4096
