"""Benchmarks of the replayed memory manager (not tests).

``pagecore bench sim`` prints

* page-reference events replayed per second through the sampling/touch path
  (:func:`pagecore.sim.memory.replay`) on one core, for a 320 MB VM in steady state (every page
  backed, 100 pages sampled) and while first touches allocate machine memory;
* the wall time of generating and of replaying a scenario (default: Figure 8, five VMs, 90 min).

Goals (issue 6): >= 10 M events/s; the Figure 8 replay in seconds.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from pagecore._argtypes import positive_int
from pagecore.sim import memory as m


def _replay_rate(n_events: int, pages: int, steady: bool, seed: int = 0) -> tuple[float, float]:
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
    assert i == n_events
    return n_events / dt, dt


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
    ap.add_argument("--config", type=Path, default=root / "workflow/config/config.yaml")
    ap.add_argument("--schema", type=Path, default=root / "workflow/schemas/config.schema.yaml")
    args = ap.parse_args(argv)
    from pagecore.bench import check_memory

    # times, frames (and their int64 draw), flags (and their float draw): about 40 bytes an event
    check_memory(48 * args.events, f"bench sim --events {args.events:,}", "give fewer --events")

    pages = 320 * 256
    for steady in (True, False):
        rate, dt = _replay_rate(args.events, pages, steady)
        what = "steady state (all pages backed)" if steady else "first touches allocating"
        print(
            f"touch path, {what}: {args.events / 1e6:.0f} M events in {dt:.2f} s"
            f" = {rate / 1e6:.1f} M events/s (goal >= 10)"
        )
    if args.scenario != "none":
        from pagecore.sim import scenarios
        from pagecore.synth.workloads import generate

        sc, sim_cfg = _scenario(args.config, args.schema, args.scenario)
        t0 = time.perf_counter()
        batches = list(generate(sc))
        t_gen = time.perf_counter() - t0
        n = sum(b.num_rows for b in batches)
        scenarios.run(sc, sim_cfg, iter(batches[:1]))  # compile outside the timing
        t0 = time.perf_counter()
        res = scenarios.run(sc, sim_cfg, iter(batches))
        t_sim = time.perf_counter() - t0
        print(
            f"{args.scenario} scenario: {len(sc.vms)} VMs, {sc.duration_min:g} min, {n / 1e6:.1f} M events; "
            f"trace generated in {t_gen:.1f} s, replayed in {t_sim:.1f} s"
            f" ({n / t_sim / 1e6:.1f} M events/s end to end, "
            f"{len(res.events)} events logged)"
        )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
