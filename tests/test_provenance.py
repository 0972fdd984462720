"""Provenance travels with every output: page tables, timelines and JSON reports."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq

import pagecore
from pagecore.experiments import analyze_page_tables
from pagecore.pages import page_table_frame, read_page_table, read_page_tables
from pagecore.pages.tables import write_page_table
from pagecore.timelines import read_timeline, write_timeline


def _tables(tmp_path):
    paths = []
    for i, vm in enumerate(("a", "b")):
        p = tmp_path / f"{vm}.parquet"
        h = np.array([1, 2, 3, 3 + i], np.uint64)
        meta = {"source_path": f"/dumps/{vm}.raw", "pages_read": 4, "hash_only": True, "hash_bits": 64}
        write_page_table(p, vm, np.arange(4, dtype=np.uint64), h, np.zeros(4, bool), meta)
        paths.append(p)
    return paths


def test_page_table_metadata_is_in_the_arrow_schema(tmp_path):
    a, b = _tables(tmp_path)
    schema = pq.read_schema(a)  # plain pyarrow, no pagecore reader
    assert schema.metadata is not None
    meta = json.loads(schema.metadata[b"pagecore"])
    assert meta["vm"] == "a" and meta["pages_read"] == 4 and meta["pagecore_version"] == pagecore.__version__
    assert schema.field("gpfn").metadata[b"unit"] == b"page (4096 bytes)"
    assert json.loads(read_page_table(a).schema.metadata[b"pagecore"])["source_path"] == "/dumps/a.raw"
    both = read_page_tables([a, b])
    assert [m["vm"] for m in json.loads(both.schema.metadata[b"pagecore"])] == ["a", "b"]
    assert both.schema.field("gpfn").metadata[b"unit"] == b"page (4096 bytes)"


def test_page_table_frame_attrs(tmp_path):
    a, b = _tables(tmp_path)
    df = page_table_frame(a)
    assert df.attrs["pagecore"]["vm"] == "a" and len(df) == 4
    df = page_table_frame([a, b])
    assert [m["source_path"] for m in df.attrs["pagecore"]] == ["/dumps/a.raw", "/dumps/b.raw"]


def test_timeline_provenance_and_units(tmp_path):
    import pandas as pd

    host = pd.DataFrame(
        {"t": [0.0, 5.0], "free": [10.0, 9.0], "state": ["high", "high"], "tau": [0.75, 0.75],
         "vm_machine": [1.0, 2.0], "overhead": [0.0, 0.0], "esx": [1.0, 1.0], "system": [12.0, 12.0]}
    )  # fmt: skip
    path = tmp_path / "host.parquet"
    write_timeline(path, host, "host", {"scenario": "fig07", "inputs": ["results/traces/fig07.parquet"]})
    schema = pq.read_schema(path)
    meta = json.loads(schema.metadata[b"pagecore"])
    assert meta == {"kind": "host", "pagecore_version": pagecore.__version__, "scenario": "fig07",
                    "inputs": ["results/traces/fig07.parquet"]}  # fmt: skip
    assert schema.field("free").metadata[b"unit"] == b"MiB" and schema.field("t").metadata[b"unit"] == b"s"
    assert read_timeline(path, "host").attrs["pagecore"]["scenario"] == "fig07"


def test_sharing_report_names_version_and_inputs(tmp_path):
    a, b = _tables(tmp_path)
    rep = analyze_page_tables([a, b], verify="no")
    assert rep["pagecore_version"] == pagecore.__version__
    assert [(i["page_table"], i["vm"], i["source_path"]) for i in rep["inputs"]] == [
        (str(a), "a", "/dumps/a.raw"),
        (str(b), "b", "/dumps/b.raw"),
    ]
    assert rep["reclaimed_pages"] == 4  # a: 1 2 3 3, b: 1 2 3 4 -> one copy each of 1, 2 and two of 3 freed


def test_same_table_same_bytes(tmp_path):
    """The metadata written at close (schema included) keeps page tables byte-for-byte reproducible."""
    written = []
    for sub in ("one", "two"):
        (tmp_path / sub).mkdir()
        written.append(_tables(tmp_path / sub)[0].read_bytes())
    assert written[0] == written[1]
