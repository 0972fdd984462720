"""Workflow configuration validation with errors that name the offending key."""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

import jsonschema
import yaml

from pagecore.errors import ConfigError


def _key_path(err: jsonschema.ValidationError) -> str:
    parts = [str(p) if not isinstance(p, int) else f"[{p}]" for p in err.absolute_path]
    key = ".".join(parts).replace(".[", "[")
    if err.validator == "additionalProperties":
        # name the unexpected key itself
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        if extra:
            key = ".".join([key, extra[0]]) if key else extra[0]
    if err.validator == "required":
        missing = err.message.split("'")[1] if "'" in err.message else ""
        key = ".".join([key, missing]) if key else missing
    return key or "<top level>"


def _set_at(obj, path, value) -> None:
    for p in path[:-1]:
        obj = obj[p]
    obj[path[-1]] = value


def coerce_strings(config: dict, validator) -> dict:
    """Turn YAML strings that fail validation into the values they spell, in place.

    Snakemake hands nested ``--config`` values over as strings (``--config 'sim={"tau": 0.5}'``
    gives ``{"tau": "0.5"}``, ``fig04_real={"enabled": true}`` gives ``"true"``). A string that
    the schema rejects is parsed as YAML; the parsed value replaces it only when it is not a
    string itself, so a string the schema accepts (a path, a name) is never touched.
    """
    for _ in range(1000):  # each pass fixes at least one value; the config is finite
        changed = False
        for err in validator.iter_errors(config):
            if not isinstance(err.instance, str) or not err.absolute_path:
                continue
            try:
                value = yaml.safe_load(err.instance)
            except yaml.YAMLError:
                continue
            if isinstance(value, str) or (value is None and err.instance.strip() not in ("null", "~")):
                continue
            _set_at(config, list(err.absolute_path), value)
            changed = True
        if not changed:
            return config
    return config


def validate_config(config: dict, schema: str | os.PathLike) -> dict:
    """Check ``config`` against the JSON schema at ``schema``; fill in schema defaults.

    Strings given where the schema wants another type are read as YAML first (nested
    ``--config`` values, see `coerce_strings`); then values that constrain each other are
    checked (`check_consistency`).

    Raises
    ------
    ConfigError
        Naming the first offending key, e.g. ``config key synth.fig04.vms: -3 is less than
        the minimum of 1``.
    """
    with open(schema) as fh:
        sch = yaml.safe_load(fh)
    validator_cls = jsonschema.validators.validator_for(sch)
    validator = validator_cls(sch)
    coerce_strings(config, validator)
    _check_finite(config)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if errors:
        e = errors[0]
        what = e.message
        if e.validator == "additionalProperties":
            what = "unknown key (see workflow/config/config.yaml for the valid ones)"
        raise ConfigError(f"config key {_key_path(e)}: {what}")
    _fill_defaults(config, sch)
    check_consistency(config)
    return config


def _check_finite(obj, path: tuple = ()) -> None:
    """Refuse NaN and infinities (YAML ``.nan``, ``.inf``): NaN passes every ``minimum`` and
    ``maximum`` of the schema (each comparison is false) and then turns the numbers it touches
    into confident nonsense (``host.vm_overhead_mb: .nan`` made 0 VMs fit on any host)."""
    import math

    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_finite(v, (*path, str(k)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _check_finite(v, (*path, f"[{i}]"))
    elif isinstance(obj, float) and not math.isfinite(obj):
        key = ".".join(path).replace(".[", "[") or "<top level>"
        raise ConfigError(f"config key {key}: {obj} is not a finite number; give a number")


def scenario_section(sim: dict, scenario: str | None, section: str) -> dict:
    """The ``sim.<section>`` values the replay of ``scenario`` uses: the section with
    ``sim.overrides.<scenario>.<section>`` over it (None: the section alone). A light twin of the
    merge :mod:`pagecore.sim.scenarios` does for a run, for code that must not import the
    simulator (the Snakefile, figure jobs); the sections are flat, so one level is the whole merge."""
    out = dict(sim.get(section) or {})
    if scenario is not None:
        out.update((((sim.get("overrides") or {}).get(scenario)) or {}).get(section) or {})
    return out


def check_consistency(config: dict) -> None:
    """Check the values that constrain each other, which a JSON schema cannot express.

    Raises `ConfigError` naming the key, before any job runs (the same checks would otherwise
    fail inside a job with a traceback).
    """
    sim = config.get("sim")
    if isinstance(sim, dict):
        for name in [None, *sorted(sim.get("overrides") or {})]:
            where = "sim" if name is None else f"sim.overrides.{name}"
            st = scenario_section(sim, name, "states")
            if all(k in st for k in ("high_pct", "soft_pct", "hard_pct", "low_pct")):
                th = [st[k] for k in ("high_pct", "soft_pct", "hard_pct", "low_pct")]
                if not th[0] > th[1] > th[2] > th[3] >= 0:
                    raise ConfigError(
                        f"config key {where}.states: thresholds must satisfy high_pct > soft_pct > hard_pct > "
                        f"low_pct >= 0, got {th[0]} > {th[1]} > {th[2]} > {th[3]}; reorder them"
                    )
            b = scenario_section(sim, name, "balloon")
            if "rate_min_mb_s" in b and "rate_max_mb_s" in b and b["rate_min_mb_s"] > b["rate_max_mb_s"]:
                raise ConfigError(
                    f"config key {where}.balloon.rate_min_mb_s: {b['rate_min_mb_s']} exceeds rate_max_mb_s "
                    f"{b['rate_max_mb_s']}; the adaptive rate starts at the minimum and rises to the maximum"
                )
    workloads = config.get("workloads")
    if isinstance(workloads, dict):
        for name, sc in sorted(workloads.items()):
            if not isinstance(sc, dict):
                continue
            for i, vm in enumerate(sc.get("vms") or []):
                lo, hi = vm.get("min_mb"), vm.get("max_mb")
                if isinstance(lo, int | float) and isinstance(hi, int | float) and lo > hi:
                    raise ConfigError(
                        f"config key workloads.{name}.vms[{i}].min_mb: {lo} exceeds max_mb {hi} "
                        f"(VM {vm.get('name', i)}); a VM's guaranteed minimum cannot exceed its memory"
                    )
    dumps = config.get("dumps") or []
    names = [d.get("vm") for d in dumps if isinstance(d, dict)]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"config key dumps: VM name {dup[0]!r} is listed twice; give each dump its own vm name")
    check_sets(config)


def set_members_available(config: dict) -> dict[str, list[str]]:
    """The page tables a ``sharing.sets`` member may name, by kind (``fig04/vm01``, ``user/web1``…)."""
    fig04 = config.get("synth", {}).get("fig04", {})
    return {
        "fig04": [f"vm{i:02d}" for i in range(1, int(fig04.get("vms", 0)) + 1)],
        "fig05": sorted((config.get("fig05") or {}).get("scenarios") or {}),
        "user": sorted(d["vm"] for d in config.get("dumps") or [] if isinstance(d, dict) and "vm" in d),
    }


def check_sets(config: dict) -> None:
    """Every member of every ``sharing.sets`` entry names a page table the workflow makes."""
    sets = (config.get("sharing") or {}).get("sets") or {}
    avail = set_members_available(config)
    for name, members in sorted(sets.items()):
        for member in members:
            kind, _, vm = member.partition("/")
            if kind not in avail:
                raise ConfigError(
                    f"config key sharing.sets.{name}: member {member!r} must start with one of "
                    f"{', '.join(k + '/' for k in avail)}"
                )
            if vm not in avail[kind]:
                have = ", ".join(avail[kind][:6]) + (" …" if len(avail[kind]) > 6 else "") or "none"
                hint = {
                    "fig04": "raise synth.fig04.vms or drop it",
                    "fig05": "add it to fig05.scenarios",
                    "user": "add it to dumps",
                }[kind]
                raise ConfigError(
                    f"config key sharing.sets.{name}: member {member!r} does not exist ({kind}/ has: {have}); {hint}"
                )


def _fill_defaults(obj, sch) -> None:
    if not isinstance(obj, dict) or sch.get("type") != "object":
        if isinstance(obj, list) and "items" in sch:
            for item in obj:
                _fill_defaults(item, sch["items"])
        return
    for key, sub in sch.get("properties", {}).items():
        if key not in obj and "default" in sub:
            obj[key] = (
                sub["default"] if not isinstance(sub["default"], dict | list) else type(sub["default"])(sub["default"])
            )
        if key in obj:
            _fill_defaults(obj[key], sub)


def load_config(path: str | os.PathLike | None = None, schema: str | os.PathLike | None = None) -> dict:
    """Load and validate a YAML config file (for notebooks and tests).

    Without ``path``, the workflow's default config shipped with the package (the same file as
    ``workflow/config/config.yaml``); without ``schema``, the packaged schema.
    """
    path = default_config_path() if path is None else Path(path)
    schema = default_schema_path() if schema is None else Path(schema)
    try:
        with open(path, encoding="utf-8") as fh:
            cfg = yaml.safe_load(fh) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a YAML config ({str(exc).splitlines()[0]})") from None
    return validate_config(cfg, schema)


def default_config_path() -> Path:
    """The default workflow config as installed with pagecore (``pagecore/defaults/config.yaml``)."""
    return Path(str(files("pagecore") / "defaults" / "config.yaml"))


def default_schema_path() -> Path:
    """The workflow config's JSON schema as installed with pagecore."""
    return Path(str(files("pagecore") / "defaults" / "config.schema.yaml"))


def default_config() -> dict:
    """The default workflow config, validated, with schema defaults filled in."""
    return load_config()
