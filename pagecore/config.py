"""Workflow configuration validation with errors that name the offending key."""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

import jsonschema
import yaml

from pagecore import PAGES_PER_MB
from pagecore._defaults import COMPARED_UNITS
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
        for err in _leaf_errors(validator.iter_errors(config)):
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


def _leaf_errors(errors):
    """The errors and, for ``oneOf``/``anyOf`` failures, the errors of each alternative (their
    ``context``): a string inside a mapping that only a ``oneOf`` branch accepts
    (``--config 'workloads={"fig08_fit": {"split": {"exchange": 1}}}'`` gives ``"1"``) is
    reported there, not at the mapping."""
    for err in errors:
        yield err
        if err.context:
            yield from _leaf_errors(err.context)


def _is_int(checker, instance) -> bool:
    """JSON-schema ``integer`` as the code needs it: a Python int, not a bool and not a float.

    Draft 2020-12 calls ``3.0`` an integer; the workflow then fails on it inside a job
    (``range(3.0)``) or names outputs after it (``results/numbers/seeds/1.0.json``)."""
    return isinstance(instance, int) and not isinstance(instance, bool)


def _validator_class(sch: dict):
    """The JSON-schema validator for ``sch`` with the strict `_is_int` integer type."""
    base = jsonschema.validators.validator_for(sch)
    return jsonschema.validators.extend(base, type_checker=base.TYPE_CHECKER.redefine("integer", _is_int))


def _message(e: jsonschema.ValidationError) -> str:
    """The schema error ``e`` as the end of a one-line message."""
    if e.validator == "additionalProperties":
        return "unknown key (see workflow/config/config.yaml for the valid ones)"
    types = e.validator_value if isinstance(e.validator_value, list) else [e.validator_value]
    if e.validator == "type" and "integer" in types and "number" not in types:
        if isinstance(e.instance, bool):
            return f"{str(e.instance).lower()} is a boolean, not an integer; give a whole number"
        if isinstance(e.instance, float):
            hint = f"write {int(e.instance)}" if e.instance.is_integer() else "give a whole number"
            return f"{e.instance!r} is not an integer; {hint}"
    return e.message


def validate_config(config: dict, schema: str | os.PathLike) -> dict:
    """Check ``config`` against the JSON schema at ``schema``; fill in the schema defaults of
    sections written inline in it (not of those under ``$ref``, such as each ``workloads``
    scenario: their keys keep the code's defaults; :func:`pagecore.experiments.provenance.
    with_schema_defaults` fills those too, without touching ``sim.overrides``).

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
    validator = _validator_class(sch)(sch)
    coerce_strings(config, validator)
    _check_finite(config)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if errors:
        e = errors[0]
        raise ConfigError(f"config key {_key_path(e)}: {_message(e)}")
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


def off_step(every, dt, what: str = "the replay would run it as") -> str | None:
    """Why an interval of ``every`` seconds cannot be replayed in steps of ``dt`` (the balloon's
    ``poll_s``, the simulator's step), or None when it can (or a value is not a positive number,
    which the schema refuses): the replay would have run it rounded to whole steps."""
    if not isinstance(every, int | float) or not isinstance(dt, int | float) or dt <= 0:
        return None
    if abs(every / dt - round(every / dt)) <= 1e-9:
        return None
    return (
        f"{every:g} s is not a whole number of simulator steps (balloon.poll_s = {dt:g} s); "
        f"{what} {max(1, round(every / dt)) * dt:g} s"
    )


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
            dt = b.get("poll_s", 1.0)
            for key in ("record_s", "rebalance_s"):  # scalars: no scenario overrides them (schema)
                off = off_step(sim.get(key), dt)
                if off:
                    raise ConfigError(f"config key {where}.{key}: {off}")
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
    check_salts(config)
    check_schedules(config)
    check_fig08_fit(config)
    check_comparison(config)
    check_fig05(config)
    check_reclaim(config)


def _section(config: dict, *keys: str) -> dict:
    """``config[k0][k1]…`` when every level is a mapping, else ``{}`` (partial configs in tests)."""
    for k in keys:
        config = config.get(k) if isinstance(config, dict) else None
    return config if isinstance(config, dict) else {}


#: Scenarios whose code reads the last ``tau_schedule_min`` entry as "the" τ change (Figure 7's
#: records, its what-if sweep and its plot: ``tau_schedule_min[-1]``): they need one.
TAU_CHANGE_SCENARIOS = ("fig07",)


def check_schedules(config: dict) -> None:
    """``workloads.<s>.tau_schedule_min`` and every VM's ``foreground.schedule`` in time order.

    The simulator sorts the τ schedule, but Figure 7's records, what-if sweep and plot take its
    last entry as the τ change, so an unsorted schedule changed Figure 7's numbers silently; an
    empty one failed with an IndexError inside a job. Times must rise strictly and lie inside
    the run (a change after ``duration_min`` never happens). Foreground phases are replayed in
    list order (the zero page thread starts at the first idle phase after a busy one), so each
    row must start no earlier than the previous one ends, and end no earlier than it starts.
    """
    for name, sc in sorted(_section(config, "workloads").items()):
        if not isinstance(sc, dict) or name == "fig08_fit":
            continue
        key = f"workloads.{name}.tau_schedule_min"
        sched = sc.get("tau_schedule_min") or []
        if not sched and name in TAU_CHANGE_SCENARIOS:
            raise ConfigError(
                f"config key {key}: empty; Figure {name[3:].lstrip('0')} needs the τ change as [[minute, tau], ...] "
                "(default [[0.0, 0.0], [30.9, 0.75]])"
            )
        times = [row[0] for row in sched]
        for i in range(1, len(times)):
            if not times[i] > times[i - 1]:
                raise ConfigError(
                    f"config key {key}: times must be strictly increasing, got {times[i - 1]:g} then {times[i]:g} "
                    f"(entries {i - 1} and {i}); list the [minute, tau] pairs in time order, one per minute"
                )
        dur = sc.get("duration_min")
        if times and isinstance(dur, int | float) and times[-1] >= dur:
            raise ConfigError(
                f"config key {key}: τ change at minute {times[-1]:g} is not before the end of the run "
                f"(duration_min {dur:g}); it would never happen"
            )
        for i, vm in enumerate(sc.get("vms") or []):
            rows = _section(vm, "foreground").get("schedule") or []
            where = f"workloads.{name}.vms[{i}].foreground.schedule"
            for j, row in enumerate(rows):
                if row[1] < row[0]:
                    raise ConfigError(
                        f"config key {where}[{j}]: ends (minute {row[1]:g}) before it starts (minute {row[0]:g}); "
                        "rows are [from_min, to_min, mb]"
                    )
                if j and row[0] < rows[j - 1][1]:
                    raise ConfigError(
                        f"config key {where}[{j}]: starts at minute {row[0]:g}, before the previous row ends "
                        f"(minute {rows[j - 1][1]:g}); list the rows in time order without overlap"
                    )


def fig08_panel_vms() -> list[str]:
    """The Figure 8 VMs with their own active-memory panel in the paper (``paper.FIG08``
    ``<vm>_active`` columns): the fit gives them their panel, not a share of ``split``."""
    from pagecore import paper

    cols = paper.FIG08.columns
    return sorted(c[: -len("_active")] for c in cols if c.endswith("_active") and c != "total_active")


def check_fig08_fit(config: dict) -> None:
    """``workloads.fig08_fit``: the panel VMs exist, and a ``split`` mapping names every other
    Figure 8 VM (``workloads.fig08.vms``) and only those, with weights adding up to more than 0.

    The fit gives a VM missing from the mapping weight 0, so a misspelled name silently took a
    VM's working set away."""
    workloads = _section(config, "workloads")
    fit = workloads.get("fig08_fit")
    if not isinstance(fit, dict):
        return
    vms = [v.get("name") for v in _section(workloads, "fig08").get("vms") or [] if isinstance(v, dict)]
    panel = fig08_panel_vms()
    missing = [n for n in panel if n not in vms]
    if missing:
        raise ConfigError(
            f"config key workloads.fig08.vms: no VM named {missing[0]!r}; workloads.fig08_fit fits it to its own "
            f"panel of Figure 8 (set workloads.fig08_fit: null to fit nothing)"
        )
    split = fit.get("split")
    if not isinstance(split, dict):
        return
    rest = [n for n in vms if n not in panel]
    for n in split:
        if n in panel:
            raise ConfigError(
                f"config key workloads.fig08_fit.split.{n}: VM {n!r} follows its own panel of Figure 8, not the "
                f"split; name only {', '.join(rest)}"
            )
        if n not in rest:
            raise ConfigError(
                f"config key workloads.fig08_fit.split.{n}: no Figure 8 VM named {n!r} (workloads.fig08.vms); "
                f"name {', '.join(rest)}"
            )
    absent = [n for n in rest if n not in split]
    if absent:
        raise ConfigError(
            f"config key workloads.fig08_fit.split: no weight for VM {absent[0]!r}; give each of "
            f"{', '.join(rest)} a weight (0 for none)"
        )
    if not sum(split.values()) > 0:
        raise ConfigError("config key workloads.fig08_fit.split: the weights add up to 0; give some VM a weight > 0")


def compared_figures() -> list[str]:
    """The figures whose numbers are compared with the paper's (``pagecore.paper.FIGNN``)."""
    import re

    from pagecore import paper

    return sorted(n.lower() for n in vars(paper) if re.fullmatch(r"FIG\d\d", n))


def check_comparison(config: dict) -> None:
    """``comparison.tolerances`` has one entry per compared figure, and no other, each a fraction
    below 1; ``comparison.abs_floor`` names only units of compared numbers."""
    comparison = _section(config, "comparison")
    floor = comparison.get("abs_floor")
    for unit in floor if isinstance(floor, dict) else {}:
        if unit not in COMPARED_UNITS:  # a misspelt unit ("mb") left that unit's floor at 0
            raise ConfigError(
                f"config key comparison.abs_floor.{unit}: no compared number is in {unit!r}; "
                f"units: {', '.join(COMPARED_UNITS)}"
            )
    if "tolerances" not in comparison:
        return
    tol = comparison.get("tolerances") or {}
    figs = compared_figures()
    for name in tol:
        if name not in figs:
            raise ConfigError(
                f"config key comparison.tolerances.{name}: no figure {name} is compared with the paper; "
                f"figures: {', '.join(figs)}"
            )
        v = tol[name]
        if isinstance(v, int | float) and not isinstance(v, bool) and v >= 1:
            # `fig07: 5` meant 5 % and counted every number within 500 % (0 included) as a match
            raise ConfigError(
                f"config key comparison.tolerances.{name}: {v} is a fraction of the paper's value "
                f"(0.05 is 5 %); {100 * v:g} % would count any number, 0 included, as within; give a number below 1"
            )
    for name in figs:
        if name not in tol:
            raise ConfigError(f"config key comparison.tolerances.{name}: missing; every compared figure needs one")


def check_fig05(config: dict) -> None:
    """Every Figure 5 guest names an OS kind of ``catalogue.os`` and applications of
    ``catalogue.apps``, and guest names are unique per scenario."""
    scenarios = _section(config, "fig05", "scenarios")
    if not scenarios:
        return
    cat = _section(config, "catalogue")
    kinds, apps = sorted(_section(cat, "os")), sorted(_section(cat, "apps"))
    for sname, sc in sorted(scenarios.items()):
        seen = set()
        for i, g in enumerate((sc if isinstance(sc, dict) else {}).get("guests") or []):
            where = f"fig05.scenarios.{sname}.guests[{i}]"
            if g.get("os") not in kinds:
                raise ConfigError(
                    f"config key {where}.os: unknown OS kind {g.get('os')!r}; catalogue.os has {', '.join(kinds)}"
                )
            for a in g.get("apps") or []:
                if a not in apps:
                    raise ConfigError(
                        f"config key {where}.apps: unknown application {a!r}; catalogue.apps has "
                        f"{', '.join(apps) or 'none'}"
                    )
            if g.get("name") in seen:
                raise ConfigError(
                    f"config key {where}.name: guest {g.get('name')!r} is listed twice in scenario {sname}"
                )
            mem = g.get("mem_mb")
            if isinstance(mem, int | float) and round(mem * PAGES_PER_MB) < 1:  # as Guest.pages rounds
                raise ConfigError(
                    f"config key {where}.mem_mb: {mem:g} MB gives the guest no 4 KiB page; "
                    f"give at least {1 / PAGES_PER_MB:g}"
                )
            seen.add(g.get("name"))
        _no_tag_collision(f"fig05.scenarios.{sname}.guests", "guests", [str(n) for n in seen])
    _no_tag_collision("catalogue.apps", "applications", [str(a) for a in apps])
    _no_tag_collision("catalogue.os", "OS kinds", [str(k) for k in kinds])


def _no_tag_collision(key: str, what: str, names: list[str]) -> None:
    """Refuse two ``names`` the synthetic guests would generate as one (one 16-bit content tag:
    pagecore._util.name_tag): their pages were counted as shared, exit 0 (session 19 audit)."""
    from pagecore._util import tag_collision

    pair = tag_collision(sorted(names))
    if pair is not None:
        raise ConfigError(
            f"config key {key}: {what} {pair[0]!r} and {pair[1]!r} have one 16-bit content tag, so their pages "
            "would be generated as one's; rename one of them"
        )


def check_reclaim(config: dict) -> None:
    """``reclaim``: Figure 2's fit sizes are two different bars of the paper, and the I/O headline
    threshold is swept (what the guest model makes of each size:
    :func:`pagecore.experiments.config_models.check_models`)."""
    reclaim = _section(config, "reclaim")
    if not reclaim:
        return
    f = _section(reclaim, "fig02")
    if f.get("fit_mb") is not None:
        from pagecore import paper

        bars = [float(m) for m in paper.FIG02.vm_mb]
        fit = list(f["fit_mb"])
        for m in fit:
            if float(m) not in bars:
                raise ConfigError(
                    f"config key reclaim.fig02.fit_mb: the paper has no configured bar at {m:g} MB; "
                    f"choose two of {', '.join(f'{b:g}' for b in bars)}"
                )
        if len(set(map(float, fit))) != len(fit):
            raise ConfigError("config key reclaim.fig02.fit_mb: give two different sizes (two unknowns, two points)")
    io = _section(reclaim, "io")
    if "threshold" in io and "thresholds" in io and io["threshold"] not in io["thresholds"]:
        raise ConfigError(
            f"config key reclaim.io.threshold: {io['threshold']} is not one of reclaim.io.thresholds "
            f"({', '.join(map(str, io['thresholds']))}); the headline is read off that sweep"
        )
    if "low_pages" in io and "guest_pages" in io and io["low_pages"] > io["guest_pages"]:
        raise ConfigError(
            f"config key reclaim.io.low_pages: {io['low_pages']} exceeds reclaim.io.guest_pages {io['guest_pages']}"
        )


def set_members_available(config: dict) -> dict[str, list[str]]:
    """The page tables a ``sharing.sets`` member may name, by kind (``fig04/vm01``, ``user/web1``…)."""
    fig04 = config.get("synth", {}).get("fig04", {})
    return {
        "fig04": [f"vm{i:02d}" for i in range(1, int(fig04.get("vms", 0)) + 1)],
        "fig05": sorted((config.get("fig05") or {}).get("scenarios") or {}),
        "user": sorted(d["vm"] for d in config.get("dumps") or [] if isinstance(d, dict) and "vm" in d),
    }


def builtin_sets(config: dict) -> dict[str, list[str]]:
    """The VM sets the workflow always analyses, by name: one Figure 4 guest, all of them, and
    each Figure 5 host (Figure 5 and its numbers read ``fig05-<scenario>``)."""
    avail = set_members_available(config)
    sets = {"fig04-1vm": ["fig04/vm01"], "fig04-all": [f"fig04/{vm}" for vm in avail["fig04"]]}
    sets.update({f"fig05-{name}": [f"fig05/{name}"] for name in avail["fig05"]})
    return sets


def _case_clash(names: list[str]) -> tuple[int, int] | None:
    """Indices ``(i, j)``, ``i < j``, of the first two of ``names`` that differ only in case."""
    first: dict[str, int] = {}
    for j, n in enumerate(names):
        if isinstance(n, str):
            i = first.setdefault(n.casefold(), j)
            if i != j and names[i] != n:
                return i, j
    return None


def vm_names_of(config: dict, member: str) -> list[str]:
    """The VM names in the page table of a set member (``fig04/vmNN``, ``user/<vm>``: that name;
    ``fig05/<scenario>``: the names of its guests)."""
    kind, _, name = member.partition("/")
    if kind != "fig05":
        return [name]
    scenario = _section(config, "fig05", "scenarios").get(name) or {}
    return [g.get("name") for g in scenario.get("guests") or [] if isinstance(g, dict)]


def check_salts(config: dict) -> None:
    """Every VM ``sharing.salting.salts`` names is in a page table the run makes: each analysis is
    given the salts of its own VMs only, so a misspelt name would salt nothing, silently."""
    salts = _section(config, "sharing", "salting").get("salts") or {}
    avail = set_members_available(config)
    members = [f"{kind}/{name}" for kind, names in avail.items() for name in names]
    known = {vm for m in members for vm in vm_names_of(config, m)}
    for vm in sorted(salts):
        if vm not in known:
            fig04 = avail["fig04"]
            raise ConfigError(
                f"config key sharing.salting.salts.{vm}: no VM {vm!r} in any page table of the run (Figure 4 "
                f"guests {fig04[0] if fig04 else ''}..{fig04[-1] if fig04 else ''}, the Figure 5 guests of "
                "fig05.scenarios, the vm names of dumps); check the name"
            )


def check_sets(config: dict) -> None:
    """Every member of every ``sharing.sets`` entry names a page table the workflow makes, once;
    no set takes the name of a built-in one (`builtin_sets`: a set named ``fig05-A`` replaced
    Figure 5's host A, and its numbers, with its own members), and no two set or VM names differ
    only in case (their files would be one on a case-insensitive file system: macOS, Windows)."""
    sets = (config.get("sharing") or {}).get("sets") or {}
    avail = set_members_available(config)
    builtin = builtin_sets(config)
    dumps = [d.get("vm") for d in config.get("dumps") or [] if isinstance(d, dict)]
    clash = _case_clash(dumps)
    if clash:
        i, j = clash
        raise ConfigError(
            f"config key dumps[{j}].vm: {dumps[j]!r} differs from dumps[{i}].vm {dumps[i]!r} only in case; their page "
            "tables would be one file on a case-insensitive file system (macOS, Windows); rename one"
        )
    names = sorted(sets)
    clash = _case_clash(names + sorted(builtin))
    if clash:
        a, b = (names + sorted(builtin))[clash[0]], (names + sorted(builtin))[clash[1]]
        raise ConfigError(
            f"config key sharing.sets.{a}: differs from set {b!r} only in case; their reports would be one file on a "
            "case-insensitive file system (macOS, Windows); rename one"
        )
    for name, members in sorted(sets.items()):
        if name in builtin:
            raise ConfigError(
                f"config key sharing.sets.{name}: the name of a set the workflow always makes "
                f"({', '.join(builtin[name][:3])}{' …' if len(builtin[name]) > 3 else ''}); choose another name"
            )
        twice = sorted({m for m in members if members.count(m) > 1})
        if twice:
            raise ConfigError(
                f"config key sharing.sets.{name}: member {twice[0]!r} is listed twice; one guest counted twice "
                "would share all its pages with itself"
            )
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


#: Files read with a dump, by its suffix: a VMware ``.vmem`` and its ``.vmss``/``.vmsn`` map.
DUMP_COMPANIONS = {".vmem": (".vmss", ".vmsn"), ".vmss": (".vmem",), ".vmsn": (".vmem",)}


def dump_files(path: str) -> list[str]:
    """``path`` and the companions beside it that a reader of it opens too (`DUMP_COMPANIONS`)."""
    root, ext = os.path.splitext(path)
    return [path] + [root + e for e in DUMP_COMPANIONS.get(ext.lower(), ()) if os.path.exists(root + e)]


def check_dump_files(config: dict) -> None:
    """Every ``dumps`` path that exists is a readable regular file, and no file is the dump of two
    VMs. For the pipeline (the Snakefile), before any job: the library opens files only in jobs.

    A directory, a FIFO, a device or a symbolic-link loop failed inside a job or with a traceback
    while Snakemake built its jobs, a path with ``{`` or ``}`` with a WildcardError; one dump named twice
    under two VM names (also through a symbolic or hard link, or a VMware guest by its ``.vmem``
    and its ``.vmss``) counted every page of it as shared between them, exit 0, unless both paths
    were spelled alike. A path that does not exist is left to Snakemake, which names it when a job
    needs it (it may be a file the pipeline makes). Relative paths are relative to the working
    directory, as Snakemake reads them.
    """
    import errno
    import stat

    seen: dict[tuple, tuple[int, str]] = {}
    for i, d in enumerate(config.get("dumps") or []):
        if not isinstance(d, dict) or not isinstance(d.get("path"), str):
            continue
        path, key = d["path"], f"dumps[{i}].path"
        if "{" in path or "}" in path:  # Snakemake fills them in as wildcards: a WildcardError
            raise ConfigError(
                f"config key {key}: {path} has {{ or }}, which Snakemake reads as a wildcard; rename the dump "
                "or link it under a name without them"
            )
        ids = []
        for f in dump_files(path):
            try:
                st = os.stat(f)
            except OSError as exc:
                if exc.errno == errno.ENOENT and f == path:  # a dangling link too; Snakemake names it
                    ids.append(("path", os.path.normpath(os.path.abspath(path))))
                    break
                raise ConfigError(f"config key {key}: {f} cannot be read ({exc.strerror}); check the path") from None
            if stat.S_ISDIR(st.st_mode):
                raise ConfigError(
                    f"config key {key}: {f} is a directory, not a memory dump; name a dump file inside it"
                )
            if not stat.S_ISREG(st.st_mode):
                raise ConfigError(
                    f"config key {key}: {f} is not a regular file (a FIFO, device or socket); copy the dump to a "
                    "regular file first"
                )
            if not os.access(f, os.R_OK):
                raise ConfigError(f"config key {key}: {f}: permission denied; make it readable by this user")
            ids.append((st.st_dev, st.st_ino))
        for n, ident in enumerate(ids):
            if ident in seen:
                j, m, vm = seen[ident]
                same = "is the same file as" if n == m == 0 else "reads the same VMware guest as"
                raise ConfigError(
                    f"config key {key}: {path} {same} dumps[{j}].path (VM {vm!r}); VMs {vm!r} and {d.get('vm')!r} "
                    "would share every page; give each dump once (identical guests: copies of the dump)"
                )
            seen[ident] = (i, n, d.get("vm"))


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
