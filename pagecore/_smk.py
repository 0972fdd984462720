"""Glue for workflow/scripts: send a job's stderr to its Snakemake log and record its timing."""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback

#: The columns of Snakemake's benchmark files; the ones a job cannot measure of itself are NA.
TIMING_HEADER = ("s", "h:m:s", "max_rss", "max_vms", "max_uss", "max_pss", "io_in", "io_out", "mean_load", "cpu_time")


def _process_start() -> float:
    """When this process started (epoch seconds): Linux's /proc, else now.

    The start is read in clock ticks since boot and placed on the wall clock through
    ``CLOCK_BOOTTIME``, not ``btime`` of /proc/stat: that is whole seconds, which put every
    job's start up to 1 s early.
    """
    try:
        with open("/proc/self/stat", "rb") as fh:
            ticks = int(fh.read().rsplit(b")", 1)[1].split()[19])  # field 22, starttime
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
        return time.time() - max(age, 0.0)
    except (OSError, ValueError, IndexError, AttributeError):
        return time.time()


def timing_path(log_path: str) -> str | None:
    """``results/logs/<x>.log`` -> ``results/benchmarks/<x>.tsv``; None for other log paths."""
    head, sep, tail = str(log_path).partition("results/logs/")
    if not sep or not tail.endswith(".log"):
        return None
    return f"{head}results/benchmarks/{tail.removesuffix('.log')}.tsv"


def write_timing(path: str, started: float) -> None:
    """Write the job's wall time since ``started``, peak RSS and CPU time (its own and its waited-for
    children's, from ``getrusage``) in the columns of a Snakemake benchmark file."""
    import resource
    from datetime import timedelta

    wall = time.time() - started
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    rss_mb = max(me.ru_maxrss, kids.ru_maxrss) / 1024  # Linux reports KiB
    from pagecore._util import atomic_path

    row = (f"{wall:.4f}", str(timedelta(seconds=int(wall))), f"{rss_mb:.2f}", *["NA"] * 6, f"{cpu:.2f}")
    with atomic_path(path) as tmp:
        tmp.write_text("\t".join(TIMING_HEADER) + "\n" + "\t".join(row) + "\n")


def read_timing(path) -> tuple[float, float] | None:
    """(wall s, CPU s) of a benchmark file in the columns of :data:`TIMING_HEADER` (written by
    :func:`write_timing` or by Snakemake's ``benchmark:``; its first row); None if it has no row
    or no such numbers (NA)."""
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    if len(lines) < 2:
        return None
    cols = dict(zip(lines[0].split("\t"), lines[1].split("\t"), strict=False))
    try:
        return float(cols["s"]), float(cols["cpu_time"])
    except (KeyError, ValueError):
        return None


@contextlib.contextmanager
def job_log(smk):
    """Redirect stdout and stderr to ``smk.log[0]`` for the duration of a Snakemake script.

    An exception is written to the log (with its traceback, for debugging) and re-raised so
    the job fails and Snakemake points at the log.

    A job whose rule has no ``benchmark:`` writes its own timing when it succeeds, to
    ``results/benchmarks/<x>.tsv`` for the log ``results/logs/<x>.log``, in the columns of a
    Snakemake benchmark file: wall seconds since the process started, peak RSS (MB) and CPU
    seconds of the process and its children (imports included); the memory, I/O and load
    columns Snakemake samples are NA. Snakemake's own benchmark samples each job from the main
    process twice a second (reading its ``smaps``), about 0.3 s of CPU per job that the
    default run's two cores otherwise spend on the jobs, and it undercounts CPU.

    SIGTERM (a cluster's time limit, ``scancel``, ``kill``) unwinds the job like an error, so its
    outputs' temporary files are removed (:func:`pagecore._util.atomic_path`), and ends it with
    exit status 143 and one line in the log; it killed the job where it stood, leaving them.
    """
    from pagecore._signals import Terminated, handlers

    if not smk.log:
        with handlers():
            yield
        return
    own_timing = timing_path(smk.log[0]) if getattr(smk, "bench_iteration", None) is None else None
    started = _process_start() if own_timing else 0.0
    with open(smk.log[0], "w") as fh:
        old = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = fh
        try:
            with handlers():
                yield
        except Terminated:
            print("pagecore: terminated (SIGTERM); no output written", file=fh)
            raise SystemExit(143) from None
        except BaseException:
            traceback.print_exc(file=fh)
            raise
        finally:
            sys.stdout, sys.stderr = old
    if own_timing:
        write_timing(own_timing, started)


def config_digest(config) -> str:
    """A fingerprint of a (validated) config: SHA-256 of its JSON with sorted keys."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(config, sort_keys=True, default=repr).encode()).hexdigest()


def report_only_outputs(
    argv: list[str], outputs: list[str], exists=os.path.exists, stamp: str | None = None, digest: str | None = None
) -> list[str]:
    """``outputs`` (of a target outside the default run, such as the sensitivity charts) when the
    command ``argv`` builds a report (``--report``) and every one of them exists, else [].

    Snakemake's report holds the report-marked files of the jobs that make the command's targets,
    by default ``rule all``; a target left out of the default run so that it stays fast (``snakemake
    sensitivity``) was never in ``snakemake --report results/report.html``, even after it ran.
    ``rule all`` asks for these files only while a report is built, which runs no job (not with
    ``--report-after-run``, which runs the workflow first).

    ``stamp``: a file holding the :func:`config_digest` the outputs were made under; when it
    differs from ``digest`` (the config now), the outputs are left out with a warning, not put in
    the report as if they were made under this config (the report runs no job to remake them)."""
    reporting = any(a == "--report" or a.startswith("--report=") for a in argv)
    if not reporting or "--report-after-run" in argv:
        return []
    if not outputs or not all(exists(p) for p in outputs):
        return []
    if stamp is not None and digest is not None:
        try:
            with open(stamp) as fh:
                made_under = fh.read().strip()
        except OSError:
            made_under = None
        if made_under != digest:
            why = "under another config" if made_under else f"under a config no {stamp} records"
            print(
                f"pagecore: warning: {outputs[0]} and the rest were made {why}; "
                "the report leaves them out: make them again first",
                file=sys.stderr,
            )
            return []
    return list(outputs)


#: The targets whose run ends with the comparison summary: the default run and the comparison's own files
SUMMARY_TARGETS = frozenset({"all", "results/numbers/comparison.txt", "results/numbers/comparison.csv"})


def closing_summary_shown(targets) -> bool:
    """Whether a successful run of ``targets`` (Snakemake's target names; empty = the default
    run) ends with results/numbers/comparison.txt: only when the run brought it up to date. After
    another target (``snakemake sensitivity``, one page table) the file may be an earlier
    config's score, printed as this run's."""
    targets = set(targets or ())
    return not targets or bool(targets & SUMMARY_TARGETS)
