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
    pages = 1_073_741_824 * bigplan.DISK_BYTES_PER_PAGE
    assert pages < bigplan.disk_bytes(FULL) < 1.01 * pages  # the per-VM files are small beside the pages


def test_disk_estimate_holds_the_per_vm_rows_but_no_vm_list_per_scatter_file():
    """Issue 18 audit C: each of 4,096 scatter files held the list of 262,144 VMs (3.1 MB a file,
    measured), 12.6 GB that the estimate by pages alone (1.34 GB) left out. Since session 25 they
    hold its digest (the count jobs are given the list): the estimate keeps the partitions' counts
    and the report's per-VM rows, not 4,096 lists."""
    big = {"vms": 262_144, "mem_mb": 1, "vms_per_shard": 64, "partition_bits": 6}
    per_vm_rows = 64 * 262_144 * 42 + 262_144 * 378
    pages = bigplan.total_pages(big) * bigplan.DISK_BYTES_PER_PAGE
    assert pages + per_vm_rows < bigplan.disk_bytes(big) < pages + 2 * per_vm_rows + 4096 * 3_082_185 / 10


@pytest.mark.parametrize(
    "big",
    [
        {"vms": 3, "mem_mb": 4, "vms_per_shard": 2, "partition_bits": 1, "seed": 3},
        # many VMs of one page: the VM lists and per-VM rows are most of what is written
        {"vms": 2048, "mem_mb": 1 / 256, "vms_per_shard": 512, "partition_bits": 3, "seed": 3},
    ],
    ids=["few-vms", "many-vms"],
)
def test_disk_estimate_covers_the_files_a_run_writes(tmp_path, big):
    """Every file of a small run under results/bigcount/ (temporary ones kept with --notemp: page
    tables, scattered tables, counts, report) fits in the estimate."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"bigcount": big}))
    cmd = [sys.executable, "-m", "snakemake", "bigcount", "--snakefile", str(ROOT / "Snakefile")]
    cmd += ["--directory", str(tmp_path), "--configfile", str(cfg), "--cores", "2", "--notemp", "--quiet", "all"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = [f for f in (tmp_path / "results/bigcount").rglob("*") if f.is_file()]
    shards = -(-big["vms"] // big["vms_per_shard"])
    assert len(files) == 2 * shards + (1 << big["partition_bits"]) + 1
    written = sum(f.stat().st_size for f in files)
    assert written <= bigplan.disk_bytes(big)
    if big["vms"] > 1000:
        assert written > 2 * bigplan.total_pages(big) * bigplan.DISK_BYTES_PER_PAGE  # what the pages alone were


@pytest.mark.parametrize("stage", ["shard", "scatter", "count"])
def test_job_memory_grows_with_its_own_size_only(stage):
    """A shard or scatter job's pages are its VM's or its shard's, whatever the set's size; only
    the set's VM list (bytes per VM) adds to them."""
    small = dict(FULL, vms=64)
    for st in ("scatter", "shard"):
        per_vm = -(-bigplan.MEM_MARGIN * bigplan.MEM_BYTES_PER_VM[st] * FULL["vms"] // 2**20)
        assert bigplan.job_mem_mb(small, st) <= bigplan.job_mem_mb(FULL, st) <= bigplan.job_mem_mb(small, st) + per_vm
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
    assert bigplan.MEM_BASE_MB < bigplan.job_mem_mb(FULL, "gather") < bigplan.MEM_BASE_MB + 8
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
    out = proc.stderr + proc.stdout
    assert "pagecore: error: config key bigcount: 1,024,000,000,000,000 pages need about" in out
    assert "Traceback" not in out and "InputFunctionException" not in out  # one line, as config errors
    assert not (tmp_path / "results").exists()


def test_default_run_does_not_check_bigcount_space(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"bigcount": {"vms": 4, "mem_mb": 10**12, "partition_bits": 0}}))
    cmd = [sys.executable, "-m", "snakemake", "--dry-run", "--snakefile", str(ROOT / "Snakefile")]
    cmd += ["--directory", str(tmp_path), "--configfile", str(cfg), "--cores", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_job_memory_of_a_million_vms_holds_their_per_vm_state():
    """Session 19 audit: every stage asked for the same memory whatever the number of VMs, but a
    job holds the set's VM list and the later stages counters and reports per VM: with 10^6 VMs
    the gather peaked 1.06 GB above its imports (measured; 800 MiB was asked), a count job 0.34 GB
    and a scatter job 0.13 GB above theirs."""
    many = dict(FULL, vms=10**6, mem_mb=1)
    for stage, measured in (("gather", 1.06e9), ("count", 0.34e9), ("scatter", 0.13e9)):
        assert (bigplan.job_mem_mb(many, stage) - bigplan.MEM_BASE_MB) * 2**20 > measured, stage


@pytest.mark.parametrize(
    ("big", "key", "words"),
    [
        ({"vms": 2, "mem_mb": 0.001, "partition_bits": 1}, "bigcount.mem_mb", "gives each VM no page"),
        ({"vms": 1, "mem_mb": 1, "partition_bits": 9}, "bigcount.partition_bits", "give at most 8"),
        ({"vms": 2**31, "mem_mb": 1, "partition_bits": 1}, "bigcount.vms", "at most 2**31 - 1"),
    ],
)
def test_sizes_no_run_can_use_are_one_line_naming_the_key(tmp_path, big, key, words):
    """VMs of no page (the shard jobs failed once the run had started: "mem_mb=0.001 gives no
    pages" in their logs), more partitions than pages (2**16 count jobs for 256 pages), more VMs
    than the counter takes: refused before the disk check, as one line naming the key."""
    with pytest.raises(ConfigError) as e:
        bigplan.check_free_space(dict(FULL, **big), tmp_path / "results", free_bytes=10**18)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"config key {key}:") and words in msg
    bigplan.check_plan(dict(FULL, vms=1, mem_mb=1, partition_bits=8))  # 256 partitions of 256 pages: fine


def test_workflow_refuses_a_vm_of_no_page_before_any_job(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"bigcount": {"vms": 2, "mem_mb": 0.001, "partition_bits": 1}}))
    cmd = [sys.executable, "-m", "snakemake", "bigcount", "--snakefile", str(ROOT / "Snakefile")]
    cmd += ["--directory", str(tmp_path), "--configfile", str(cfg), "--cores", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    out = proc.stderr + proc.stdout
    assert proc.returncode != 0 and "Traceback" not in out
    assert "pagecore: error: config key bigcount.mem_mb: 0.001 MB gives each VM no page" in out
    assert not (tmp_path / "results").exists()


def test_count_jobs_hold_one_vm_list_not_one_per_shard(tmp_path):
    """Every scatter file's metadata holds the set's VM list; a count job kept the list of every
    file (1,024 shards of 65,536 VMs: about 4 GB of names, 62 bytes each, measured at 64 files)."""
    import tracemalloc

    import numpy as np

    from pagecore.pages.tables import write_page_table
    from pagecore.sharing.partition import count_partition, scatter_table

    names = [f"vm{v:06d}" for v in range(20_000)]
    paths = []
    for f in range(40):
        h = (np.arange(50, dtype=np.uint64) + np.uint64(50 * f)) * np.uint64(0x9E3779B97F4A7C15)
        write_page_table(tmp_path / f"t{f}.parquet", names[f], np.arange(50, dtype=np.uint64), h, h == 0,
                         {"hash_only": True})  # fmt: skip
        scatter_table(tmp_path / f"t{f}.parquet", tmp_path / f"s{f}.parquet", names, 1)
        paths.append(tmp_path / f"s{f}.parquet")
    count_partition(paths[:2], 0)  # compiled outside the measurement
    tracemalloc.start()
    c = count_partition(paths, 0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert c.to_dict()["vms"] == 20_000
    assert peak < 25e6, peak  # 40 lists of 20,000 names were about 50 MB; the counters are 7 MB


@pytest.mark.parametrize("groups", [None, 0.0002])
def test_count_memory_covers_the_largest_partition_of_the_content_model(groups):
    """A content's pages all go to one partition: with few intra-VM duplicate groups (a valid
    ``synth.fig04.fractions``) one partition held 4.3 times the pages a count job asked for (its
    share plus every zero page). The plan now bounds the largest partition class by class from
    the content model; the model's own hashes stay under it."""
    import numpy as np

    from pagecore.synth.fig04 import Fig04Model

    cfg = yaml.safe_load((ROOT / "workflow/config/config.yaml").read_text())["synth"]["fig04"]
    fractions = (
        dict(cfg["fractions"]) if groups is None else dict(cfg["fractions"], intra_dup=0.35, intra_dup_groups=groups)
    )
    big = {"vms": 64, "mem_mb": 16, "vms_per_shard": 8, "partition_bits": 6, "seed": 1}
    model = Fig04Model(mem_mb=16, variants=cfg["variants"], seed=1, **fractions)
    h = np.concatenate([model.page_table(v)[1] for v in range(64)])
    largest = int(np.bincount((h >> np.uint64(58)).astype(np.int64), minlength=64).max())
    classes = model.content_classes(64)
    assert sum(p for p, _ in classes) == len(h)
    assert largest <= bigplan.largest_partition_pages(big, classes)
    share_and_zero = -(-len(h) // 64) + round(fractions["zero"] * len(h))
    if groups is not None:
        assert largest > 4 * share_and_zero  # what the count jobs asked for
    pages = bigplan.largest_partition_pages(big, classes)
    assert bigplan.job_mem_mb(big, "count", classes=classes) == bigplan.MEM_BASE_MB + int(
        -(
            -bigplan.MEM_MARGIN
            * (bigplan.MEM_BYTES_PER_PAGE["count"] * pages + bigplan.MEM_BYTES_PER_VM["count"] * 64)
            // 2**20
        )
    )
    full = Fig04Model(mem_mb=FULL["mem_mb"], variants=cfg["variants"], seed=FULL["seed"], **cfg["fractions"])
    assert bigplan.job_mem_mb(FULL, "count", classes=full.content_classes(FULL["vms"])) * 2**20 > 3.3e9  # measured peak


@pytest.mark.parametrize(
    ("vms", "words"),
    [(2**31, "config key bigcount.vms: 2,147,483,648 VMs"), (10**8, "config key bigcount: 204,800,000,000 pages")],
)
def test_workflow_refuses_too_many_vms_before_listing_them(tmp_path, vms, words):
    """Session 22 audit: the scatter rule's VM names were a parameter built when the rules were
    read, and the count rule's input listed every shard, both before the size checks: 2**31 VMs
    (refused by check_plan) or 10^8 (4 TB of tables) filled the memory (MemoryError under a 3 GB
    limit, every target; 2**31 names would take over 100 GB) instead of the one-line refusal."""
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"bigcount": {"vms": vms, "mem_mb": 8, "vms_per_shard": 2, "partition_bits": 2}}))
    cmd = [sys.executable, "-m", "snakemake", "bigcount", "--snakefile", str(ROOT / "Snakefile")]
    cmd += ["--directory", str(tmp_path), "--configfile", str(cfg), "--cores", "1", "--dry-run"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, preexec_fn=limit)
    out = proc.stderr + proc.stdout
    assert proc.returncode != 0 and "Traceback" not in out and "MemoryError" not in out, out[-2000:]
    assert f"pagecore: error: {words}" in out


def test_workflow_asks_the_disk_bigcount_writes_to(tmp_path):
    """Session 22 audit: the space check asked the file system of results/, but the temporary
    tables go to results/bigcount/, which an operator may link to another disk: a set needing
    41 GB passed (80 GB free under results/) with its tables going to a 25 GB tmpfs."""
    import shutil
    import tempfile

    shm = Path("/dev/shm")
    need = 1000 * 8000 * 256 * bigplan.DISK_BYTES_PER_PAGE
    if not shm.is_dir() or not shutil.disk_usage(shm).free < need < shutil.disk_usage(tmp_path).free:
        pytest.skip("needs a /dev/shm with less free space than the 41 GB asked for, and tmp_path with more")
    other = Path(tempfile.mkdtemp(dir=shm))
    try:
        (tmp_path / "results").mkdir()
        (tmp_path / "results/bigcount").symlink_to(other)
        cfg = tmp_path / "c.yaml"
        cfg.write_text(yaml.safe_dump({"bigcount": {"vms": 1000, "mem_mb": 8000, "partition_bits": 2}}))
        cmd = [sys.executable, "-m", "snakemake", "bigcount", "--snakefile", str(ROOT / "Snakefile")]
        cmd += ["--directory", str(tmp_path), "--configfile", str(cfg), "--cores", "1", "--dry-run"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        out = proc.stderr + proc.stdout
        assert proc.returncode != 0 and "Traceback" not in out, out[-2000:]
        assert f"of temporary page tables under {tmp_path}/results/bigcount, but only" in out
    finally:
        shutil.rmtree(other)
