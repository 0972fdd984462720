# Helpers shared by the rules: config validation and the lists of files rules ask for.
# Only functions live here (STYLE.md); rules live in one .smk per stage.

import os
import sys

from pagecore.config import (
    builtin_sets,
    check_dump_files,
    dump_files,
    scenario_section,
    validate_config,
    vm_names_of,
)
from pagecore.experiments.config_models import check_models
from pagecore._smk import config_digest
from pagecore.errors import ConfigError


try:
    validate_config(config, workflow.source_path("../schemas/config.schema.yaml"))
    check_models(config)  # what the models themselves would refuse inside a job
    if not workflow.remote_exec:  # a cluster job reads only its own dump, where its node mounts it
        check_dump_files(config)
except ConfigError as err:  # one line naming the key, before any job runs; no traceback
    sys.exit(f"pagecore: error: {err}")


def hashing_params(hashing):
    """The ``hashing`` section for the hashing rules' params, with the fingerprint of the key it
    names (``key_id``) when keyed; unkeyed, the section as it is.

    The secret is read from the environment (``key_env`` names the variable), so a new secret
    under the same name changed no param: every page table kept the old key, and a dump added
    later was refused beside them (keys differ). Each table already stores this fingerprint.
    Cluster jobs run their own job only and compare no params: None there."""
    if not hashing.get("key_env"):
        return hashing
    if workflow.remote_exec:
        return {**hashing, "key_id": None}
    from pagecore.pages import PageKey

    return {**hashing, "key_id": PageKey.from_config(hashing).key_id}


try:
    HASHING = hashing_params(config["hashing"])  # an unset or short key: one line, before any job
except ConfigError as err:
    sys.exit(f"pagecore: error: {err}")


def _byte_compile_imports():
    """Let the jobs cache the bytecode of what they import, and compile pagecore's modules and the
    ones this process imported (Snakemake's own) once (each a no-op when up to date).

    Where PYTHONDONTWRITEBYTECODE is set (as on the reference machine) a module without cached
    bytecode is compiled in memory by every process that imports it: each job would recompile
    what it imports (~0.7 s of CPU for pagecore alone, seconds for pandas, Matplotlib, Numba). An
    editable install is never byte-compiled by the installer, and an environment installed
    without byte-compiling all of it (uv's --compile-bytecode compiles about 7,000 modules, about
    38 CPU-seconds; the jobs import about 1,700) has none for the rest. So the jobs run with the
    bytecode cache on: the first job that imports a module writes its bytecode (atomically, as
    Python always does) and the others read it."""
    import compileall
    import py_compile

    import pagecore

    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # for the jobs, which inherit this environment
    try:
        compileall.compile_dir(os.path.dirname(pagecore.__file__), quiet=2)
    except OSError:  # a read-only install: jobs compile in memory, as before
        pass
    for module in list(sys.modules.values()):
        spec = getattr(module, "__spec__", None)
        source, cached = getattr(spec, "origin", None), getattr(spec, "cached", None)
        if source and cached and source.endswith(".py") and not os.path.exists(cached):
            try:
                py_compile.compile(source, cfile=cached, doraise=True)
            except (OSError, py_compile.PyCompileError):  # read-only, or not Python we can compile
                pass


_byte_compile_imports()


# --- scheduling --------------------------------------------------------------------------
# Snakemake starts the ready job of highest priority. On a fresh clone Numba's cache is empty:
# the first job that calls a kernel compiles it, and a job that calls it meanwhile waits for
# that compilation (pagecore/_jit.py) with its core idle. So the run starts with one job per
# family of kernels beside jobs that need none: the first Figure 4 guest (the page filler) and
# the Figure 7 replay (the replay kernels, which the notebooks' job also waits on) beside the
# traces. The two longest jobs (the seed replays and the notebooks) and the host run (scanner
# kernels) start as soon as they can, then the other guests and the Figure 4 sweep (counting
# kernels), then the other replays and the sets; the short jobs (figures, reclamation runs,
# the comparison) fill both cores at the end. Measured on a fresh clone: README "Quick start".
PRIORITY = {
    "fit_fig08_active": 60,
    "sim_trace": 60,
    "seed_numbers": 50,
    "influence": 50,
    "render_notebooks": 50,
    "host_whatif_run": 50,
    "fig04_guest": 45,
    "fig04_sweep": 40,
    "sim_replay": 30,
    "sim_whatif": 30,
    "synth_fig05_pages": 30,
    "share_set": 30,
    "sets_summary": 30,
}
#: Every other rule's priority.
PRIORITY_REST = 20
#: Jobs that run ahead of their siblings (wildcard, its value, the job's priority), by rule name.
FIRST_JOB = {"fig04_guest": ("idx", "01", 60), "sim_replay": ("scenario", "fig07", 55)}


def priority_of(rule_name):
    """The ``priority:`` of a rule: a number or, for a rule in FIRST_JOB, a function of the
    wildcards that puts that job ahead of its siblings."""
    rest = PRIORITY.get(rule_name, PRIORITY_REST)
    if rule_name not in FIRST_JOB:
        return rest
    name, value, first = FIRST_JOB[rule_name]

    def priority(wildcards):
        return first if wildcards[name] == value else rest

    return priority


FIG04 = config["synth"]["fig04"]
FIG05 = config["fig05"]


wildcard_constraints:
    idx=r"\d\d+",
    vm=r"[A-Za-z0-9._-]+",
    set=r"[A-Za-z0-9._-]+",
    scenario=r"[A-Za-z0-9_-]+",
    shard=r"\d+",
    part=r"\d+",
    name=r"[A-Za-z0-9_-]+",


def fig04_vm_ids():
    """Zero-padded guest numbers 01..NN of the Figure 4 set."""
    return [f"{i:02d}" for i in range(1, FIG04["vms"] + 1)]


def fig04_page_tables(wildcards=None):
    return expand("results/pages/fig04/vm{idx}.parquet", idx=fig04_vm_ids())


def fig04_dump(path):
    """The synthetic dump output, temporary unless synth.fig04.keep_dumps is true."""
    return path if FIG04["keep_dumps"] else temp(path)


def user_dumps():
    return {d["vm"]: d for d in config["dumps"]}


def user_dump_path(wildcards):
    return user_dumps()[wildcards.vm]["path"]


def user_dump_format(wildcards):
    return user_dumps()[wildcards.vm].get("format", "auto")


def user_dump_stamp(wildcards):
    """The dump of one of your VMs as it is on disk now: size, modification and change times and
    inode of the file (and of a VMware ``.vmem``'s map beside it), or None where one is gone.

    A param of the hashing rule, so its page table is made again whenever the dump is another
    file or was written since: Snakemake reruns a job when an input is newer than its output,
    and a dump replaced by a file with an older modification time (``cp -p``, a restored copy,
    ``touch -d``) kept its old page table and every number made from it, with exit 0. The change
    time cannot be set back (only the clock sets it), so a replaced dump always changes it."""
    stamp = {}
    for p in dump_files(user_dump_path(wildcards)):
        try:
            st = os.stat(p)
        except OSError:  # gone: Snakemake names the missing input (a job needs it again now)
            stamp[p] = None
        else:
            stamp[p] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
    return stamp


def user_page_tables(wildcards=None):
    return expand("results/pages/user/{vm}.parquet", vm=sorted(user_dumps()))


def verifying():
    """Whether sharing rules byte-compare pages, so they need the dumps as inputs."""
    return config["sharing"]["verify"] is not False


def fig04_dumps_for_verification(wildcards=None):
    """The synthetic dumps, when verification may read them (and they are kept)."""
    if not verifying() or not FIG04["keep_dumps"]:
        return []
    return expand("results/synth/fig04/vm{idx}.raw", idx=fig04_vm_ids())


def all_sets():
    """VM sets to analyse: one Figure 4 guest, all of them, and the config's own sets."""
    sets = builtin_sets(config)  # the config's sets may not take these names (check_sets)
    sets.update(config["sharing"]["sets"])
    return sets


def set_names():
    return sorted(all_sets())


def set_page_tables(wildcards):
    return [f"results/pages/{member}.parquet" for member in all_sets()[wildcards.set]]


def set_dumps_for_verification(wildcards):
    if not verifying():
        return []
    out = []
    for member in all_sets()[wildcards.set]:
        kind, name = member.split("/", 1)
        if kind == "fig04" and FIG04["keep_dumps"]:
            out.append(f"results/synth/fig04/{name}.raw")
        elif kind == "user":
            out.append(user_dumps()[name]["path"])
    return out


def fig05_scenario(wildcards):
    """The guest list of one Figure 5 scenario."""
    return FIG05["scenarios"][wildcards.scenario]


def fig05_reports(wildcards=None):
    return expand("results/sharing/sets/fig05-{scenario}.json", scenario=sorted(FIG05["scenarios"]))


def set_reports(wildcards=None):
    return expand("results/sharing/sets/{set}.json", set=set_names())


BIG = config["bigcount"]


def bigcount_shards():
    return [f"{s:04d}" for s in range((BIG["vms"] + BIG["vms_per_shard"] - 1) // BIG["vms_per_shard"])]


def bigcount_partitions():
    return [f"{p:05d}" for p in range(1 << BIG["partition_bits"])]


def bigcount_vm_names():
    return [f"vm{v:05d}" for v in range(1, BIG["vms"] + 1)]


def bigcount_scattered(wildcards=None):
    bigcount_free_space()  # before the list of shards: 10^8 VMs filled the memory building it
    return expand("results/bigcount/scatter/shard{shard}.parquet", shard=bigcount_shards())


def bigcount_counts(wildcards=None):
    bigcount_free_space()
    return expand("results/bigcount/counts/part{part}.json", part=bigcount_partitions())


def bigcount_mem_mb(stage):
    """Memory (MiB) one bigcount job of ``stage`` needs, from the config (pagecore.sharing.bigplan).

    A resource function, so only runs that have bigcount jobs import pagecore.sharing (pandas,
    Numba: about 2 s of the main process's CPU in the default run otherwise)."""

    def mem_mb(wildcards):
        from pagecore.sharing.bigplan import job_mem_mb

        return job_mem_mb(BIG, stage, classes=bigcount_content_classes() if stage == "count" else None)

    return mem_mb


def bigcount_content_classes():
    """The synthetic set's content classes as (pages, distinct contents), for the count jobs' memory
    (pagecore.sharing.bigplan.largest_partition_pages), from the Figure 4 model bigcount writes."""
    from pagecore.synth import Fig04Model

    model = Fig04Model(mem_mb=BIG["mem_mb"], variants=FIG04["variants"], seed=BIG["seed"], **FIG04["fractions"])
    return model.content_classes(BIG["vms"])


def bigcount_free_space(wildcards=None):
    """No inputs; stops the run with one line if results/ lacks the disk space bigcount needs.

    An input function of the first bigcount jobs, and called first by the input functions that
    list the shards and partitions (and, lazily, the VM names: a parameter built when the rules were
    read made 2**31 names, filling the memory before this check), so it runs while Snakemake builds
    the job graph (dry runs included), once, and only when bigcount jobs are part of it; not inside
    cluster jobs.
    """
    global _BIGCOUNT_CHECKED
    if not workflow.remote_exec and not _BIGCOUNT_CHECKED:
        from pagecore.sharing.bigplan import check_free_space

        try:
            check_free_space(BIG, "results/bigcount")  # where its files go (a symlink to another disk)
        except ConfigError as err:  # one line, as the config checks above; no InputFunctionException
            sys.exit(f"pagecore: error: {err}")
        _BIGCOUNT_CHECKED = True
    return []


_BIGCOUNT_CHECKED = False


def fig04_real_ids():
    """Zero-padded numbers 01..NN of the real identical guests."""
    return [f"{i:02d}" for i in range(1, config["fig04_real"]["vms"] + 1)]


def fig04_real_page_tables(wildcards=None):
    return expand("results/pages/real/guest{idx}.parquet", idx=fig04_real_ids())


def figure_numbers(wildcards=None):
    """Every results/numbers/figNN.json the default run makes."""
    return [p for p in final_outputs(with_comparison=False) if p.startswith("results/numbers/fig") and p.endswith(".json")]


#: The seeds Figures 6-8 are re-run at: every listed seed other than the default run's (sim.seed).
EXTRA_SEEDS = [s for s in config["comparison"].get("seeds", []) if s != config["sim"]["seed"]]


def extra_seed_numbers(wildcards=None):
    """Figures 6-8 re-run at every listed seed other than the default run's (sim.seed)."""
    return [f"results/numbers/seeds/{s}.json" for s in EXTRA_SEEDS]


def final_outputs(with_comparison=True):
    """Everything `snakemake` builds by default."""
    out = [
        "results/figures/fig04_page_sharing.png",
        "results/figures/fig04_page_sharing.pdf",
        "results/numbers/fig04.json",
    ]
    out += sim_outputs()
    if config["dumps"]:
        out.append("results/sharing/user.json")
    if config["fig04_real"]["enabled"]:
        out += ["results/figures/fig04_real_guests.png", "results/figures/fig04_real_guests.pdf"]
    out.append("results/sharing/sets_summary.csv")
    if with_comparison:
        out += ["results/numbers/comparison.csv", "results/numbers/comparison.txt"]
    out += [
        "results/figures/fig05_real_world_sharing.png",
        "results/figures/fig05_real_world_sharing.pdf",
        "results/numbers/fig05.json",
    ]
    out += reclaim_outputs()
    out += scan_outputs()
    out += host_outputs()
    out += largepage_outputs()
    out += notebook_outputs()
    return out


def largepage_outputs():
    """Large pages (sharing.smk, figures.smk): on the Figure 4 guests, and on the real guests when enabled."""
    guests = ["fig04"] + (["real"] if config["fig04_real"]["enabled"] else [])
    return [f"results/figures/large_page_breaking_{g}.{ext}" for g in guests for ext in ("png", "pdf")] + [
        f"results/largepages/{g}.summary.json" for g in guests
    ]


def largepage_page_tables(wildcards):
    """The page tables of the guests a large-page rule runs on (``fig04`` or ``real``)."""
    return fig04_real_page_tables() if wildcards.guests == "real" else fig04_page_tables()


def scan_outputs():
    """Sharing over time (scan.smk): the ESX scanner vs KSM and duplicate lifetimes."""
    return [
        f"results/figures/{name}.{ext}"
        for name in ("scan_sharing_over_time", "scan_duplicate_lifetime")
        for ext in ("png", "pdf")
    ] + ["results/scan/fig04.summary.csv"]


def host_outputs():
    """Your VMs on a host (host.smk): the what-if on the Figure 4 guests."""
    return [
        "results/figures/host_whatif.png",
        "results/figures/host_whatif.pdf",
        "results/host/fig04.rows.csv",
        "results/figures/reclamation_approaches.png",
        "results/figures/reclamation_approaches.pdf",
        "results/host/approaches.csv",
    ] + (
        ["results/figures/reclamation_approaches_real.png", "results/host/approaches_real.csv"]
        if config["host"]["approaches_real"]["enabled"]
        else []
    )


def reclaim_outputs():
    """Figure 2, balloon vs host paging, hot I/O page remapping (reclaim.smk)."""
    out = []
    for fig in ("fig02_balloon_performance", "reclaim_balloon_vs_paging", "io_remapping"):
        out += [f"results/figures/{fig}.png", f"results/figures/{fig}.pdf"]
    return out + ["results/numbers/fig02.json", "results/numbers/io_remap.json"]


# --- replayed memory manager (simulate.smk; Figures 6-8 and the what-if sweeps) -------------
WHATIF_SCENARIO = {"tau": "fig07", "sample_pages": "fig06", "overcommit": "fig08"}


def whatif_scenario(wildcards):
    """The scenario a what-if dimension sweeps over."""
    return WHATIF_SCENARIO[wildcards.dim]


def whatif_trace(wildcards):
    return f"results/traces/{WHATIF_SCENARIO[wildcards.dim]}.parquet"


def whatif_values(wildcards):
    return config["sim"]["whatif"][wildcards.dim]


def whatif_tables(wildcards=None):
    return expand("results/sim/whatif_{dim}.csv", dim=list(WHATIF_SCENARIO))


def sim_outputs():
    """Figures 6-8, their numbers and the what-if table and figure."""
    out = []
    for fig in ("fig06_active_memory_sampling", "fig07_idle_memory_tax", "fig08_dynamic_reallocation", "whatif_memory_manager"):
        out += [f"results/figures/{fig}.png", f"results/figures/{fig}.pdf"]
    out += ["results/numbers/fig06.json", "results/numbers/fig07.json", "results/numbers/fig08.json",
            "results/numbers/fig08_errors.csv", "results/numbers/fig08_sharing_budget.csv",
            "results/numbers/fig08_boot_paging.csv", "results/sim/whatif.csv"]
    return out


# --- params of rules, only what each output depends on ----------------------------------
# Snakemake reruns a job when its params change (rerun-triggers: params), so a rule's params
# hold exactly the config values its output depends on: adding a VM to synth.fig04.vms or a set
# to sharing.sets must not rerun the guests or sets that already exist (tests/test_workflow.py).


def pick(section, *keys):
    """The named keys of one config section (a dict), for a rule's params."""
    return {k: section[k] for k in keys if k in section}


def fig04_model():
    """What one synthetic Figure 4 guest depends on (not the number of guests)."""
    return pick(FIG04, "mem_mb", "variants", "seed", "fractions")


def sharing_params(members):
    """What the sharing analysis of the page tables of ``members`` (``user/web1``, …) depends on:
    not the list of sets, and only the salts of its own VMs (the analysis refuses salts naming VMs
    it does not have: one salted VM failed every set without it; check_salts refuses misspelt ones)."""
    out = pick(config["sharing"], "verify", "salting", "ksm", "top_contents")
    names = {vm for m in members for vm in vm_names_of(config, m)}
    salting = out["salting"]
    out["salting"] = {**salting, "salts": {vm: v for vm, v in salting["salts"].items() if vm in names}}
    return out


def user_sharing_params():
    """share_user's `sharing_params`: all your dumps."""
    return sharing_params([f"user/{vm}" for vm in sorted(user_dumps())])


def set_sharing_params(wildcards):
    """share_set's `sharing_params`: the members of one set."""
    return sharing_params(all_sets()[wildcards.set])


def scenario_name(wildcards):
    scenario = getattr(wildcards, "scenario", None)
    return scenario if scenario else WHATIF_SCENARIO[wildcards.dim]


def scenario_workloads(wildcards):
    """The workloads section reduced to one scenario (plus the shared seed and chunking)."""
    w = config["workloads"]
    name = scenario_name(wildcards)
    return {"seed": w["seed"], "chunk_s": w["chunk_s"], name: w[name]}


def scenario_fit(wildcards):
    """The declared fit a scenario's trace is generated with: Figure 8's active-memory fit when
    workloads.fig08_fit is set (its schedules replace the configured ones), else nothing."""
    if scenario_name(wildcards) == "fig08" and config["workloads"].get("fig08_fit"):
        return {"fit": "results/fits/fig08_active.json"}
    return {}


def scenario_sim(wildcards):
    """The simulator settings one scenario runs with: no what-if lists, only its own override."""
    sim = {k: v for k, v in config["sim"].items() if k not in ("whatif", "overrides")}
    name = scenario_name(wildcards)
    own = config["sim"].get("overrides", {}).get(name)
    sim["overrides"] = {name: own} if own else {}
    return sim


# --- notebooks rendered to HTML (notebooks.smk) -------------------------------------------
#: The notebooks in the repository's notebooks/ directory, by name (without .ipynb).
NOTEBOOKS = sorted(
    os.path.splitext(f)[0] for f in os.listdir(os.path.join(workflow.basedir, "notebooks")) if f.endswith(".ipynb")
) if os.path.isdir(os.path.join(workflow.basedir, "notebooks")) else []


def notebook_source(name):
    return os.path.join(workflow.basedir, "notebooks", f"{name}.ipynb")


def notebook_data(wildcards=None):
    """Pipeline outputs the notebooks read (01 explores the Figure 4 page tables), and outputs of
    jobs that run the same Numba kernels, so a fresh clone compiles them once, not twice at once
    (03 replays the memory manager like sim_replay; 04 sizes a host like host_whatif_run)."""
    out = []
    names = {name[:3] for name in NOTEBOOKS}
    if "01_" in names:
        out += fig04_page_tables() + ["results/sharing/sets/fig04-all.json"]
    if "03_" in names:
        out.append("results/sim/fig07.vms.parquet")
    if "04_" in names:
        out.append("results/host/fig04.json")
    return out


def notebook_outputs():
    if not config["notebooks"]["render"]:
        return []
    return expand("results/notebooks/{name}.html", name=NOTEBOOKS)


# --- sensitivity (workflow/rules/sensitivity.smk) -------------------------------------------
#: Figures whose unconfirmed parameters the sensitivity sweep moves (one tornado chart each).
SENS_FIGURES = ["fig02", "fig04", "fig05", "fig06", "fig07", "fig08"]


def sensitivity_in_report():
    """The tornado charts, for `rule all` while `snakemake --report` builds the report and once
    `snakemake sensitivity` has made them (issue 14: the report includes them when they have been
    run; the default run never makes them)."""
    from pagecore._smk import report_only_outputs

    charts = expand("results/figures/sensitivity_{fig}.png", fig=SENS_FIGURES)
    return report_only_outputs(sys.argv, charts, stamp=SENS_STAMP, digest=SENS_DIGEST)


#: The config digest the tornado charts were drawn under (rule sensitivity writes it)
SENS_STAMP = "results/sensitivity/config.sha256"
#: This config's digest, computed once per parse (rule all and rule sensitivity both use it)
SENS_DIGEST = config_digest(config)


def sensitivity_runs(wildcards=None):
    """One table per swept parameter, named after its key (``*`` written ``each``), plus the
    baseline run."""
    from pagecore.experiments import sweep_name, swept

    names = [sweep_name(p) for p in swept(tuple(SENS_FIGURES))]
    return expand("results/sensitivity/{param}.csv", param=["baseline"] + names)


def sensitivity_sweep(wildcards):
    """What the table ``wildcards.param`` sweeps, for the job's params: a changed range, or a
    parameter that moves other figures, makes the table again ("baseline": the defaults)."""
    from pagecore.experiments import swept_named

    if wildcards.param == "baseline":
        return "baseline"
    try:
        p = swept_named(wildcards.param, tuple(SENS_FIGURES))
    except KeyError as err:  # one line, as the config checks; no InputFunctionException
        sys.exit(f"pagecore: error: results/sensitivity/{wildcards.param}.csv: {err.args[0]}")
    return {"key": p.key, "low": p.low, "high": p.high, "relative": p.relative, "moves": list(p.moves)}
