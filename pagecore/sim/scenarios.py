"""Glue from config sections to a simulator run (no file I/O).

``sim_params(sim_cfg, scenario)`` turns the ``sim:`` config section (plus the scenario's
``sim.overrides.<name>`` and its τ schedule) into :class:`~pagecore.sim.engine.SimParams`;
:func:`run` replays a scenario's trace. A *scenario* is anything with ``name``, ``specs()``,
``host``, ``duration_s`` and ``tau_schedule_min`` (see :class:`pagecore.synth.workloads.Scenario`).
"""

from __future__ import annotations

import copy

from pagecore.sim.contracts import KINDS
from pagecore.sim.engine import SimParams, SimResult, simulate


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def sim_params(sim_cfg: dict, scenario, **overrides) -> SimParams:
    """SimParams for ``scenario`` from the ``sim:`` config; keyword ``overrides`` replace
    sections (e.g. ``sampling={"sample_pages": 50}``) or scalars (``tau=0.5``)."""
    cfg = _merge(sim_cfg, (sim_cfg.get("overrides") or {}).get(scenario.name, {}))
    cfg = _merge(cfg, overrides)
    tau = float(cfg.get("tau", 0.75))
    sched = [(60.0 * a, float(x)) for a, x in getattr(scenario, "tau_schedule_min", [])]
    if "tau" in overrides:  # an explicit τ replaces the scenario's schedule
        sched = []
    return SimParams(
        duration_s=scenario.duration_s,
        seed=int(cfg.get("seed", 0)),
        tau=tau,
        tau_schedule=sched,
        rebalance_s=float(cfg.get("rebalance_s", 15.0)),
        record_s=float(cfg.get("record_s", 5.0)),
        balloon_in_high=bool(cfg.get("balloon_in_high", True)),
        target_pool=str(cfg.get("target_pool", "high_threshold")),
        credit_shared=bool(cfg.get("credit_shared", True)),
        mechanisms=dict(cfg.get("mechanisms", {})),
        settings={k: dict(cfg.get(k) or {}) for k in KINDS},
    )


def run(scenario, sim_cfg: dict, trace, **overrides) -> SimResult:
    """Replay ``trace`` for ``scenario`` with the ``sim:`` config."""
    return simulate(scenario.specs(), scenario.host, sim_params(sim_cfg, scenario, **overrides), trace)
