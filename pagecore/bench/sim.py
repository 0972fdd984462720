"""Benchmarks of the replayed memory manager (not tests).

``pagecore bench sim`` prints

* page-reference events replayed per second through the sampling/touch path
  (:func:`pagecore.sim.memory.replay`) on one core, for a 320 MB VM in steady state (every page
  backed, 100 pages sampled) and while first touches allocate machine memory;
* the wall time of generating and of replaying a scenario (default: Figure 8, five VMs, 90 min):
  the workflow job's path (``workflow/scripts/sim_replay.py``: the Parquet trace read with
  :func:`pagecore.synth.read_trace` and replayed), beside reading the trace alone and replaying
  it from memory, in the same run.

Baselines, measured in the same run: reading the touch path's event arrays (``numpy.sum`` over
them: the least any replay of them costs), and reading the scenario's trace file alone.

Goals (issue 6): >= 10 M events/s; the Figure 8 replay in seconds.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from pagecore._argtypes import positive_int
from pagecore.bench import check_dir, check_disk
from pagecore.sim import memory as m


def _replay_rate(n_events: int, pages: int, steady: bool, seed: int = 0) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed)
    mem = m.VMMemory(pages)
    host = np.array([1 << 40], np.int64)
    ws = int(pages * 0.6)
    t = np.sort(rng.random(n_events)) * 1000.0
    g = rng.integers(0, ws, n_events).astype(np.uint64)
    f = (rng.random(n_events) < 0.3).astype(np.uint8)
    if steady:
        warm = np.arange(pages, dtype=np.uint64)
        mem.replay(np.zeros(pages), warm, np.ones(pages, np.uint8), 0, 1.0, 0, host)
    mem.sampled[rng.choice(pages, 100, replace=False)] = 1
    # compile / warm caches on a prefix, then time the whole array
    mem.replay(t[:1000], g[:1000], f[:1000], 0, 1e18, 1, host)
    t0 = time.perf_counter()
    i = mem.replay(t, g, f, 0, 1e18, 2, host)
    dt = time.perf_counter() - t0
    if i != n_events:
        raise RuntimeError(f"the touch path replayed {i:,} of {n_events:,} events")
    read = min(_timed(lambda: (t.sum(), g.sum(), f.sum())) for _ in range(3))  # the baseline
    return n_events / dt, dt, read


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _scenario(config: Path, schema: Path, name: str):
    from pagecore.config import load_config
    from pagecore.synth.workloads import scenario

    cfg = load_config(config, schema)
    w = cfg["workloads"]
    return scenario(name, w[name], seed=w["seed"], chunk_s=w["chunk_s"]), cfg["sim"]


def main(argv: list[str] | None = None) -> int:
    root = Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser(prog="pagecore bench sim", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--events", type=positive_int, default=20_000_000, help="events for the touch-path benchmark (default 20M)"
    )
    ap.add_argument(
        "--scenario", default="fig08", choices=["fig06", "fig07", "fig08", "none"], help="scenario to replay end to end"
    )
    ap.add_argument("--repeat", type=positive_int, default=2, help="scenario runs, the best counts (default 2)")
    ap.add_argument("--tmpdir", default=None, help="where the scenario's trace file goes (default: system temp)")
    ap.add_argument("--config", type=Path, default=root / "workflow/config/config.yaml")
    ap.add_argument("--schema", type=Path, default=root / "workflow/schemas/config.schema.yaml")
    args = ap.parse_args(argv)
    from pagecore.bench import check_memory

    # times, frames (and their int64 draw), flags (and their float draw): about 40 bytes an event
    check_memory(48 * args.events, f"bench sim --events {args.events:,}", "give fewer --events")

    tmpdir = check_dir("--tmpdir", args.tmpdir) if args.scenario != "none" else None

    pages = 320 * 256
    for steady in (True, False):
        rate, dt, read = _replay_rate(args.events, pages, steady)
        what = "steady state (all pages backed)" if steady else "first touches allocating"
        print(
            f"touch path, {what}: {args.events / 1e6:.2f} M events in {dt:.3f} s"
            f" = {rate / 1e6:.1f} M events/s (goal >= 10); reading the events alone {read:.3f} s"
            f" = {read / dt:.2f} x the replay's time"
        )
    if args.scenario != "none":
        import tempfile

        from pagecore.sim import scenarios
        from pagecore.synth.workloads import generate, read_trace, write_trace

        sc, sim_cfg = _scenario(args.config, args.schema, args.scenario)
        t0 = time.perf_counter()
        batches = list(generate(sc))
        t_gen = time.perf_counter() - t0
        n = sum(b.num_rows for b in batches)
        nbytes = sum(b.nbytes for b in batches)
        check_disk(tmpdir, nbytes, f"bench sim --scenario {args.scenario}", "give another --tmpdir")
        scenarios.run(sc, sim_cfg, iter(batches[:1]))  # compile outside the timing
        with tempfile.TemporaryDirectory(prefix="pagecore-bench-sim-", dir=tmpdir) as d:
            trace = Path(d) / "trace.parquet"
            write_trace(trace, batches)  # as the workflow's trace rule writes it
            best = {"read": float("inf"), "job": float("inf"), "memory": float("inf")}
            runs: list = []
            for _ in range(args.repeat):  # in turns, so a slow period of the host slows each alike
                best["read"] = min(best["read"], _timed(lambda: sum(b.num_rows for b in read_trace(trace))))
                best["job"] = min(best["job"], _timed(lambda: scenarios.run(sc, sim_cfg, read_trace(trace))))
                best["memory"] = min(
                    best["memory"], _timed(lambda: runs.append(scenarios.run(sc, sim_cfg, iter(batches))))
                )
        res = runs[-1]  # a timed replay's result (replaying once more only to count its events doubled the work)
        print(
            f"{args.scenario} scenario: {len(sc.vms)} VMs, {sc.duration_min:g} min, {n / 1e6:.1f} M events "
            f"({len(res.events)} events logged); trace generated in {t_gen:.1f} s; best of {args.repeat}:"
        )
        job, read, mem = best["job"], best["read"], best["memory"]
        print(
            f"  the job's path (read the trace file + replay, as sim_replay.py): {job:.2f} s = "
            f"{n / job / 1e6:.1f} M events/s end to end"
        )
        print(f"  reading the trace file alone (the baseline): {read:.2f} s = {read / job:.2f} x the job's time")
        print(f"  replaying the trace from memory: {mem:.2f} s = {mem / job:.2f} x the job's time")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
