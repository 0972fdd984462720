"""The Snakemake pipeline end to end on a tiny config, checking the values it produces."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from slow_twins import sharing_by_content

from pagecore.pages import page_table_metadata

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.workflow


def tiny_config(**overrides):
    cfg = yaml.safe_load((ROOT / "workflow/config/config.yaml").read_text())
    cfg["synth"]["fig04"].update(vms=3, mem_mb=1, fitted_to=["shared_mb@1"])
    cfg["sharing"]["sets"] = {"two": ["fig04/vm01", "fig04/vm02"], "mixed": ["fig04/vm03", "user/mine"]}
    tiny = {
        "guests": [
            {"name": "t1", "os": "linux", "mem_mb": 2, "apps": ["mail"]},
            {"name": "t2", "os": "linux", "mem_mb": 1, "apps": ["mail"]},
        ]
    }
    cfg["fig05"]["scenarios"] = {"A": tiny, "B": tiny, "C": tiny}
    # short simulations: the replayed figures only compare what the short runs cover
    w = cfg["workloads"]
    w["fig06"]["duration_min"], w["fig07"]["duration_min"], w["fig08"]["duration_min"] = 5.0, 10.0, 10.0
    w["fig07"]["tau_schedule_min"] = [[0.0, 0.0], [6.0, 0.75]]
    cfg["sim"]["whatif"] = {k: v[:1] for k, v in cfg["sim"]["whatif"].items()}
    # short reclamation traces (Figure 2, paging, I/O remapping)
    cfg["reclaim"]["trace"]["refs"] = 200_000
    cfg["reclaim"]["io"]["ios"] = 50_000
    cfg["notebooks"]["render"] = False  # rendered by test_notebook_rendered_from_the_results alone
    cfg["comparison"]["seeds"] = [cfg["sim"]["seed"], 1]
    for k, v in overrides.items():
        cfg[k] = v
    if not cfg.get("dumps"):  # sets may only name dumps that the config lists
        cfg["sharing"]["sets"].pop("mixed")
    return cfg


def snakemake(workdir: Path, cfg: dict, *extra, check=True, target="all"):
    cfgfile = workdir / "config.yaml"
    workdir.mkdir(parents=True, exist_ok=True)
    cfgfile.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            target,
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--directory",
            str(workdir),
            "--configfile",
            str(cfgfile),
            "--cores",
            "2",
            "--quiet",
            "all",
            *extra,
        ],  # --quiet takes "all"
        capture_output=True,
        text=True,
        timeout=3000,  # the tiny pipeline takes many minutes on a loaded 2-core machine
    )
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    wd = tmp_path_factory.mktemp("wf")
    user = wd / "mydump.raw"
    user.write_bytes(bytes(4096) * 3 + b"\x07" * 4096 * 2)
    snakemake(wd, tiny_config(dumps=[{"vm": "mine", "path": str(user)}]))
    return wd


def test_sweep_values_equal_content_grouping_of_the_dumps(run_dir):
    sweep = pd.read_csv(run_dir / "results/sharing/fig04.sweep.csv")
    assert sweep["vms"].tolist() == [1, 2, 3]
    pages = []
    for i in (1, 2, 3):
        raw = (run_dir / f"results/synth/fig04/vm{i:02d}.raw").read_bytes()
        assert len(raw) == 256 * 4096
        pages += [raw[o : o + 4096] for o in range(0, len(raw), 4096)]
        twin = sharing_by_content(pages)
        row = sweep.iloc[i - 1]
        for k, v in twin.items():
            assert row[k] == v, (i, k)
        assert row["reclaimed_mb"] == pytest.approx(twin["reclaimed_pages"] / 256)


def test_numbers_file_shape_and_values(run_dir):
    recs = json.loads((run_dir / "results/numbers/fig04.json").read_text())
    sweep = pd.read_csv(run_dir / "results/sharing/fig04.sweep.csv").set_index("vms")
    assert recs and all(set(r) == {"figure", "quantity", "unit", "paper", "ours", "kind", "source"} for r in recs)
    kinds = {r["quantity"]: r["kind"] for r in recs}
    assert kinds["shared_mb@1"] == "fitted" and kinds["reclaimed_mb@3"] == "predicted"
    for r in recs:
        col, n = r["quantity"].split("@")
        assert r["ours"] == pytest.approx(sweep.at[int(n), col], rel=1e-6)


def test_figures_exist(run_dir):
    png = (run_dir / "results/figures/fig04_page_sharing.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert (run_dir / "results/figures/fig04_page_sharing.pdf").read_bytes().startswith(b"%PDF")


def test_user_dumps_are_analysed(run_dir):
    rep = json.loads((run_dir / "results/sharing/user.json").read_text())
    assert rep["total_pages"] == 5 and rep["zero_pages"] == 3
    assert rep["reclaimed_pages"] == 3 and rep["shared_pages"] == 5
    assert set(rep["by_vm"]) == {"mine"}


def test_same_inputs_same_bytes(run_dir, tmp_path):
    user = run_dir / "mydump.raw"
    snakemake(tmp_path, tiny_config(dumps=[{"vm": "mine", "path": str(user)}]))
    # a page table records where its dump is (an absolute path), so only that field may differ
    a, b = (pq.read_table(d / "results/pages/fig04/vm02.parquet") for d in (tmp_path, run_dir))
    assert a.equals(b)
    ma, mb = (page_table_metadata(d / "results/pages/fig04/vm02.parquet") for d in (tmp_path, run_dir))
    assert ma.pop("source_path") != mb.pop("source_path") and ma == mb
    for rel in [
        "results/sharing/fig04.sweep.csv",
        "results/numbers/fig04.json",
        "results/figures/fig04_page_sharing.png",
        "results/figures/fig04_page_sharing.pdf",
        "results/sharing/user.json",
    ]:
        assert (tmp_path / rel).read_bytes() == (run_dir / rel).read_bytes(), rel


@pytest.mark.parametrize(
    "mutate,needle",
    [
        (lambda c: c["synth"]["fig04"].update(vms=-3), "synth.fig04.vms"),
        (lambda c: c["synth"]["fig04"]["fractions"].update(zero="lots"), "synth.fig04.fractions.zero"),
        (lambda c: c["hashing"].update(chunk_pagez=5), "hashing.chunk_pagez"),
        (lambda c: c.update(dumps=[{"vm": "bad name!", "path": "x"}]), "dumps[0].vm"),
        (lambda c: c["sim"]["states"].update(high_pct=1, low_pct=5), "sim.states"),
        (lambda c: c["sim"]["balloon"].update(rate_min_mb_s=20), "sim.balloon.rate_min_mb_s"),
        (lambda c: c["sharing"].update(sets={"x": ["fig04/vm09"]}), "sharing.sets.x"),
        (lambda c: c["sharing"].update(sets={"x": ["user/nobody"]}), "sharing.sets.x"),
    ],
    ids=["negative", "wrong-type", "unknown-key", "bad-vm-name", "thresholds", "rates", "no-guest", "no-dump"],
)
def test_bad_config_value_names_the_key(tmp_path, mutate, needle):
    cfg = tiny_config()
    mutate(cfg)
    proc = snakemake(tmp_path, cfg, "--dry-run", check=False)
    assert proc.returncode != 0
    assert f"pagecore: error: config key {needle}" in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr + proc.stdout  # one line, before any job runs


def test_set_reports_and_sets_summary(run_dir):
    table = pd.read_csv(run_dir / "results/sharing/sets_summary.csv").set_index("workload")
    assert set(table.index) == {"two", "mixed", "fig04-1vm", "fig04-all", "fig05-A", "fig05-B", "fig05-C"}
    assert table.at["fig04-all", "vms"] == 3
    two = json.loads((run_dir / "results/sharing/sets/two.json").read_text())
    sweep = pd.read_csv(run_dir / "results/sharing/fig04.sweep.csv").set_index("vms")
    assert two["verified"] is True and two["false_matches"] == 0
    assert two["reclaimed_pages"] == sweep.at[2, "reclaimed_pages"]
    assert table.at["two", "reclaimed_mb"] == pytest.approx(sweep.at[2, "reclaimed_mb"])
    mixed = json.loads((run_dir / "results/sharing/sets/mixed.json").read_text())
    assert mixed["total_pages"] == 256 + 5 and set(mixed["by_vm"]) == {"vm03", "mine"}
    assert "salting" in mixed and mixed["salting"]["mode"] == 2


def test_bigcount_scatter_count_gather_equals_in_core(tmp_path):
    """The partitioned pipeline gives exactly the in-core counts of the same synthetic pages."""
    import numpy as np

    from pagecore.sharing import count_sharing
    from pagecore.synth.fig04 import Fig04Model

    cfg = tiny_config()
    cfg["bigcount"] = {"vms": 6, "mem_mb": 1, "vms_per_shard": 4, "partition_bits": 2, "seed": 5}
    snakemake(tmp_path, cfg, target="bigcount")
    got = json.loads((tmp_path / "results/bigcount/report.json").read_text())
    assert got["partitions"] == 4 and got["vms"] == 6
    f = cfg["synth"]["fig04"]
    model = Fig04Model(mem_mb=1, variants=f["variants"], seed=5, **f["fractions"])
    hs, zs, vs = [], [], []
    for v in range(6):
        _, h, z = model.page_table(v)
        hs.append(h)
        zs.append(z)
        vs.append(np.full(len(h), v))
    want = count_sharing(
        np.concatenate(hs), np.concatenate(zs), np.concatenate(vs), [f"vm{v:05d}" for v in range(1, 7)]
    ).to_dict()
    for k in (
        "total_pages",
        "zero_pages",
        "shared_pages",
        "reclaimed_pages",
        "intra_vm_saved_pages",
        "inter_vm_saved_pages",
        "ksm",
    ):
        assert got[k] == want[k], k
    assert not (tmp_path / "results/bigcount/scatter").exists() or not any(
        (tmp_path / "results/bigcount/scatter").iterdir()
    )


def test_fig05_outputs(run_dir):
    recs = json.loads((run_dir / "results/numbers/fig05.json").read_text())
    assert {r["quantity"].split("@")[1] for r in recs} == {"A", "B", "C"}
    kinds = {r["quantity"]: r["kind"] for r in recs}
    assert kinds["reclaimed_mb@A"] == "fitted" and kinds["shared_mb@C"] == "predicted"
    rep = json.loads((run_dir / "results/sharing/sets/fig05-A.json").read_text())
    assert rep["total_pages"] == 3 * 256 and rep["verified"] is False  # hash-only tables
    assert "hash-only table (no dump behind it)" in rep["verification"]["reason"]
    assert (run_dir / "results/figures/fig05_real_world_sharing.png").read_bytes().startswith(b"\x89PNG")
    side = pd.read_csv(run_dir / "results/numbers/fig05_vs_paper.csv").set_index("workload")
    # the paper's own structure (pagecore.sharing.fig05_structure): B's 469 MB of non-zero shared
    # in 194 MB of contents, at most (275 - 194)/7 MB in all nine VMs
    assert side.at["B", "distinct_mb_paper"] == pytest.approx(194)
    assert side.at["B", "max_common_mb_paper"] == pytest.approx(81 / 7)
    assert side.at["B", "distinct_mb"] == pytest.approx(side.at["B", "shared_mb"] - side.at["B", "reclaimed_mb"])


def test_comparison_gathers_every_figure(run_dir):
    table = pd.read_csv(run_dir / "results/numbers/comparison.csv")
    assert set(table["figure"]) >= {"fig04", "fig05", "fig06", "fig07", "fig08"}
    assert set(table.columns) == {
        "seed",
        "figure",
        "quantity",
        "unit",
        "paper",
        "ours",
        "rel_error",
        "tolerance",
        "within",
        "kind",
        "source",
        "null",
        "null_rel_error",
        "null_within",
        "nontrivial",
    }
    n = 0
    for path in sorted((run_dir / "results/numbers").glob("fig0?.json")):
        n += len(json.loads(path.read_text()))
    seeds = json.loads(json.dumps(tiny_config()["comparison"]["seeds"]))
    assert len(table[table.seed == seeds[0]]) == n
    assert set(table.seed) == set(seeds)  # every seed scored (Figures 6-8 re-run at the others)
    row = table[(table.figure == "fig04") & (table.quantity == "reclaimed_mb@3")].iloc[0]
    assert row["within"] == (abs(row["ours"] - row["paper"]) <= max(0.10 * row["paper"], 2.0))
    summary = (run_dir / "results/numbers/comparison.txt").read_text()
    assert "predicted within" in summary and "null within" in summary and "fig04" in summary
    assert f"over {len(seeds)} seeds" in summary
    prov = pd.read_csv(run_dir / "results/numbers/provenance.csv")
    assert {"key", "kind", "source"} <= set(prov.columns) and "sim.tau" in set(prov.key)
    assert set(table.kind) <= {"fitted", "input", "predicted"}
    assert table[table.kind != "predicted"]["source"].notna().all()


def test_reclaim_outputs(run_dir):
    """Figure 2 numbers keep the shared shape; the configured bars are fitted, the rest predicted."""
    recs = {r["quantity"]: r for r in json.loads((run_dir / "results/numbers/fig02.json").read_text())}
    assert recs["configured_mbps@128"]["kind"] == "fitted" and recs["configured_mbps@128"]["ours"] == pytest.approx(
        11.47
    )
    assert recs["overhead_pct@128"]["kind"] == "predicted"
    assert "ballooned_mbps@224" not in recs  # = configured x (1 - overhead): compared once, as the overhead
    fit = json.loads((run_dir / "results/fits/fig02_cost.json").read_text())
    assert fit["targets"] == {"paper.FIG02 configured_mbps@128": 11.47, "paper.FIG02 configured_mbps@256": 17.80}
    io = json.loads((run_dir / "results/numbers/io_remap.json").read_text())
    assert io["network"]["copies_with_remapping"] < io["network"]["copies_without_remapping"]
    for fig in ("fig02_balloon_performance", "reclaim_balloon_vs_paging", "io_remapping"):
        assert (run_dir / f"results/figures/{fig}.png").read_bytes().startswith(b"\x89PNG")


def dry_run(workdir: Path, cfg: dict, *extra) -> dict[str, dict[str, str]]:
    """The jobs a dry run in ``workdir`` would run, as ``rule`` or ``rule[wildcards]``, each with
    the fields Snakemake prints for it (``priority``, ``reason``, ...)."""
    cfgfile = workdir / "config.planned.yaml"
    cfgfile.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
         "--configfile", str(cfgfile), "--cores", "2", "--dry-run", *extra],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs, rule, fields = {}, None, {}
    for line in [*(proc.stdout + "\n" + proc.stderr).splitlines(), ""]:
        m = re.match(r"^(?:local)?rule (\w+):$", line.strip())
        if m or not line.strip():
            if rule:
                wc = fields.get("wildcards", "")
                jobs[f"{rule}[{wc}]" if wc else rule] = fields
            rule, fields = (m.group(1), {}) if m else (None, {})
        elif rule and ":" in line:
            key, value = line.split(":", 1)
            fields[key.strip()] = value.strip()
    return jobs


def planned_jobs(workdir: Path, cfg: dict, *extra) -> set[str]:
    """The jobs a dry run in ``workdir`` would run, as ``rule`` or ``rule[wildcards]``."""
    return set(dry_run(workdir, cfg, *extra))


def test_nothing_to_do_after_a_run(run_dir):
    cfg = tiny_config(dumps=[{"vm": "mine", "path": str(run_dir / "mydump.raw")}])
    assert planned_jobs(run_dir, cfg) == set()


def test_a_dump_replaced_under_its_old_mtime_is_hashed_again(tmp_path):
    """A dump copied over by another file of the same size with its modification time set back
    (``cp -p``, a restored copy, ``touch -d``): Snakemake saw no input newer than the page table,
    so the old table and the report made from it stood, with exit 0 (session 18 audit). The
    hashing rule's params hold the dump's size, times and inode, so it is hashed again."""
    import os

    dump = tmp_path / "guest.raw"
    dump.write_bytes(bytes(4096) * 3 + b"\x07" * 4096 * 2)
    cfg = tiny_config(dumps=[{"vm": "mine", "path": str(dump)}])
    snakemake(tmp_path, cfg, target="results/sharing/user.json")
    before = json.loads((tmp_path / "results/sharing/user.json").read_text())
    assert before["total_pages"] == 5 and before["reclaimed_pages"] == 3
    st = dump.stat()
    dump.write_bytes(b"".join(bytes([i + 1]) * 4096 for i in range(5)))  # 5 different pages, same size
    os.utime(dump, ns=(st.st_atime_ns, st.st_mtime_ns))  # the old modification time, to the nanosecond
    assert dump.stat().st_size == st.st_size and dump.stat().st_mtime_ns == st.st_mtime_ns
    snakemake(tmp_path, cfg, target="results/sharing/user.json")
    after = json.loads((tmp_path / "results/sharing/user.json").read_text())
    assert after["total_pages"] == 5 and after["reclaimed_pages"] == 0 and after["zero_pages"] == 0
    assert planned_jobs(tmp_path, cfg, "results/sharing/user.json") == set()  # and then up to date


def test_a_new_hash_key_under_the_same_variable_hashes_again(tmp_path, monkeypatch):
    """``hashing.key_env`` names a variable; a new secret in it changed no param, so every page
    table kept the old key and a dump added later was refused beside them (session 18 audit).
    The hashing rules' params hold the key's fingerprint; an unset variable is one line before
    any job (it failed inside the first hashing job)."""
    from pagecore.pages import PageKey

    dump = tmp_path / "guest.raw"
    dump.write_bytes(bytes(4096) * 3 + b"\x07" * 4096 * 2)
    cfg = tiny_config(dumps=[{"vm": "mine", "path": str(dump)}])
    cfg["hashing"]["key_env"] = "PAGECORE_S18_TEST_KEY"
    table = tmp_path / "results/pages/user/mine.parquet"
    ids = []
    for secret in ("first secret of 32 bytes........", "second secret of 32 bytes......."):
        monkeypatch.setenv("PAGECORE_S18_TEST_KEY", secret)
        snakemake(tmp_path, cfg, target="results/pages/user/mine.parquet")
        ids.append(page_table_metadata(table)["hash_key_id"])
        assert ids[-1] == PageKey.from_env("PAGECORE_S18_TEST_KEY").key_id
    assert ids[0] != ids[1]
    monkeypatch.delenv("PAGECORE_S18_TEST_KEY")
    proc = snakemake(tmp_path, cfg, "--dry-run", check=False, target="results/pages/user/mine.parquet")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out
    assert "pagecore: error: hash key variable PAGECORE_S18_TEST_KEY is not set or empty" in out


def test_salts_of_vms_outside_a_set_do_not_fail_it(tmp_path):
    """``sharing.salting.salts`` naming a VM failed every analysis without that VM ("--salt names
    VMs that are not in the page tables"), so the config's own example ({vm01: tenantA}) failed
    the Figure 5 sets and your dumps' report (session 18 audit). Each analysis gets the salts of
    its own VMs."""
    dumps = []
    for vm, fill in (("a", 1), ("b", 2)):
        (tmp_path / f"{vm}.raw").write_bytes(bytes([fill]) * 4096 * 2 + bytes(4096))
        dumps.append({"vm": vm, "path": str(tmp_path / f"{vm}.raw")})
    cfg = tiny_config(dumps=dumps)
    cfg["sharing"]["sets"] = {"both": ["user/a", "user/b"], "bonly": ["user/b"]}
    cfg["sharing"]["salting"] = {"mode": 1, "salts": {"a": "tenantA"}}
    targets = ["results/sharing/sets/both.json", "results/sharing/sets/bonly.json"]
    for t in targets:
        snakemake(tmp_path, cfg, target=t)
    both, bonly = (json.loads((tmp_path / t).read_text())["salting"] for t in targets)
    assert both["domains"] == {"a": 0, "b": 1} and bonly["domains"] == {"b": 0}
    cfg["sharing"]["salting"]["salts"]["b"] = "tenantA"  # the set without "a" must not be rerun for "a"
    assert planned_jobs(tmp_path, cfg, *targets) == {"share_set[set=both]", "share_set[set=bonly]"}
    cfg["sharing"]["salting"]["salts"] = {"a": "tenantB"}
    assert planned_jobs(tmp_path, cfg, *targets) == {"share_set[set=both]"}


def test_more_fig04_guests_rerun_only_what_depends_on_them(run_dir):
    """A fourth guest: the three existing ones are neither regenerated nor rehashed."""
    cfg = tiny_config(dumps=[{"vm": "mine", "path": str(run_dir / "mydump.raw")}])
    cfg["synth"]["fig04"]["vms"] = 4
    jobs = planned_jobs(run_dir, cfg)
    assert "fig04_guest[idx=04]" in jobs
    assert not {j for j in jobs if j.startswith("fig04_guest") and "04]" not in j}
    assert "share_set[set=fig04-all]" in jobs and "fig04_sweep" in jobs
    for untouched in ("share_set[set=two]", "share_set[set=fig05-A]", "sim_trace[scenario=fig06]", "reclaim_guest"):
        assert untouched not in jobs, untouched


def test_a_new_set_reruns_only_that_set(run_dir):
    cfg = tiny_config(dumps=[{"vm": "mine", "path": str(run_dir / "mydump.raw")}])
    cfg["sharing"]["sets"]["three"] = ["fig04/vm01", "fig04/vm03"]
    jobs = planned_jobs(run_dir, cfg)
    assert {j for j in jobs if j.startswith("share_set")} == {"share_set[set=three]"}
    assert not {j for j in jobs if j.startswith(("synth_", "hash_", "sim_", "reclaim_", "scan_"))}


def test_nested_config_values_from_the_command_line(run_dir):
    """Snakemake passes nested --config values as strings; they are read as YAML before validation."""
    cfg = tiny_config(dumps=[{"vm": "mine", "path": str(run_dir / "mydump.raw")}])
    jobs = planned_jobs(run_dir, cfg, "--config", 'sim={"tau": 0.5}')
    # τ = 0.5 reaches the replay of the scenarios without a τ schedule of their own, not the traces
    assert "sim_replay[scenario=fig06]" in jobs and not {j for j in jobs if j.startswith("sim_trace")}
    jobs = planned_jobs(run_dir, cfg, "--config", 'fig04_real={"enabled": true, "vms": 2}')
    assert "capture_identical_guests" in jobs and "hash_real_guest[idx=02]" in jobs


def test_report_builds_with_the_main_dependencies(run_dir):
    cfg = tiny_config(dumps=[{"vm": "mine", "path": str(run_dir / "mydump.raw")}])
    snakemake(run_dir, cfg, "--report", "results/report.html")
    html = (run_dir / "results/report.html").read_bytes()
    assert html.startswith(b"<!DOCTYPE html>") or b"<html" in html[:2000]
    assert len(html) > 100_000


def test_report_dependencies_are_main_dependencies():
    """`snakemake --report` right after `pip install -e .` needs pygments: snakemake[reports]."""
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.replace(" ", "").startswith("snakemake[reports]") for d in deps), deps


def test_notebook_rendered_from_the_results(run_dir):
    """The pipeline executes notebook 01 on its own Figure 4 page tables and renders HTML with images."""
    cfg = tiny_config(dumps=[{"vm": "mine", "path": str(run_dir / "mydump.raw")}])
    snakemake(run_dir, cfg, target="results/notebooks/01_explore_page_sharing.html")
    html = (run_dir / "results/notebooks/01_explore_page_sharing.html").read_text()
    assert "data:image/png;base64," in html or 'src="data:image/png' in html
    assert "the pipeline&#39;s page tables" in html or "the pipeline's page tables" in html
    assert "3 page tables" in html and "Traceback" not in html


def test_large_page_rule_on_the_fig04_guests(tmp_path):
    """The large-page rule alone (issue 16): region counts and savings against the slow twin of
    tests/test_largepages.py; its figure and summary are in the default target."""
    from test_largepages import slow_savings

    cfg = tiny_config()
    cfg["synth"]["fig04"].update(vms=2, mem_mb=4)  # 1,024 pages each: two 2 MiB regions per guest
    wd = tmp_path / "wf"
    snakemake(wd, cfg, target="results/figures/large_page_breaking_fig04.png")
    summary = json.loads((wd / "results/largepages/fig04.summary.json").read_text())
    assert set(summary) == {"2 guests", "vm01 alone"}
    rows = []
    for t in sorted((wd / "results/pages/fig04").glob("vm*.parquet")):
        d = pq.read_table(t).to_pandas()
        rows += [(str(v), int(g), int(h), bool(z), 0) for v, g, h, z in zip(d.vm, d.gpfn, d.hash, d.zero, strict=True)]
    regions = {(v, g // 512) for v, g, *_ in rows}
    s = summary["2 guests"]
    assert s["regions"] == len(regions) == 4 and s["backable_regions"] == 4
    assert s["saved_pages_small_pages"] == slow_savings(rows, regions)
    assert s["saved_pages_if_backed"] == 0 and s["lost_pages_if_backed"] == s["saved_pages_small_pages"]
    one = summary["vm01 alone"]
    assert one["saved_pages_small_pages"] == slow_savings([r for r in rows if r[0] == "vm01"], regions)
    curves = pd.read_parquet(wd / "results/largepages/fig04.curves.parquet")
    assert curves.groupby("set")["saved_fraction"].max().tolist() == [1.0, 1.0]
    assert (wd / "results/figures/large_page_breaking_fig04.pdf").read_bytes().startswith(b"%PDF")
    dry = snakemake(wd, cfg, "--dry-run", "--forceall", check=False)
    assert "large_page_breaking" in dry.stdout + dry.stderr


def test_scheduling_priorities_put_one_job_per_kernel_family_first(tmp_path):
    """The default run's dry run carries PRIORITY (workflow/rules/common.smk): the first Figure 4
    guest and the Figure 7 replay (they compile the page filler and the replay kernels on a fresh
    clone) ahead of their siblings, the two longest jobs ahead of the figures."""
    cfg = yaml.safe_load((ROOT / "workflow/config/config.yaml").read_text())
    prio = {job: int(fields["priority"]) for job, fields in dry_run(tmp_path, cfg).items() if "priority" in fields}
    guests = {k: v for k, v in prio.items() if k.startswith("fig04_guest[")}
    replays = {k: v for k, v in prio.items() if k.startswith("sim_replay[")}
    assert len(guests) == cfg["synth"]["fig04"]["vms"] and len(replays) == 3
    assert guests.pop("fig04_guest[idx=01]") > max(guests.values())
    assert replays.pop("sim_replay[scenario=fig07]") > max(replays.values())
    figures = [v for k, v in prio.items() if k.startswith("figures_")]
    assert len(figures) == 4
    assert min(prio["seed_numbers"], prio["render_notebooks"]) > max(figures)


def test_scripts_read_the_config_only_through_params():
    """Snakemake runs a job again when its params change, not when a config value its script
    reads directly does: the sensitivity tables read ``snakemake.config`` and stayed stale (and fed
    the tornado charts) after any config change, and were then called up to date under the old
    config again (session 17 audit). Every script reads what it needs from ``snakemake.params``."""
    scripts = sorted((Path(__file__).resolve().parents[1] / "workflow" / "scripts").glob("*.py"))
    assert len(scripts) > 20
    readers = [p.name for p in scripts if "snakemake.config" in p.read_text()]
    assert readers == []
