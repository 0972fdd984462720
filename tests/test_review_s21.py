"""Session 21: defects found re-reading sessions 19-20's work (each test fails on the code before)."""

from __future__ import annotations

import re

from pagecore import PAGE_SIZE


def test_share_report_never_prints_a_negative_time(capsys):
    """The "by difference" rows of ``bench count --verify`` are one best-of time minus others,
    each the best of separate runs: when the parts' best runs were faster than the whole's, the
    report printed a negative time (e.g. ``-0.004``) as if it were a measurement. Such a row now
    says it is below the run-to-run spread, and still shows the difference."""
    from pagecore.bench.count import print_share

    r = {"pages": 1000, "file_bytes": 1000 * PAGE_SIZE, "read": (0.001, 0.001), "share_no_verify": (0.020, 0.02)}
    r.update(load=(0.012, 0.012), count=(0.012, 0.012), verify=(0.030, 0.03), share_verify=(0.045, 0.045))
    r.update(bytes_compared=600 * PAGE_SIZE, pages_compared=600)
    print_share(4, r, 1)
    out = capsys.readouterr().out
    rest = next(ln for ln in out.splitlines() if ln.startswith("  the rest"))
    extra = next(ln for ln in out.splitlines() if ln.startswith("  minus share --no-verify"))
    for line, diff in ((rest, -0.004), (extra, -0.005)):
        assert not re.search(r"\s-\d+\.\d+\s*$", line) and re.search(r"\s< 0\s", line), line
        assert f"{diff:.3f} s" in line and "run-to-run spread" in line, line
