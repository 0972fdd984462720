"""Synthetic Figure 4 guests: determinism, class sizes, and sharing equal to the model's own
expectation."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import JIT_DISABLED

from pagecore import paper
from pagecore.pages.hashing import hash_pages
from pagecore.sharing import sharing_report
from pagecore.synth.fig04 import FIG04_DEFAULTS, Fig04Model, calibrate_fig04

ROOT = Path(__file__).resolve().parents[1]
MB_PAGES = 256


def small_model(**kw):
    base = dict(
        mem_mb=0.5 if JIT_DISABLED else 4.0,
        zero=0.07,
        intra_dup=0.1,
        intra_dup_groups=0.04,
        common=0.4,
        variant=0.15,
        variants=4,
        seed=7,
    )
    base.update(kw)
    return Fig04Model(**base)


def _vm_hashes(model, vm):
    hs, zs = [], []
    for _, pages in model.iter_pages(vm, chunk_pages=97):
        h, z = hash_pages(pages)
        hs.append(h)
        zs.append(z)
    return np.concatenate(hs), np.concatenate(zs)


def test_same_seed_same_bytes_different_seed_different(tmp_path):
    m = small_model()
    a, b = tmp_path / "a.raw", tmp_path / "b.raw"
    m.write_raw(0, a)
    m.write_raw(0, b, chunk_pages=33)
    assert a.read_bytes() == b.read_bytes()
    assert a.stat().st_size == m.pages * 4096
    m2 = small_model(seed=8)
    c = tmp_path / "c.raw"
    m2.write_raw(0, c)
    assert hashlib.sha256(c.read_bytes()).digest() != hashlib.sha256(a.read_bytes()).digest()


def test_class_counts_match_fractions():
    m = small_model()
    c = m.counts()
    assert sum(c.values()) == m.pages
    for k in ("zero", "intra_dup", "common", "variant"):
        assert abs(c[k] - getattr(m, k) * m.pages) <= 0.5
    content, _patch, _pos, cls = m.layout(0)
    assert np.bincount(cls, minlength=5).tolist() == [
        c[k] for k in ("zero", "intra_dup", "common", "variant", "private")
    ]
    assert (content == 0).sum() == c["zero"]


def test_layout_is_a_permutation_per_vm():
    m = small_model()
    c0, *_ = m.layout(0)
    c1, *_ = m.layout(1)
    assert not np.array_equal(c0, c1)  # different physical placement and private data


@pytest.mark.parametrize("n_vms", [1, 2, 3])
def test_sharing_matches_model_expectation(n_vms):
    m = small_model()
    hs, zs = zip(*[_vm_hashes(m, v) for v in range(n_vms)], strict=True)
    rep = sharing_report(np.concatenate(hs), np.concatenate(zs), vms=n_vms)
    exp = m.expected(n_vms)
    assert rep.total_pages == exp["total_pages"]
    assert rep.zero_pages == exp["zero_pages"]
    # only the variant draws are random: bound the error by their count
    v = m.counts()["variant"]
    slack = 0 if n_vms == 1 else 4 * np.sqrt(v * n_vms) + 1
    assert abs(rep.shared_pages - exp["shared_pages"]) <= slack
    assert abs(rep.reclaimed_pages - exp["reclaimed_pages"]) <= slack
    if n_vms == 1:
        assert rep.shared_pages == exp["shared_pages"] and rep.reclaimed_pages == exp["reclaimed_pages"]


def test_variant_pages_are_near_duplicates():
    m = small_model(zero=0, intra_dup=0, intra_dup_groups=0, common=0, variant=1.0, variants=3)
    _, pages = next(m.iter_pages(0))
    _, pages1 = next(m.iter_pages(1))
    words = pages.view(np.uint64)
    # slot i in VM 0 vs VM 1 (same slot ordering before the permutation): compare via layout
    c0, *_ = m.layout(0)
    c1, *_ = m.layout(1)
    i0 = int(np.flatnonzero(c0 == c0[0])[0])
    i1 = int(np.flatnonzero(c1 == c0[0])[0])
    diff = (words[i0] != pages1.view(np.uint64)[i1]).sum()
    assert diff in (0, 8)  # same version, or one of them patched in VARIANT_WORDS words


def test_invalid_parameters():
    with pytest.raises(ValueError, match="exceed 1"):
        Fig04Model(zero=0.5, common=0.6)
    with pytest.raises(ValueError, match="fraction"):
        Fig04Model(zero=-0.1)
    with pytest.raises(ValueError, match="intra_dup_groups"):
        Fig04Model(intra_dup=0.01, intra_dup_groups=0.02)


def _fit_from_paper():
    p = paper.FIG04.set_index("vms")
    return calibrate_fig04(
        mem_mb=paper.FIG04_TEXT["vm_mb_configured"],
        zero_1=p.at[1, "zero_mb"],
        shared_1=p.at[1, "shared_mb"],
        reclaimed_1=p.at[1, "reclaimed_mb"],
        shared_2=p.at[2, "shared_mb"],
        shared_pct_n=p.at[10, "shared_pct"],
        n=10,
        variants=FIG04_DEFAULTS["variants"],
    )


def test_calibration_reproduces_the_defaults_and_config():
    """The config's fractions are what calibrate_fig04 gives for the paper's fitted points."""
    fit = _fit_from_paper()
    cfg = yaml.safe_load((ROOT / "workflow/config/config.yaml").read_text())["synth"]["fig04"]
    for k, v in fit.items():
        assert FIG04_DEFAULTS[k] == pytest.approx(v, abs=5e-5), k
        assert cfg["fractions"][k] == FIG04_DEFAULTS[k], k
    assert cfg["variants"] == FIG04_DEFAULTS["variants"]
    assert cfg["seed"] == FIG04_DEFAULTS["seed"] and cfg["mem_mb"] == FIG04_DEFAULTS["mem_mb"]


def test_calibrated_model_hits_its_fitted_points():
    m = Fig04Model(**FIG04_DEFAULTS)
    p = paper.FIG04.set_index("vms")
    e1, e2 = m.expected(1), m.expected(2)
    assert e1["zero_pages"] / MB_PAGES == pytest.approx(p.at[1, "zero_mb"], abs=0.01)
    assert e1["shared_pages"] / MB_PAGES == pytest.approx(p.at[1, "shared_mb"], abs=0.01)
    assert e1["reclaimed_pages"] / MB_PAGES == pytest.approx(p.at[1, "reclaimed_mb"], abs=0.01)
    assert e2["shared_pages"] / MB_PAGES == pytest.approx(p.at[2, "shared_mb"], abs=0.01)


@pytest.mark.skipif(JIT_DISABLED, reason="too slow without the JIT")
def test_large_guest_streams_with_bounded_memory(tmp_path):
    """Writing a 64 MB guest allocates about one chunk plus the per-page layout, not the guest."""
    import tracemalloc

    m = Fig04Model(**{**FIG04_DEFAULTS, "mem_mb": 64})
    m.write_raw(0, tmp_path / "warm.raw", chunk_pages=256)  # compile outside the measurement
    tracemalloc.start()
    m.write_raw(1, tmp_path / "g.raw", chunk_pages=256)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert (tmp_path / "g.raw").stat().st_size == 64 << 20
    layout = m.pages * 8 * 6  # content, patch, position, class and permutation arrays
    assert peak < 3 * 256 * 4096 + layout, peak  # a 1 MiB chunk (plus its bytes copy) and the layout
