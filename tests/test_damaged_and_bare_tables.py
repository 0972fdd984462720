"""Session 17 audit: page tables that once gave a number with exit 0 and nothing said.

- A table from a damaged dump (``hash --skip-bad-pages``) was used by ``share``, ``ksm``, ``scan``
  and ``host`` without a word of the damage; ``share`` and ``compress`` could not read its dump
  again at all (their error advised ``--skip-bad-pages``, which neither has).
- A table without pagecore metadata (rewritten by pandas) was compared with others as if hashed
  the same way: a keyed table counted against unkeyed ones.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from cli_helpers import cli, one_line_error

from pagecore.pages import hash_dump
from pagecore.pages.tables import check_comparable, damage_of, page_table_metadata

DAMAGE = "hashed from a damaged dump"


@pytest.fixture
def tables(tmp_path):
    """Two raw dumps sharing pages and their tables; the second dump cut 100 bytes into its 4th
    page and hashed with --skip-bad-pages (3 of its 4 pages read)."""
    rng = np.random.default_rng(5)
    pages = rng.integers(0, 256, (8, 4096), dtype=np.uint8)
    pages[1] = pages[0]
    pages[5:7] = 0
    whole = tmp_path / "whole.raw"
    whole.write_bytes(pages.tobytes())
    cut = tmp_path / "cut.raw"
    cut.write_bytes(pages[:3].tobytes() + pages[3, :100].tobytes())  # pages 0-2 whole, then 100 bytes
    out = []
    for dump, name in ((whole, "whole"), (cut, "cut")):
        t = tmp_path / f"{name}.parquet"
        hash_dump(dump, t, name, format="raw", skip_bad_pages=True, show_progress=False)
        out.append(t)
    return out


def test_damage_is_recorded_and_only_for_damaged_tables(tables):
    whole, cut = (page_table_metadata(t) for t in tables)
    assert damage_of(whole) is None
    assert "1 of 4 pages" in damage_of(cut)
    assert damage_of({"pages_skipped": 3}) == "3 unreadable pages were skipped"
    assert "incomplete" in damage_of({"incomplete": True})


@pytest.mark.parametrize(
    "command",
    [["share", "--no-verify"], ["share", "--format", "json"], ["ksm"], ["scan"],
     ["host", "-q", "--memory", "64M", "--verify", "no"], ["compress"]],
)  # fmt: skip
def test_every_command_says_a_table_is_damaged(tables, command):
    whole, cut = map(str, tables)
    p = cli(command[0], whole, cut, *command[1:])
    assert p.returncode == 0, p.stderr
    warned = [line for line in p.stderr.splitlines() if DAMAGE in line]
    assert len(warned) == 1 and "cut.parquet" in warned[0] and "1 of 4 pages" in warned[0]
    assert "whole.parquet" not in p.stderr
    p = cli(command[0], whole, *command[1:])  # an undamaged table alone: not a word
    assert p.returncode == 0 and DAMAGE not in p.stderr


def test_share_reports_the_damage_and_verifies_a_damaged_table(tables):
    """The JSON report lists the damaged table; verification reads its dump as it was hashed
    (skipping the same partial page), so the numbers are exact, not refused."""
    whole, cut = map(str, tables)
    p = cli("share", whole, cut, "--format", "json")
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    assert [d["vm"] for d in rep["damaged_inputs"]] == ["cut"]
    assert rep["verification"]["verified"] is True
    # pages 0-2 of cut repeat whole's 0-2 (whole's 0 and 1 are one content): 11 pages, 2 zero
    assert (rep["total_pages"], rep["zero_pages"]) == (11, 2)
    assert rep["reclaimed_pages"] == 11 - 6  # contents: page 0 (x4), page 2 (x2), zero (x2), 3, 4, 7
    assert "WARNING: cut: " + DAMAGE in cli("share", whole, cut).stdout
    rep = json.loads(cli("share", whole, "--format", "json").stdout)
    assert rep["damaged_inputs"] == []


def test_a_table_without_metadata_is_not_compared_with_others(tables, tmp_path):
    whole, cut = tables
    bare = tmp_path / "bare.parquet"
    pd.read_parquet(cut).to_parquet(bare, index=False)  # pandas keeps the rows, not the metadata
    assert page_table_metadata(bare) == {}
    line = one_line_error(cli("share", "--no-verify", str(whole), str(bare)))
    assert "bare.parquet: has no pagecore metadata" in line and "whole.parquet" in line
    line = one_line_error(cli("share", "--no-verify", str(bare), str(whole)))
    assert "bare.parquet: has no pagecore metadata" in line
    line = one_line_error(cli("host", "-q", "--memory", "64M", "--verify", "no", str(bare), str(whole)))
    assert "no pagecore metadata" in line
    # alone, or with other tables that lack it too, it is compared as given
    p = cli("share", "--no-verify", str(bare))
    assert p.returncode == 0, p.stderr
    bare2 = tmp_path / "bare2.parquet"
    pd.read_parquet(whole).to_parquet(bare2, index=False)
    assert cli("share", "--no-verify", str(bare), str(bare2)).returncode == 0
    # a dump beside it (compress hashes dumps with the default key): refused too
    with pytest.raises(Exception, match="no pagecore metadata"):
        check_comparable([bare, tmp_path / "whole.raw"], [{}, {}])


def test_a_frame_number_no_guest_has_is_refused(tables, tmp_path):
    """A table edited to hold a frame number past x86-64's 52-bit physical addresses was a
    traceback in the large-page analysis; now the table is refused when read."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    whole, _ = tables
    t = pq.read_table(whole)
    i = t.schema.get_field_index("gpfn")
    for top, refused in ((2**40 - 1, False), (2**40, True)):
        g = pc.add(t["gpfn"], pa.scalar(top - int(pc.max(t["gpfn"]).as_py()), pa.uint64()))
        out = tmp_path / f"g{top}.parquet"
        pq.write_table(t.set_column(i, t.schema.field(i), g).replace_schema_metadata(t.schema.metadata), out)
        p = cli("share", "--no-verify", str(out))
        if refused:
            assert "beyond x86-64's 52-bit physical address space" in one_line_error(p)
        else:
            assert p.returncode == 0, p.stderr
