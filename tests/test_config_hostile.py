"""Careless or inconsistent config is refused with one line naming the key, before any job runs.

Each case below once passed validation and then either changed a figure's numbers silently (an
unsorted τ schedule, a misspelled VM name in the Figure 8 split) or failed inside a job with a
traceback (a float where an integer belongs, a threshold outside the sweep, an unknown OS kind,
a guest size that leaves no page cache).
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pagecore.config import compared_figures, fig08_panel_vms
from pagecore.config import validate_config as _validate
from pagecore.errors import ConfigError
from pagecore.experiments.config_models import check_models

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"
_DEFAULT = yaml.safe_load((ROOT / "workflow/config/config.yaml").read_text())


def validate_config(cfg: dict, schema) -> dict:
    """What the Snakefile runs on a config: the schema and consistency checks, then the models'."""
    _validate(cfg, schema)
    check_models(cfg)
    return cfg


def default() -> dict:
    return copy.deepcopy(_DEFAULT)


def refusal(cfg: dict) -> str:
    with pytest.raises(ConfigError) as exc:
        validate_config(cfg, SCHEMA)
    msg = str(exc.value)
    assert "\n" not in msg, msg
    return msg


def test_the_default_config_passes():
    validate_config(default(), SCHEMA)


def _w(c):
    return c["workloads"]


CASES = [
    # 1. schedules
    (lambda c: _w(c)["fig07"].update(tau_schedule_min=[[30.9, 0.75], [0.0, 0.0]]), "workloads.fig07.tau_schedule_min"),
    (lambda c: _w(c)["fig07"].update(tau_schedule_min=[[0.0, 0.0], [0.0, 0.75]]), "workloads.fig07.tau_schedule_min"),
    (lambda c: _w(c)["fig07"].update(tau_schedule_min=[]), "workloads.fig07.tau_schedule_min"),
    (lambda c: _w(c)["fig07"].update(tau_schedule_min=[[0.0, 0.0], [70.0, 0.75]]), "workloads.fig07.tau_schedule_min"),
    (lambda c: _w(c)["fig06"].update(tau_schedule_min=[[5.0, 0.5], [1.0, 0.0]]), "workloads.fig06.tau_schedule_min"),
    (
        lambda c: _w(c)["fig06"]["vms"][0]["foreground"]["schedule"].reverse(),
        "workloads.fig06.vms[0].foreground.schedule[1]",
    ),
    (
        lambda c: _w(c)["fig06"]["vms"][0]["foreground"].update(schedule=[[0.0, 10.0, 50.0], [5.0, 12.0, 100.0]]),
        "workloads.fig06.vms[0].foreground.schedule[1]",
    ),
    (
        lambda c: _w(c)["fig06"]["vms"][0]["foreground"].update(schedule=[[10.0, 5.0, 50.0]]),
        "workloads.fig06.vms[0].foreground.schedule[0]",
    ),
    # 2. Figure 8 split
    (
        lambda c: _w(c).update(fig08_fit={"split": {"exchange": 1, "exchange_clent": 1, "citrix_client": 1}}),
        "workloads.fig08_fit.split.exchange_clent",
    ),
    (
        lambda c: _w(c).update(fig08_fit={"split": {"exchange": 1, "citrix_client": 1}}),
        "workloads.fig08_fit.split",
    ),
    (
        lambda c: _w(c).update(
            fig08_fit={"split": {"exchange": 1, "exchange_client": 1, "citrix_client": 1, "sql": 2}}
        ),
        "workloads.fig08_fit.split.sql",
    ),
    (
        lambda c: _w(c).update(fig08_fit={"split": {"exchange": 0, "exchange_client": 0, "citrix_client": 0}}),
        "workloads.fig08_fit.split",
    ),
    (lambda c: _w(c)["fig08"]["vms"][4].update(name="sql2000"), "workloads.fig08.vms"),
    # 3. integers
    (lambda c: c["synth"]["fig04"].update(vms=3.0), "synth.fig04.vms"),
    (lambda c: c["synth"]["fig04"].update(vms=True), "synth.fig04.vms"),
    (lambda c: c["bigcount"].update(partition_bits=1.0), "bigcount.partition_bits"),
    (lambda c: c["comparison"].update(seeds=[1.0, 2.0, 20021209]), "comparison.seeds[0]"),
    (lambda c: c["sim"].update(seed=2.5), "sim.seed"),
    (lambda c: c["sharing"]["salting"].update(mode=1.0), "sharing.salting.mode"),
    # 4. values only a job used to check
    (lambda c: c["reclaim"]["io"].update(threshold=3), "reclaim.io.threshold"),
    (lambda c: c["reclaim"]["io"].update(thresholds=[0, 16, 16]), "reclaim.io.thresholds"),
    (lambda c: c["reclaim"]["io"].update(low_pages=70000), "reclaim.io.low_pages"),
    (lambda c: c["host"].update(activity="lihgt"), "host.activity"),
    (lambda c: c["host"].update(activity="idle:1.5"), "host.activity"),
    (lambda c: c["host"].update(activity="active:lots"), "host.activity"),
    (lambda c: c["fig05"]["scenarios"]["A"]["guests"][0].update(os="lnux"), "fig05.scenarios.A.guests[0].os"),
    (lambda c: c["fig05"]["scenarios"]["B"]["guests"][1].update(apps=["apache2"]), "fig05.scenarios.B.guests[1].apps"),
    (lambda c: c["fig05"]["scenarios"]["C"]["guests"][1].update(name="c01"), "fig05.scenarios.C.guests[1].name"),
    (lambda c: c["reclaim"]["fig02"].update(fit_mb=[100, 300]), "reclaim.fig02.fit_mb"),
    (lambda c: c["reclaim"]["fig02"].update(fit_mb=[128.5, 256]), "reclaim.fig02.fit_mb"),
    (lambda c: c["reclaim"]["fig02"].update(fit_mb=[128, 128]), "reclaim.fig02.fit_mb"),
    (lambda c: c["reclaim"]["fig02"].update(sizes_mb=[20, 128, 256]), "reclaim.fig02.sizes_mb"),
    (lambda c: c["reclaim"]["paging"].update(reclaim_mb=[0, 32, 400]), "reclaim.paging.reclaim_mb"),
    (lambda c: c["reclaim"]["paging"].update(reclaim_mb=[0, 32, 180]), "reclaim.paging.reclaim_mb"),
    (lambda c: c["reclaim"]["paging"].update(boot_mb=[256, 24]), "reclaim.paging.boot_mb"),
    (lambda c: c["reclaim"]["guest"].update(fixed_mb=200.0), "reclaim.fig02.fit_mb"),
    # 5. tolerances
    (lambda c: c["comparison"]["tolerances"].update(fig09=0.1), "comparison.tolerances.fig09"),
    (lambda c: c["comparison"]["tolerances"].pop("fig02"), "comparison.tolerances.fig02"),
    # a percentage typed as one (5 for 5 %) counted every number within 500 %, 0 included
    (lambda c: c["comparison"]["tolerances"].update(fig07=5), "comparison.tolerances.fig07"),
    (lambda c: c["comparison"]["tolerances"].update(fig08=1.0), "comparison.tolerances.fig08"),
    # a misspelt unit left the real unit's reading-error floor at 0 without a word
    (lambda c: c["comparison"]["abs_floor"].update(mb=2.0), "comparison.abs_floor.mb"),
    # 6. intervals the replay runs in whole steps of the balloon poll (2.5 s ran as 2 s)
    (lambda c: c["sim"].update(record_s=2.5), "sim.record_s"),
    (lambda c: c["sim"].update(rebalance_s=7.5), "sim.rebalance_s"),
    (
        lambda c: c["sim"]["overrides"].setdefault("fig06", {}).update(balloon={"poll_s": 2.0}),
        "sim.overrides.fig06.record_s",
    ),
    # 7. sets and VM names (session 18 audit): a set named like a built-in one replaced it (Figure 5's
    # host A, and its numbers, by your own dumps), names differing in case are one file on macOS
    (lambda c: c["sharing"].update(sets={"fig05-A": ["fig04/vm01"]}), "sharing.sets.fig05-A"),
    (lambda c: c["sharing"].update(sets={"fig04-all": ["fig04/vm01", "fig04/vm02"]}), "sharing.sets.fig04-all"),
    (lambda c: c["sharing"].update(sets={"Fig04-1VM": ["fig04/vm01"]}), "sharing.sets.Fig04-1VM"),
    (lambda c: c["sharing"].update(sets={"web": ["fig04/vm01"], "Web": ["fig04/vm02"]}), "sharing.sets.Web"),
    (lambda c: c["sharing"].update(sets={"two": ["fig04/vm01", "fig04/vm01"]}), "sharing.sets.two"),
    (lambda c: c.update(dumps=[{"vm": "web", "path": "a.raw"}, {"vm": "WEB", "path": "b.raw"}]), "dumps[1].vm"),
    # each analysis gets the salts of its own VMs: a misspelt VM would salt nothing
    (lambda c: c["sharing"]["salting"].update(salts={"vm1": "tenantA"}), "sharing.salting.salts.vm1"),
]


@pytest.mark.parametrize("mutate,key", CASES, ids=[f"{i:02d}-{k}" for i, (_, k) in enumerate(CASES)])
def test_refused_with_one_line_naming_the_key(mutate, key):
    cfg = default()
    mutate(cfg)
    msg = refusal(cfg)
    assert msg.startswith(f"config key {key}:"), msg


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: _w(c)["fig07"].update(tau_schedule_min=[[0.0, 0.0], [10.0, 0.5], [30.9, 0.75]]),
        lambda c: _w(c)["fig06"].update(tau_schedule_min=[[0.0, 0.5]]),
        lambda c: _w(c).update(fig08_fit={"split": {"exchange": 1, "exchange_client": 0, "citrix_client": 2}}),
        lambda c: _w(c).update(fig08_fit={"split": "equal"}),
        lambda c: _w(c).update(fig08_fit=None),
        lambda c: c["reclaim"]["io"].update(threshold=1024),
        lambda c: c["host"].update(activity="idle:0.9"),
        lambda c: c["host"].update(activity=" active:0.3 "),
        lambda c: c["reclaim"]["fig02"].update(fit_mb=[160.0, 224]),
        lambda c: c["reclaim"]["paging"].update(reclaim_mb=[0, 32, 150]),
        lambda c: c["sharing"].update(sets={"fig05-mine": ["fig04/vm01"], "fig04-two": ["fig04/vm01", "fig04/vm02"]}),
        lambda c: c["sharing"]["salting"].update(salts={"vm01": "tenantA", "a01": "tenantA", "c03": "tenantB"}),
        lambda c: c["comparison"]["tolerances"].update(fig07=0.99, fig08=0),
        lambda c: c["comparison"].update(abs_floor={}),
    ],
)
def test_careful_variations_pass(mutate):
    cfg = default()
    mutate(cfg)
    validate_config(cfg, SCHEMA)


def test_float_integer_message_says_what_to_write():
    cfg = default()
    cfg["synth"]["fig04"]["vms"] = 3.0
    assert refusal(cfg) == "config key synth.fig04.vms: 3.0 is not an integer; write 3"


def test_command_line_strings_inside_a_split_mapping_are_read_as_yaml():
    """`--config 'workloads={"fig08_fit": {"split": {...}}}'` hands the weights over as strings;
    they sit under a oneOf and used to be refused as a whole mapping."""
    cfg = default()
    _w(cfg)["fig08_fit"] = {"split": {"exchange": "1", "exchange_client": "2", "citrix_client": "0.5"}}
    validate_config(cfg, SCHEMA)
    assert _w(cfg)["fig08_fit"]["split"] == {"exchange": 1, "exchange_client": 2, "citrix_client": 0.5}
    cfg = default()
    _w(cfg)["fig08_fit"] = {"split": {"exchange": "1", "exchange_clent": "1", "citrix_client": "1"}}
    assert refusal(cfg).startswith("config key workloads.fig08_fit.split.exchange_clent:")


# ---------------------------------------------------------------- lists read off the code
def test_fig08_panel_vms_are_the_fits():
    from pagecore.experiments.memory_manager import FIG08_PANEL_VMS

    assert fig08_panel_vms() == sorted(FIG08_PANEL_VMS)


def test_compared_figures_are_the_default_tolerances():
    assert compared_figures() == sorted(_DEFAULT["comparison"]["tolerances"])


# ---------------------------------------------------------------- through snakemake, before any job
def _dry_run(tmp_path, *args):
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "all", "--snakefile", str(ROOT / "Snakefile"), "--directory",
         str(tmp_path), "--cores", "1", "-n", *args],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_snakemake_refuses_an_unsorted_tau_schedule_from_a_configfile(tmp_path):
    extra = tmp_path / "over.yaml"
    extra.write_text(yaml.safe_dump({"workloads": {"fig07": {"tau_schedule_min": [[30.9, 0.75], [0.0, 0.0]]}}}))
    proc = _dry_run(tmp_path, "--configfile", str(extra))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "pagecore: error: config key workloads.fig07.tau_schedule_min: times must be strictly increasing" in out
    assert "Traceback" not in out


def test_snakemake_refuses_a_misspelled_split_vm_from_the_command_line(tmp_path):
    split = '{"fig08_fit": {"split": {"exchange": 1, "exchange_clent": 1, "citrix_client": 1}}}'
    proc = _dry_run(tmp_path, "--config", f"workloads={split}")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "pagecore: error: config key workloads.fig08_fit.split.exchange_clent: no Figure 8 VM" in out
    assert "Traceback" not in out


def test_snakemake_refuses_a_vm_that_cannot_be_before_any_job(tmp_path):
    """A workload VM whose OS does not fit in its memory failed only in its trace job (audit);
    the Snakefile builds every scenario's VMs (no trace) and refuses it in one line."""
    cfg = yaml.safe_load((ROOT / "workflow" / "config" / "config.yaml").read_text())
    vms = cfg["workloads"]["fig06"]["vms"]
    vms[0]["max_mb"] = vms[0]["boot"]["os_mb"] - 1
    extra = tmp_path / "over.yaml"
    extra.write_text(yaml.safe_dump({"workloads": {"fig06": {"vms": vms}}}))
    proc = _dry_run(tmp_path, "--configfile", str(extra))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out
    assert f"pagecore: error: workload {vms[0]['name']}: boot.os_mb" in out and "exceeds max_mb" in out


# ---------------------------------------------------------------- your dumps, as files (the Snakefile)
def _dump_refusal(dumps: list[dict]) -> str:
    from pagecore.config import check_dump_files

    with pytest.raises(ConfigError) as exc:
        check_dump_files({"dumps": dumps})
    msg = str(exc.value)
    assert "\n" not in msg, msg
    return msg


def test_dump_paths_that_are_no_regular_file_are_refused(tmp_path):
    """A directory or a FIFO failed inside its hashing job (a traceback), a symbolic-link loop with
    a traceback while Snakemake built its jobs (session 18 audit)."""
    import os

    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    for name, says in [("fifo", "is not a regular file"), ("dir", "is a directory"), ("loop1", "cannot be read")]:
        msg = _dump_refusal([{"vm": "a", "path": str(tmp_path / name)}])
        assert msg.startswith("config key dumps[0].path: ") and says in msg, msg
    assert "is not a regular file" in _dump_refusal([{"vm": "a", "path": "/dev/zero"}])
    braces = tmp_path / "du{mp}.raw"  # Snakemake stopped with a WildcardError naming 'mp'
    braces.write_bytes(bytes(4096))
    assert "which Snakemake reads as a wildcard" in _dump_refusal([{"vm": "a", "path": str(braces)}])


def test_one_dump_file_under_two_vm_names_is_refused(tmp_path):
    """The same file through a symbolic or a hard link, or one VMware guest by its .vmem and its
    .vmss, under two VM names: every page counted as shared between them, verified, exit 0 (only
    the same path spelled alike was refused, inside the sharing job after hashing both)."""
    import os

    import numpy as np

    from pagecore.config import check_dump_files
    from pagecore.dumps.vmware import write_vmware

    dump = tmp_path / "g.raw"
    dump.write_bytes(bytes(8192))
    (tmp_path / "sym.raw").symlink_to(dump)
    os.link(dump, tmp_path / "hard.raw")
    for other in ["sym.raw", "hard.raw", "../" + tmp_path.name + "/g.raw"]:
        msg = _dump_refusal([{"vm": "a", "path": str(dump)}, {"vm": "b", "path": str(tmp_path / other)}])
        assert msg.startswith("config key dumps[1].path: ") and "is the same file as dumps[0].path (VM 'a')" in msg
    write_vmware(tmp_path / "w.vmem", [(0, 0, 2)], np.ones((2, 4096), np.uint8))
    msg = _dump_refusal([{"vm": "a", "path": str(tmp_path / "w.vmem")}, {"vm": "b", "path": str(tmp_path / "w.vmss")}])
    assert "reads the same VMware guest as dumps[0].path" in msg
    (tmp_path / "copy.raw").write_bytes(dump.read_bytes())  # a copy: identical guests, as documented
    missing = tmp_path / "made-later.raw"  # may be a file the pipeline makes; Snakemake names it if not
    check_dump_files({"dumps": [{"vm": "a", "path": str(dump)}, {"vm": "b", "path": str(tmp_path / "copy.raw")},
                                {"vm": "c", "path": str(missing)}]})  # fmt: skip


def test_dump_formats_are_the_readers():
    """``dumps[].format`` was any string: a misspelt one failed inside its hashing job."""
    from pagecore.dumps import READERS

    schema = yaml.safe_load(SCHEMA.read_text())
    assert schema["properties"]["dumps"]["items"]["properties"]["format"]["enum"] == ["auto", *sorted(READERS)]
    cfg = default()
    cfg["dumps"] = [{"vm": "a", "path": "x.raw", "format": "rwa"}]
    assert refusal(cfg).startswith("config key dumps[0].format: 'rwa' is not one of")


def test_snakemake_refuses_a_dump_that_is_a_directory_before_any_job(tmp_path):
    extra = tmp_path / "over.yaml"
    extra.write_text(yaml.safe_dump({"dumps": [{"vm": "a", "path": str(tmp_path)}]}))
    proc = _dry_run(tmp_path, "--configfile", str(extra))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out
    assert f"pagecore: error: config key dumps[0].path: {tmp_path} is a directory, not a memory dump" in out


def test_fig05_table_from_config_takes_each_hosts_own_salts():
    """The sensitivity runs' Figure 5 table passed every salt to every host: a salted Figure 4 VM
    (the config's own example, {vm01: tenantA}) failed it ("--salt names VMs that are not in the
    page tables"). Each host gets the salts of its own guests."""
    from pagecore.experiments.sharing_figures import fig05_table_from_config

    cfg = default()
    tiny = {"guests": [{"name": "t1", "os": "linux", "mem_mb": 1}, {"name": "t2", "os": "linux", "mem_mb": 1}]}
    cfg["fig05"]["scenarios"] = {"A": tiny, "B": tiny, "C": tiny}
    cfg["sharing"]["salting"] = {"mode": 2, "salts": {"vm01": "tenantA", "t1": "tenantB", "t2": "tenantB"}}
    validate_config(cfg, SCHEMA)
    table = fig05_table_from_config(cfg)
    assert len(table) == 3


def test_fig05_names_of_one_content_tag_are_refused_before_any_job():
    """The synthetic guests key a guest's (application's, OS kind's) pages by a 16-bit tag of its
    name: scenario C with guests c01 and c02 renamed vm041 and vm086 (one tag) generated their
    private pages as one's, 38 % saved instead of 11 %; the s19 audit made GuestSet refuse it,
    inside the job. The config check now refuses it first, naming the key."""
    from pagecore._util import name_tag

    assert name_tag("vm041") == name_tag("vm086")
    cfg = default()
    guests = cfg["fig05"]["scenarios"]["C"]["guests"]
    guests[0]["name"], guests[1]["name"] = "vm041", "vm086"
    msg = refusal(cfg)
    assert "fig05.scenarios.C.guests" in msg and "'vm041' and 'vm086'" in msg
    cfg = default()
    cat = cfg["catalogue"]["apps"]
    cat["vm041"], cat["vm086"] = cat["ssh"], cat["ssh"]
    assert "catalogue.apps" in refusal(cfg)


def test_a_fig05_guest_of_no_page_is_refused():
    """A Figure 5 guest of mem_mb 0.0001 rounds to no page: `synth fig05` wrote "10 guests" of which
    one was empty, counted as nothing (s19 audit lead). Refused by the config check, naming the key,
    and by GuestSet for library callers."""
    from pagecore.synth.guests import Guest, GuestSet

    cfg = default()
    cfg["fig05"]["scenarios"]["C"]["guests"][2]["mem_mb"] = 0.0001
    assert "fig05.scenarios.C.guests[2].mem_mb" in refusal(cfg)
    c = default()
    with pytest.raises(ValueError, match="gives no 4 KiB page"):
        GuestSet.from_config(
            {**c["fig05"]["scenarios"]["C"], "guests": [{"name": "x", "os": "linux", "mem_mb": 0.0001}]},
            c["catalogue"], 1,
        )  # fmt: skip
    assert Guest("y", "linux", 1 / 256).pages == 1


def test_compared_records_carry_a_unit_abs_floor_may_name():
    """comparison.abs_floor refuses units outside COMPARED_UNITS, so a record in another unit
    would get no floor: the record refuses it."""
    from pagecore.config import COMPARED_UNITS
    from pagecore.experiments.records import Record

    for unit in COMPARED_UNITS:
        Record("fig08", "q", unit, 1.0, 1.0, "predicted")
    with pytest.raises(ValueError, match="unit must be one of"):
        Record("fig08", "q", "GB", 1.0, 1.0, "predicted")
