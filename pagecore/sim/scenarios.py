"""Glue from config sections to a simulator run (no file I/O).

``sim_params(sim_cfg, scenario)`` turns the ``sim:`` config section (plus the scenario's
``sim.overrides.<name>`` and its τ schedule) into :class:`~pagecore.sim.engine.SimParams`;
:func:`run` replays a scenario's trace. With a sharing mechanism that shares by content
(``sim.mechanisms.sharing: content``), :func:`run` gives the guests the synthetic page contents
of ``sim.contents`` (:func:`pagecore.sim.contents.synthetic_contents`) unless contents are
passed in. A *scenario* is anything with ``name``, ``specs()``,
``host``, ``duration_s`` and ``tau_schedule_min`` (see :class:`pagecore.synth.workloads.Scenario`).
"""

from __future__ import annotations

import copy
import difflib

from pagecore.errors import ConfigError
from pagecore.sim.contents import synthetic_contents
from pagecore.sim.contracts import KINDS, REGISTRY
from pagecore.sim.engine import DEFAULT_MECHANISMS, SimParams, SimResult, simulate


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


#: Scalar settings of the ``sim:`` config a run reads (:func:`sim_params`).
SCALAR_KEYS = ("tau", "seed", "rebalance_s", "record_s", "balloon_in_high", "target_pool", "credit_shared")
#: Sections of the ``sim:`` config a run reads: ``mechanisms`` (kind -> name), ``contents``
#: (:func:`scenario_contents`) and one per mechanism kind (its settings).
SECTION_KEYS = ("mechanisms", "contents", *KINDS)
#: Every keyword ``overrides`` of :func:`run`, :func:`sim_params` and :func:`scenario_contents` may name.
OVERRIDE_KEYS = SCALAR_KEYS + SECTION_KEYS


def check_overrides(sim_cfg: dict, overrides: dict) -> None:
    """Refuse, naming it, an override keyword the run does not read: ``sample_pages=10`` (a
    setting of the ``sampling`` section) or ``mechanism=`` (for ``mechanisms=``) were merged into
    a copy of the config nobody reads, and the run gave the unchanged answer."""
    for key, value in overrides.items():
        if key not in OVERRIDE_KEYS:
            sections = [s for s in SECTION_KEYS if isinstance(sim_cfg.get(s), dict) and key in sim_cfg[s]]
            if sections:
                hint = f"it is a setting of the {sections[0]} section: pass {sections[0]}={{{key!r}: ...}}"
            else:
                close = difflib.get_close_matches(key, OVERRIDE_KEYS, n=1)
                hint = f"did you mean {close[0]}=?" if close else f"overrides are {', '.join(OVERRIDE_KEYS)}"
            raise ConfigError(f"sim override {key}=: not a setting the simulator reads; {hint}")
        if key in SECTION_KEYS and value is not None and not isinstance(value, dict):
            raise ConfigError(
                f"sim override {key}=: expected a mapping of {key} settings (e.g. {key}={{...}}), got {value!r}"
            )


def _config(sim_cfg: dict, scenario, overrides: dict) -> dict:
    check_overrides(sim_cfg, overrides)
    cfg = _merge(sim_cfg, (sim_cfg.get("overrides") or {}).get(scenario.name, {}))
    return _merge(cfg, overrides)


def sim_params(sim_cfg: dict, scenario, **overrides) -> SimParams:
    """SimParams for ``scenario`` from the ``sim:`` config; keyword ``overrides`` replace
    sections (e.g. ``sampling={"sample_pages": 50}``) or scalars (``tau=0.5``); a keyword that is
    not one of :data:`OVERRIDE_KEYS` is refused (:class:`~pagecore.errors.ConfigError`)."""
    cfg = _config(sim_cfg, scenario, overrides)
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
        balloon_in_high=bool(cfg.get("balloon_in_high", False)),
        target_pool=str(cfg.get("target_pool", "high_threshold")),
        credit_shared=bool(cfg.get("credit_shared", True)),
        mechanisms=dict(cfg.get("mechanisms", {})),
        settings={k: dict(cfg.get(k) or {}) for k in KINDS},
    )


def scenario_contents(scenario, sim_cfg: dict, **overrides) -> dict | None:
    """The synthetic page contents the replay of ``scenario`` uses: ``None`` unless the selected
    sharing mechanism shares by content; then :func:`synthetic_contents` of ``sim.contents``
    (seeded by ``sim.contents.seed``, so the guests' contents do not change with ``sim.seed``)."""
    cfg = _config(sim_cfg, scenario, overrides)
    name = {**DEFAULT_MECHANISMS, **(cfg.get("mechanisms") or {})}["sharing"]
    if not getattr(REGISTRY["sharing"].get(name), "uses_contents", False):
        return None
    model = cfg.get("contents") or {}
    return synthetic_contents(scenario, model, int(model.get("seed", cfg.get("seed", 0))))


def run(scenario, sim_cfg: dict, trace, page_contents=None, **overrides) -> SimResult:
    """Replay ``trace`` for ``scenario`` with the ``sim:`` config; ``page_contents`` (VM name ->
    content id per gpfn, see :func:`pagecore.sim.simulate`) replaces the synthetic contents.
    ``overrides`` as in :func:`sim_params` (unknown keywords refused, naming the likely one)."""
    if page_contents is None:
        page_contents = scenario_contents(scenario, sim_cfg, **overrides)
    params = sim_params(sim_cfg, scenario, **overrides)
    return simulate(scenario.specs(), scenario.host, params, trace, page_contents)
