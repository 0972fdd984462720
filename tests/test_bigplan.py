"""bigcount's size plan: disk space check before it starts, memory per job."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pagecore.errors import ConfigError
from pagecore.sharing import bigplan

ROOT = Path(__file__).resolve().parents[1]
FULL = yaml.safe_load((ROOT / "workflow/config/config.yaml").read_text())["bigcount"]


def test_full_size_counts_a_billion_pages_and_needs_tens_of_gb():
    assert bigplan.total_pages(FULL) == 1024 * 4096 * 256 == 1_073_741_824
    assert bigplan.disk_bytes(FULL) == 1_073_741_824 * bigplan.DISK_BYTES_PER_PAGE


def test_disk_estimate_covers_the_files_a_run_writes(tmp_path):
    """Every temporary file of a small run, kept with --notemp, fits in the estimate."""
    big = {"vms": 3, "mem_mb": 4, "vms_per_shard": 2, "partition_bits": 1, "seed": 3}
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"bigcount": big}))
    cmd = [sys.executable, "-m", "snakemake", "bigcount", "--snakefile", str(ROOT / "Snakefile")]
    cmd += ["--directory", str(tmp_path), "--configfile", str(cfg), "--cores", "2", "--notemp", "--quiet", "all"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = [*(tmp_path / "results/bigcount/pages").glob("*"), *(tmp_path / "results/bigcount/scatter").glob("*")]
    assert len(files) == 4
    written = sum(f.stat().st_size for f in files)
    # small files carry Parquet footers, so compare per page only above the fixed part
    assert written - 4 * 8192 <= bigplan.disk_bytes(big)


@pytest.mark.parametrize("stage", ["shard", "scatter", "count"])
def test_job_memory_grows_with_its_own_size_only(stage):
    small = dict(FULL, vms=64)
    assert bigplan.job_mem_mb(small, "scatter") == bigplan.job_mem_mb(FULL, "scatter")
    assert bigplan.job_mem_mb(small, "shard") == bigplan.job_mem_mb(FULL, "shard")
    assert bigplan.job_mem_mb(small, "count") < bigplan.job_mem_mb(FULL, "count")
    bigger = dict(FULL, mem_mb=2 * FULL["mem_mb"])
    assert bigplan.job_mem_mb(bigger, stage) > bigplan.job_mem_mb(FULL, stage) > bigplan.MEM_BASE_MB


def test_job_memory_of_the_measured_full_run_is_above_its_peaks():
    # peak 3.4 GB for a scatter job at the full size; 3.3 GB for the count job of the partition
    # holding every zero page (6.75 % of the set in the content model) beside its 16.8 M share
    zero = yaml.safe_load((ROOT / "workflow/config/config.yaml").read_text())["synth"]["fig04"]["fractions"]["zero"]
    assert bigplan.job_mem_mb(FULL, "scatter") * 2**20 > 3.4e9
    assert bigplan.job_mem_mb(FULL, "count", zero_fraction=zero) * 2**20 > 3.3e9
    assert bigplan.job_mem_mb(FULL, "count") * 2**20 > 0.9e9  # a partition without the zero page
    assert bigplan.job_mem_mb(FULL, "count", zero_fraction=zero) > bigplan.job_mem_mb(FULL, "count")
    with pytest.raises(ValueError, match="zero_fraction"):
        bigplan.job_mem_mb(FULL, "count", zero_fraction=1.5)
    assert bigplan.job_mem_mb(FULL, "gather") == bigplan.MEM_BASE_MB
    with pytest.raises(ValueError, match="stage"):
        bigplan.job_mem_mb(FULL, "hash")


def test_too_little_space_is_one_line_naming_the_key(tmp_path):
    need = bigplan.disk_bytes(FULL)
    assert bigplan.check_free_space(FULL, tmp_path / "results", free_bytes=need) == need
    with pytest.raises(ConfigError) as e:
        bigplan.check_free_space(FULL, tmp_path / "results", free_bytes=need - 1)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("config key bigcount:")
    assert "21.5 GB" in msg and str(tmp_path) in msg and "bigcount.vms" in msg


def test_workflow_stops_before_any_job_when_the_disk_is_too_small(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"bigcount": {"vms": 4, "mem_mb": 10**12, "partition_bits": 0}}))  # 20 PB
    cmd = [sys.executable, "-m", "snakemake", "bigcount", "--snakefile", str(ROOT / "Snakefile")]
    cmd += ["--directory", str(tmp_path), "--configfile", str(cfg), "--cores", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "config key bigcount: 1,024,000,000,000,000 pages need about" in proc.stderr + proc.stdout
    assert not (tmp_path / "results").exists()


def test_default_run_does_not_check_bigcount_space(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"bigcount": {"vms": 4, "mem_mb": 10**12, "partition_bits": 0}}))
    cmd = [sys.executable, "-m", "snakemake", "--dry-run", "--snakefile", str(ROOT / "Snakefile")]
    cmd += ["--directory", str(tmp_path), "--configfile", str(cfg), "--cores", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
