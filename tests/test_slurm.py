"""bigcount through a real (single-node) SLURM with the repository's profile equals the local run.

Installs SLURM from the distribution's packages if missing and starts munged, slurmctld and
slurmd with ``workflow/profiles/slurm/local-cluster.sh``; skips with the reason where that is
not possible (not root, no apt-get, no network, daemons that do not come up). Daemons this test
started are stopped at the end; a cluster that was already running is left running.
Run with ``pytest -m slow tests/test_slurm.py`` (about 1–2 minutes).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "workflow/profiles/slurm/local-cluster.sh"
pytestmark = [pytest.mark.slow, pytest.mark.workflow]

# a few VMs of a few MB: 2 shards, 4 partitions -> 2 + 2 + 4 SLURM jobs and a local gather
#: large enough VMs that every stage asks SLURM for its own memory (at 8 MB a VM every stage asked
#: 801 MiB, so the memory assertion below could not fail: audit C), still seconds of work a job
BIG = {"vms": 4, "mem_mb": 512, "vms_per_shard": 2, "partition_bits": 2, "seed": 7}


def _script(cmd: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), cmd], capture_output=True, text=True, timeout=timeout)


def _last_line(proc: subprocess.CompletedProcess) -> str:
    lines = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()
    return lines[-1]


@pytest.fixture(scope="module")
def slurm():
    """A running single-node SLURM; yields the environment for its clients."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("needs root on Linux to install and start SLURM (munged, slurmctld, slurmd)")
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip("snakemake-executor-plugin-slurm is not installed: pip install -e '.[cluster]'")
    if shutil.which("slurmctld") is None:
        if shutil.which("apt-get") is None:
            pytest.skip("SLURM is not installed and there is no apt-get to install slurm-wlm and munge")
        proc = _script("install", timeout=900)
        if proc.returncode != 0:
            pytest.skip(f"cannot install SLURM (local-cluster.sh install): {_last_line(proc)}")
    was_running = _script("status", timeout=60).returncode == 0
    proc = _script("start", timeout=180)
    if proc.returncode != 0:
        pytest.skip(f"cannot start SLURM (local-cluster.sh start): {_last_line(proc)}")
    conf = _script("env", timeout=10).stdout.strip().split("=", 1)[1]
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "SLURM_CONF": conf, "PYTHONPATH": path}
    try:
        yield env
    finally:
        if not was_running:
            _script("stop", timeout=120)


def _bigcount(workdir: Path, env: dict, *extra: str) -> subprocess.CompletedProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "config.yaml"
    cfg.write_text(yaml.safe_dump({"bigcount": BIG}))
    cmd = [sys.executable, "-m", "snakemake", "bigcount", "--snakefile", str(ROOT / "Snakefile")]
    cmd += ["--directory", str(workdir), "--configfile", str(cfg), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def _rule_mem_mb() -> dict[str, int]:
    """Each stage's memory as workflow/rules/common.smk's bigcount_mem_mb asks it; the count jobs'
    with the Figure 4 model's content classes (and unlike a count job that ignored them)."""
    from pagecore.sharing.bigplan import job_mem_mb
    from pagecore.synth import Fig04Model

    fig04 = yaml.safe_load((ROOT / "workflow/config/config.yaml").read_text())["synth"]["fig04"]
    model = Fig04Model(mem_mb=BIG["mem_mb"], variants=fig04["variants"], seed=BIG["seed"], **fig04["fractions"])
    out = {stage: job_mem_mb(BIG, stage) for stage in ("shard", "scatter", "gather")}
    out["count"] = job_mem_mb(BIG, "count", classes=model.content_classes(BIG["vms"]))
    out["count without classes"] = job_mem_mb(BIG, "count")
    return out


def test_the_expected_job_memory_tells_the_stages_apart():
    """Runs without SLURM: the sizes above give each stage, and a count job without the content
    model's classes, a memory request of its own."""
    want = _rule_mem_mb()
    assert len(set(want.values())) == len(want), want


def test_bigcount_through_slurm_equals_local_run(slurm, tmp_path):
    local = tmp_path / "local"
    t0 = time.perf_counter()
    _bigcount(local, slurm, "--cores", "2")
    t1 = time.perf_counter()
    cluster = tmp_path / "slurm"
    proc = _bigcount(
        cluster,
        slurm,
        "--profile",
        str(ROOT / "workflow/profiles/slurm"),
        # no slurmdbd here: job status from squeue (MinJobAge=600 s in local-cluster.sh's slurm.conf)
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "5",
        "--slurm-keep-successful-logs",
    )
    t2 = time.perf_counter()
    print(f"\nbigcount {BIG}: local run {t1 - t0:.1f} s, through SLURM {t2 - t1:.1f} s (pytest -s shows this)")
    want = json.loads((local / "results/bigcount/report.json").read_text())
    got = json.loads((cluster / "results/bigcount/report.json").read_text())
    assert got == want
    assert want["vms"] == BIG["vms"] and want["total_pages"] == BIG["vms"] * BIG["mem_mb"] * 256
    # the shard, scatter and count jobs really ran as SLURM jobs (one sbatch log each) ...
    logs = cluster / ".snakemake/slurm_logs"
    per_rule = {r: len(list((logs / f"rule_{r}").rglob("*.log"))) for r in ("bigcount_shard", "bigcount_scatter")}
    per_rule["bigcount_count"] = len(list((logs / "rule_bigcount_count").rglob("*.log")))
    assert per_rule == {"bigcount_shard": 2, "bigcount_scatter": 2, "bigcount_count": 4}, per_rule
    # ... and each asked SLURM for the memory bigplan estimates, as the rules compute it (common.smk
    # bigcount_mem_mb: the count jobs with the content model's classes), not the profile's default
    out = proc.stdout + proc.stderr
    want_mb = _rule_mem_mb()
    assert len(set(want_mb.values())) == len(want_mb), want_mb  # the stages are told apart
    for stage in ("shard", "scatter", "count"):
        assert f"mem_mb={want_mb[stage]}," in out, (stage, want_mb)
    assert f"mem_mb={want_mb['count without classes']}," not in out, want_mb
    assert "mem_mb=4000," not in out
    # temporary page tables are gone on the shared file system, as in a local run
    for d in ("pages", "scatter"):
        assert not any((cluster / "results/bigcount" / d).glob("*.parquet")), d
