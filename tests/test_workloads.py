"""pagecore.synth.workloads: deterministic access traces that match their own parameters, the
access-trace schema, streaming, and the timelines' Parquet round trip."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow.parquet as pq
import pytest

from pagecore.errors import ConfigError, InputError
from pagecore.sim import HostSpec
from pagecore.synth.workloads import (
    ACCESS_TRACE_SCHEMA,
    Scenario,
    VMWorkload,
    generate,
    read_trace,
    trace_frame,
    write_trace,
)
from pagecore.timelines import read_timeline, write_timeline


def _toucher(**kw):
    vm = VMWorkload(
        name="w",
        os="windows",
        max_mb=32.0,
        boot={"zero": False, "os_mb": 4.0, "boot_s": 2.0},
        background={"mb": 2.0, "period_s": 10.0},
        foreground={
            "period_s": 5.0,
            "write_frac": 1.0,
            "schedule": [[0.0, 1.0, 8.0], [1.0, 2.0, 0.0], [2.0, 3.0, 4.0]],
        },
        zpt_mb_s=4.0,
        **kw,
    )
    return Scenario("t", 3.0, HostSpec(system_mb=256), [vm], seed=5, chunk_s=20.0)


def test_same_seed_same_bytes(tmp_path):
    sc = _toucher()
    digests = []
    for i in range(2):
        p = tmp_path / f"t{i}.parquet"
        write_trace(p, generate(sc), {"scenario": "t"})
        digests.append(hashlib.sha256(p.read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    sc2 = _toucher()
    sc2.seed = 6
    assert not trace_frame(sc).equals(trace_frame(sc2))


def test_chunking_does_not_change_the_trace():
    a = trace_frame(_toucher())
    sc = _toucher()
    sc.chunk_s = 7.0
    b = trace_frame(sc)
    assert len(a) == len(b)
    np.testing.assert_array_equal(np.sort(a["t"].to_numpy()), np.sort(b["t"].to_numpy()))
    key = ["t", "gpfn"]
    assert a.sort_values(key).reset_index(drop=True).equals(b.sort_values(key).reset_index(drop=True))


def test_trace_matches_its_parameters():
    """Each toucher page is touched exactly once per period while its phase runs; the
    background once per its period; the zero page thread zeroes the 8 MB the toucher dirtied,
    once each, when it goes idle; rows are sorted by time."""
    df = trace_frame(_toucher())
    assert df["t"].is_monotonic_increasing
    fg = df[(df.gpfn >= 4 * 256) & ~df.zero]
    first = fg[fg.t < 60]
    counts = first.groupby("gpfn").size()
    assert len(counts) == 8 * 256 and set(counts) == {12}  # 60 s / 5 s
    bg = df[df.gpfn < 2 * 256]
    assert set(bg.groupby("gpfn").size()) == {19}  # 180 s / 10 s, plus the boot-time write
    z = df[df.zero]
    assert len(z) == 8 * 256 and z.gpfn.nunique() == 8 * 256
    assert z.t.min() >= 60 and z.t.max() < 60 + 8 / 4.0 + 1e-9
    third = df[(df.t >= 120) & (df.gpfn >= 4 * 256) & ~df.zero]
    assert third.gpfn.nunique() == 4 * 256


def test_free_on_shrink_zeroes_the_pages_a_phase_gives_up():
    """Hand-worked: phases of 8, 6, 0 and 4 MB over minutes 0-1-2-3-4 at a 4 MB/s zero page
    thread. Without ``free_on_shrink`` only the idle phase at 2 min zeroes the 8 MB dirtied
    before it. With it, the 6 MB phase at 1 min frees and zeroes the 2 MB above 6 MB (0.5 s),
    and the idle phase then zeroes only the 6 MB still dirty; no other row changes."""

    def sc(free):
        vm = VMWorkload(
            name="w",
            os="windows",
            max_mb=32.0,
            boot={"zero": False, "os_mb": 4.0, "boot_s": 2.0},
            foreground={
                "period_s": 5.0,
                "write_frac": 1.0,
                "schedule": [[0.0, 1.0, 8.0], [1.0, 2.0, 6.0], [2.0, 3.0, 0.0], [3.0, 4.0, 4.0]],
            },
            zpt_mb_s=4.0,
        )
        vm.free_on_shrink = free
        return Scenario("t", 4.0, HostSpec(system_mb=256), [vm], seed=5, chunk_s=20.0)

    base, free = trace_frame(sc(False)), trace_frame(sc(True))
    fg0 = 4 * 256  # first foreground frame
    z0, z1 = base[base.zero], free[free.zero]
    assert sorted(z0.gpfn) == list(range(fg0, fg0 + 8 * 256)) and z0.t.min() >= 120
    early, late = z1[z1.t < 120], z1[z1.t >= 120]
    assert sorted(early.gpfn) == list(range(fg0 + 6 * 256, fg0 + 8 * 256))
    assert early.t.min() >= 60 and early.t.max() < 60 + 2 / 4.0 + 1e-9
    assert sorted(late.gpfn) == list(range(fg0, fg0 + 6 * 256))
    assert late.t.max() < 120 + 6 / 4.0 + 1e-9
    key = ["t", "gpfn"]
    pd_eq = base[~base.zero].sort_values(key).reset_index(drop=True)
    assert pd_eq.equals(free[~free.zero].sort_values(key).reset_index(drop=True))


def test_free_on_shrink_is_a_scenario_key():
    from pagecore.synth.workloads import scenario

    cfg = {
        "duration_min": 1.0,
        "host": {"system_mb": 64.0},
        "free_on_shrink": True,
        "vms": [
            {"name": "a", "os": "windows", "max_mb": 64.0},
            {"name": "b", "os": "linux", "max_mb": 64.0},
        ],
    }
    assert [v.free_on_shrink for v in scenario("x", cfg).vms] == [True, True]
    del cfg["free_on_shrink"]
    assert [v.free_on_shrink for v in scenario("x", cfg).vms] == [False, False]


def test_boot_zeroing_touches_every_page_once():
    """OS pages are written during the 4-s load, then the other 6 MB are zeroed at 2 MB/s;
    the balloon driver starts when both are done."""
    vm = VMWorkload(
        name="b", os="windows", max_mb=8.0, boot={"zero": True, "zero_mb_s": 2.0, "os_mb": 2.0, "boot_s": 4.0}
    )
    sc = Scenario("b", 5.0, HostSpec(system_mb=64), [vm], seed=1)
    df = trace_frame(sc)
    z = df[df.zero]
    assert sorted(z.gpfn) == list(range(2 * 256, 8 * 256))
    assert vm.boot_s == pytest.approx(7.0)
    assert z.t.min() >= 4.0 and z.t.max() < 7.0
    assert (df[~df.zero].gpfn < 2 * 256).all()
    assert (df[~df.zero].t < 4.0).all()
    assert vm.spec().balloon_driver_s == pytest.approx(7.0)


def test_schema_and_streaming(tmp_path):
    sc = _toucher()
    p = tmp_path / "t.parquet"
    rows = write_trace(p, generate(sc))
    pf = pq.ParquetFile(p)
    assert pf.schema_arrow.remove_metadata() == ACCESS_TRACE_SCHEMA
    assert pf.metadata.num_row_groups == 9  # 180 s in 20-s chunks
    assert sum(b.num_rows for b in read_trace(p, batch_rows=1000)) == rows


def test_batches_are_bounded_by_chunk():
    """Generation streams: each batch holds only its own ``chunk_s`` seconds of events."""
    sc = _toucher()
    for k, b in enumerate(generate(sc)):
        t = b.column("t").to_numpy()
        assert t.min() >= k * sc.chunk_s and t.max() < (k + 1) * sc.chunk_s


def test_bad_inputs_are_clear(tmp_path):
    with pytest.raises(InputError, match="no such access trace"):
        list(read_trace(tmp_path / "missing.parquet"))
    import pyarrow as pa

    pq.write_table(pa.table({"t": [0.0], "vm": ["a"]}), tmp_path / "x.parquet")
    with pytest.raises(InputError, match="missing column 'gpfn'"):
        list(read_trace(tmp_path / "x.parquet"))
    with pytest.raises(ConfigError, match="os_mb"):
        VMWorkload(name="x", os="linux", max_mb=4.0, boot={"os_mb": 8.0})


def test_config_scenarios_build():
    from pathlib import Path

    from pagecore.config import load_config
    from pagecore.synth.workloads import scenario

    root = Path(__file__).resolve().parents[1]
    cfg = load_config(root / "workflow/config/config.yaml", root / "workflow/schemas/config.schema.yaml")
    for name in ("fig06", "fig07", "fig08"):
        sc = scenario(name, cfg["workloads"][name], seed=cfg["workloads"]["seed"])
        assert sc.duration_s > 0 and len(sc.specs()) >= 1
        assert set(sc.spec_frame().columns) >= {"vm", "max_mb", "min_mb", "shares", "overhead_mb", "start_s"}


def test_timeline_round_trip(tmp_path):
    from pagecore.sim import SimParams, simulate

    sc = _toucher()
    res = simulate(sc.specs(), sc.host, SimParams(duration_s=60.0, record_s=10.0), trace_frame(sc))
    for kind, df in (("vm", res.vms), ("host", res.host), ("events", res.events)):
        write_timeline(tmp_path / f"{kind}.parquet", df, kind)
        back = read_timeline(tmp_path / f"{kind}.parquet", kind)
        assert list(back.columns) == list(df.columns)
        assert len(back) == len(df)
    with pytest.raises(InputError, match="missing column"):
        read_timeline(tmp_path / "host.parquet", "vm")
