"""Issue 14 item 6: the Figure 2 diagnostic — how much cache the paper's ballooning overhead needs."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from pagecore.experiments import fig02_required_cache_loss, fit_fig02_cost
from pagecore.experiments.reclaim import cost_model, guest_and_trace, paper_fig02
from pagecore.sim.guestcache import PAGES_PER_MB, replay

ROOT = Path(__file__).resolve().parents[1]
RC = yaml.safe_load((ROOT / "workflow/config/config.yaml").read_text())["reclaim"]


def test_needed_loss_brackets_the_papers_overhead():
    rc = copy.deepcopy(RC)
    rc["trace"]["refs"] = 200_000  # small trace: the check is the bisection, not the numbers
    fit = fit_fig02_cost(rc)
    t = fig02_required_cache_loss(rc, fit, sizes_mb=[128, 224], tol_pages=4)
    assert list(t.vm_mb) == [128, 224] and list(t.balloon_mb) == [128.0, 32.0]
    guest, pages, write = guest_and_trace(rc)
    cost = cost_model(fit)
    warm = int(guest.warmup_fraction * len(pages))
    p = paper_fig02().set_index("vm_mb")
    for _, r in t.iterrows():
        conf = guest.cache_pages(int(r.vm_mb))
        c = cost.throughput_mbps(replay(pages, write, conf, 0, warm, 0))
        loss = round(r.needed_loss_mb * PAGES_PER_MB)

        def over(x, conf=conf, c=c):
            return 100 * (c - cost.throughput_mbps(replay(pages, write, conf - x, 0, warm, 0))) / c

        assert over(loss) >= p.at[r.vm_mb, "overhead_pct"] > over(loss - 4)
        # our own loss is the boot-sized descriptors: (256 - M) MB x 68 B / 4 KB
        assert r.ours_loss_mb == pytest.approx(r.balloon_mb * 68 / 4096, abs=2 / PAGES_PER_MB)
        assert r.needed_b_per_ballooned_page == pytest.approx(r.needed_loss_mb * 4096 / r.balloon_mb)
    assert (t.boot_tables_b_per_page == 74.0).all()
