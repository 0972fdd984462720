"""Sizes of a ``bigcount`` run, known from its configuration before it starts.

The scatter/count/gather pipeline (:mod:`.partition`, ``workflow/rules/bigcount.smk``) writes
every page of the set twice to disk as temporary Parquet files — the hash-only page tables of
the shards, then the same pages scattered by hash prefix — and bounds each job's memory by the
shard size (shard and scatter jobs) or the partition size (count jobs). These functions turn a
``bigcount`` config section into those numbers, so that the workflow can

* refuse to start, with one clear line, when the file system holding ``results/bigcount/`` has less
  free space than the run needs, or the sizes are ones no run can use (:func:`check_free_space`,
  :func:`check_plan`), and
* ask a cluster scheduler for the memory each job needs (:func:`job_mem_mb`), instead of one
  size for every job (pages of one VM for a shard job, of one shard for a scatter job, of one
  partition for a count job).

The per-page constants were measured (issue 18). On disk: hash-only shard files hold 8.1 bytes
per page and scattered files 8.0 (hashes stored plain: random hashes do not compress; measured
at 1/16 of the full size, 67 M pages; the first full run, with zstd on the hashes, measured 10.6
and 6.2). Peak job memory at the full 1,073,741,824-page size was 3.4 GB for a scatter job of a
64 Mi-page shard (about 51 bytes per page). Count jobs: every zero page has one hash, so one
partition holds all of them (6.75 % of the set, 72.5 M pages) beside its 16.8 M share; that job
peaked at 3.3 GB for 88.1 M pages with the VMs' payload in its own array and 2.6 GB once it
rode in the records (measured on a partition of that shape read from 16 scatter files,
``/usr/bin/time``; the previous counter and reader peaked at 4.6 GB on it, above what was asked
for), about 36 bytes per page with the imports, and every count job asks for it
(:func:`job_mem_mb`'s ``zero_fraction``). A shard job writes its VMs one at a time, so its
memory follows the size of one VM: 318 MB with 256 Ki-page VMs, about 360 bytes per page of one
VM above the imports.

Before any page is read, a job already holds two Python processes: the script (NumPy, pandas,
pyarrow, Numba: about 225–260 MB) and, on a cluster, the Snakemake that runs it inside the job
(about 200 MB). SLURM adds up the resident memory of both: the first real run through SLURM
(2,048-page VMs) had its shard jobs killed at 420 MB (``exceeded memory limit (440311808 >
420478976)``) when the base was 400 MiB; the base is now 800 MiB.

Every job also holds the set's VM names (every Snakemake process builds the list), and the later
stages more per VM: a scatter job the list, its index and the file's metadata (132 bytes per VM
above the imports, measured at 10^5 and 10^6 VMs), a count job the per-VM counters and their JSON
(337 bytes), the gather the per-VM report (1,060 bytes): :data:`MEM_BYTES_PER_VM`, with the
Snakemake's list (about 70 bytes) and the script's unpickled params on top. Negligible at the full
size's 1,024 VMs; a million VMs needed about 1 GB more in the gather than its 800 MiB.

The disk holds more than the pages (:func:`disk_bytes`), and with many small VMs far more (issue 18
audit C: a run of 8,192 VMs of 2 pages wrote 15 times the pages' estimate). Measured with
``scatter_table`` and a small ``snakemake bigcount`` (5-digit names, ``L`` = 7 characters; ``D`` is
the digits of one VM's page count, the widest per-VM counter): every scatter file stored the set's
VM list in its metadata (``L`` + 4 bytes a VM: 11.0 measured at 10^5 VMs; since session 25 only the
list's digest, the count jobs being given the list) and each of its row groups costs 135–151 bytes
of Parquet metadata; a shard's page table holds each VM's name and dictionary
(36 bytes a VM at one page each); each partition's counts JSON a per-VM row (42 bytes at ``D`` = 1:
name, 8 counters, one float); the report a per-VM record (378 bytes at ``D`` = 1, indented JSON).
The constants below are those measures with a margin of at least 20 % and the widest float.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Mapping, Sequence

from pagecore.errors import ConfigError

PAGES_PER_MB = 256
#: bytes on disk per page, shard table + scattered table, measured 8.1 + 8.0, with 24 % margin
DISK_BYTES_PER_PAGE = 20
#: bytes on disk per VM of the set in its shard's page table (name, dictionary; measured 36)
DISK_BYTES_PER_VM_TABLE = 48
#: bytes per row group (one per partition) of each scatter file (measured 135-151), and per file
DISK_BYTES_PER_ROW_GROUP = 192
DISK_BYTES_PER_FILE = 8192
#: peak resident bytes per page of one job, by stage (see the module docstring)
MEM_BYTES_PER_PAGE = {"shard": 360, "scatter": 51, "count": 36}
#: peak resident bytes per VM of the set of one job, by stage (see the module docstring)
MEM_BYTES_PER_VM = {"shard": 100, "scatter": 300, "count": 420, "gather": 1200}
#: resident memory of a job before it reads a page (script and in-job Snakemake, imports), MiB
MEM_BASE_MB = 800
#: margin on the per-page part of a job's memory request
MEM_MARGIN = 1.25


def _pages_per_vm(big: Mapping) -> int:
    return round(big["mem_mb"] * PAGES_PER_MB)


def total_pages(big: Mapping) -> int:
    """Pages in the whole synthetic set: ``vms`` × ``mem_mb`` × 256."""
    return big["vms"] * _pages_per_vm(big)


def _shards(big: Mapping) -> int:
    return -(-big["vms"] // big.get("vms_per_shard", big["vms"]))


def disk_bytes(big: Mapping) -> int:
    """Bytes the run may hold at once under ``results/bigcount/``: all shards and all scattered
    tables (temporary), every partition's counts and the report.

    Snakemake deletes a shard as soon as its scatter job is done and the scattered tables once
    every count job is done, but the scheduler may write every shard first, so the estimate is
    the sum of all. Besides the pages (:data:`DISK_BYTES_PER_PAGE`), each scatter file holds one
    row group per partition, and each counts file and the report a row per VM (module
    docstring): with many small VMs these are most of it.
    """
    vms, shards, parts = big["vms"], _shards(big), 1 << big["partition_bits"]
    name = len(f"vm{vms:05d}")  # the longest name (workflow/rules/common.smk bigcount_vm_names)
    digits = len(str(max(1, _pages_per_vm(big))))
    tables = total_pages(big) * DISK_BYTES_PER_PAGE + vms * DISK_BYTES_PER_VM_TABLE + 2 * shards * DISK_BYTES_PER_FILE
    # since session 25 a scatter file holds its VM list's digest, not the list (11 bytes a VM)
    scatter = shards * parts * DISK_BYTES_PER_ROW_GROUP
    # per VM: name and quotes; 8 counters of up to `digits` digits with ", "; one float (<= 24 chars)
    counts = parts * (vms * (name + 8 * digits + 50) + DISK_BYTES_PER_FILE)
    # per VM: the name twice, 7 counters, 3 floats and their keys, indented (378 measured at 1 digit)
    report = vms * (2 * name + 8 * digits + 460) + parts * 64 + DISK_BYTES_PER_FILE
    return tables + scatter + counts + report


def _most_in_one(g: int, parts: int) -> int:
    """At most how many of ``g`` contents with random hashes one of ``parts`` partitions holds,
    but with probability below 10^-6 for any partition (Bernstein's bound on the binomial count of
    one partition, ``L = ln(parts / 10^-6)``: ``g/parts + L/3 + sqrt(L²/9 + 2 L g/parts)``)."""
    mean = g / parts
    lg = math.log(parts / 1e-6)
    return min(g, math.ceil(mean + lg / 3 + math.sqrt(lg * lg / 9 + 2 * lg * mean)))


def largest_partition_pages(big: Mapping, classes: Sequence[tuple[int, int]]) -> int:
    """Pages of the set's largest hash-prefix partition, at most: ``classes`` are the content
    model's classes as (pages of the set, distinct contents they hold, each about equally
    copied), covering the set. A content's pages all go to one partition, so a class of few
    contents can land whole in one: the zero page (one content), or the content model's
    ``intra_dup`` pages when ``intra_dup_groups`` is small (0.0002 put 4.3 times the pages asked
    for in one partition: 64 VMs of 16 MB, 64 partitions)."""
    parts = 1 << big["partition_bits"]
    out = 0
    for pages, contents in classes:
        if pages > 0:
            g = max(1, contents)
            out += -(-pages * _most_in_one(g, parts) // g)
    return out


def job_mem_mb(
    big: Mapping, stage: str, zero_fraction: float = 0.0, classes: Sequence[tuple[int, int]] | None = None
) -> int:
    """Memory (MiB) to request for one ``stage`` job: ``shard``, ``scatter``, ``count`` or ``gather``.

    A count job's pages are those of the largest partition: with the content model's ``classes``
    (:func:`largest_partition_pages`), or else its share of the set plus every zero page
    (``zero_fraction``: one content, so one partition holds every zero page of the set beside its
    share of the rest, 6.75 % of the full set: 72 M pages beside 16.8 M). Which partition is known
    only from the hashes, so every count job asks for that much.
    """
    if stage not in MEM_BYTES_PER_VM:
        raise ValueError(f"stage must be shard, scatter, count or gather, got {stage!r}")
    if not 0.0 <= zero_fraction <= 1.0:
        raise ValueError(f"zero_fraction must be in [0, 1], got {zero_fraction}")
    if stage == "count" and classes is not None:
        pages = largest_partition_pages(big, classes)
    elif stage == "count":
        pages = -(-total_pages(big) // (1 << big["partition_bits"])) + round(zero_fraction * total_pages(big))
    elif stage == "shard":
        pages = _pages_per_vm(big)
    elif stage == "scatter":
        pages = min(big["vms_per_shard"], big["vms"]) * _pages_per_vm(big)
    else:
        pages = 0
    need = MEM_BYTES_PER_PAGE.get(stage, 0) * pages + MEM_BYTES_PER_VM[stage] * big["vms"]
    return MEM_BASE_MB + int(-(-MEM_MARGIN * need // 2**20))


def _gb(n: int) -> str:
    return f"{n / 1e9:,.1f} GB" if n >= 1e8 else f"{n / 1e6:,.1f} MB"


def check_plan(big: Mapping) -> None:
    """Raise :class:`ConfigError` (one line naming the key) for sizes the schema lets through that
    no run can use: VMs of no page (``mem_mb`` under half a 4 KiB page: the shard jobs failed
    after the run started), more partitions than pages (some are always empty: ``partition_bits``
    16 on 256 pages was 65,536 count jobs), more VMs than the counter takes."""
    if _pages_per_vm(big) < 1:
        raise ConfigError(
            f"config key bigcount.mem_mb: {big['mem_mb']:g} MB gives each VM no page; give at least "
            f"{1 / PAGES_PER_MB:g} (one 4 KiB page)"
        )
    if big["vms"] >= 1 << 31:
        raise ConfigError(f"config key bigcount.vms: {big['vms']:,} VMs; the counter takes at most 2**31 - 1")
    n = total_pages(big)
    if 1 << big["partition_bits"] > n:
        raise ConfigError(
            f"config key bigcount.partition_bits: {1 << big['partition_bits']:,} partitions of {n:,} pages leave "
            f"some empty; give at most {n.bit_length() - 1}"
        )


def check_free_space(big: Mapping, directory: str | os.PathLike = ".", free_bytes: int | None = None) -> int:
    """Raise :class:`ConfigError` (one line) if the plan is one no run can use (:func:`check_plan`)
    or ``directory`` lacks the space the run needs.

    ``directory`` is where ``results/`` will be (the nearest existing parent is asked);
    ``free_bytes`` overrides the measured free space (tests). Returns the bytes needed.
    """
    check_plan(big)
    need = disk_bytes(big)
    path = os.path.abspath(directory)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    free = shutil.disk_usage(path).free if free_bytes is None else free_bytes
    if free < need:
        raise ConfigError(
            f"config key bigcount: {total_pages(big):,} pages need about {_gb(need)} of temporary page tables "
            f"under {path}, but only {_gb(free)} is free there; free space, run in another --directory, "
            "or lower bigcount.vms or bigcount.mem_mb"
        )
    return need
