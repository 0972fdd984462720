"""The check's THP view of the walk (walk_thp) on hand-built host views."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pagecore.qemu.ksmcheck import walk_history, walk_thp


def table(vm, n, mapping, thp, zero, present=None, zpage=None):
    return pd.DataFrame(
        {
            "vm": vm,
            "gpfn": np.arange(n, dtype=np.uint64),
            "hash": np.where(zero, 0, np.arange(1, n + 1)).astype(np.uint64),
            "zero": zero,
            "host_present": np.ones(n, bool) if present is None else present,
            "host_thp": thp,
            "host_zero_page": np.zeros(n, bool) if zpage is None else zpage,
            "host_ksm": np.zeros(n, bool),
            "mapping": np.full(n, mapping, np.uint64),
        }
    )


def test_blocks_follow_2mib_host_addresses_and_the_walk():
    # 1024 pages of a mapping at 2 MiB: pages 0-511 one huge page, 512-1023 the next; the
    # second half is not THP-backed; page 3 is not present (not walked), pages 5 and 600 zero
    n = 1024
    thp = np.r_[np.ones(512, bool), np.zeros(512, bool)]
    zero = np.zeros(n, bool)
    zero[[5, 600]] = True
    present = np.ones(n, bool)
    present[3] = False
    t0 = table("g0", n, 2 << 20, thp, zero, present)
    # a second process whose mapping starts 1 MiB into a huge page: its first 256 pages end
    # that huge page, the next 512 fill another
    t1 = table("g1", 768, (4 << 20) + (1 << 20), np.ones(768, bool), np.zeros(768, bool))
    hist, _ = walk_history([t0, t1], thp_zero_merge=False)
    b = walk_thp([t0, t1], thp_zero_merge=False)
    assert len(b.block) == hist.pages == n - 1 + 768
    blk0, blk1 = b.block[: n - 1], b.block[n - 1 :]
    assert (blk0[:511] == blk0[0]).all() and (blk0[511:] == -1).all()  # page 3 left out of the walk
    assert len(set(blk1[:256])) == 1 and len(set(blk1[256:])) == 1 and blk1[0] != blk1[256]
    assert len({blk0[0], blk1[0], blk1[256]}) == 3  # one id space over the processes
    assert np.flatnonzero(b.zero).tolist() == [4]  # page 5 (index 4 in the walk); page 600 is not in a THP


def test_no_thp_view_without_huge_pages_or_when_zero_pieces_merge():
    t = table("g0", 16, 1 << 21, np.zeros(16, bool), np.zeros(16, bool))
    assert walk_thp([t], thp_zero_merge=False) is None
    t2 = table("g0", 16, 1 << 21, np.ones(16, bool), np.zeros(16, bool))
    assert walk_thp([t2], thp_zero_merge=True) is None
    assert walk_thp([t2], thp_zero_merge=False, use_zero_pages=True) is None
    assert walk_thp([t2], thp_zero_merge=False) is not None
