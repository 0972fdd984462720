"""``pagecore bench quickstart``: the README's Quick start line 1 from a clean clone, and where its time goes.

For each ``--rev`` (default ``HEAD``; several are run one after another, back to back, for
comparisons on a host whose speed changes): clone the repository into a temporary directory,
take line 1 of the README's Quick start block there (the command CI runs), and run its steps
(the parts joined by ``&&``) in one shell with an empty ``HOME`` (no pip or uv cache, no
Matplotlib or Jupyter state), timing each step. Then report:

* the steps' wall times; the last one (Snakemake) split at its first job into Snakemake's
  start (byte-compiling, building the DAG) and the jobs;
* the jobs' wall and CPU time from the pipeline's own benchmark files
  (``results/benchmarks/``), the largest jobs first;
* the Numba compilations made by every job (:func:`pagecore._jit.install_compile_log`:
  CPU seconds per kernel, without the kernels compiled inside it), per script and per kernel;
* the host's speed at the time (NumPy sorting 10 M integers), since the reference machine's
  host changes speed within the hour: compare runs made back to back.

Prints the goals of issue 18 (line 1 under 2 min 30 s; goal 90 s) as met or not. Needs ``git``
and the network access the install needs. Nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pagecore._argtypes import positive_int

#: issue 18: Quick start line 1 must stay under this many seconds, with this goal
LIMIT_S = 150.0
GOAL_S = 90.0

_JOB_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")


# ----------------------------------------------------------------------------- pieces
def quick_start_line(readme: str, n: int = 1) -> str:
    """Line ``n`` of the first code block after the ``## Quick start`` heading (as ``.ci/run``
    reads it); ValueError if there is none."""
    lines = readme.splitlines()
    try:
        i = next(k for k, line in enumerate(lines) if line.strip() == "## Quick start")
    except StopIteration:
        raise ValueError("README has no '## Quick start' section") from None
    block, inside = [], False
    for line in lines[i + 1 :]:
        if line.startswith("```"):
            if inside:
                break
            inside = True
            continue
        if inside:
            block.append(line)
    if len(block) < n or not block[n - 1].strip():
        raise ValueError(f"README's Quick start block has no line {n}")
    return block[n - 1].strip()


def steps(line: str) -> list[str]:
    """The steps of a command line joined by ``&&`` (each stripped)."""
    parts = [p.strip() for p in line.split("&&")]
    if not all(parts):
        raise ValueError(f"an empty step in {line!r}")
    return parts


def first_job_time(log: str) -> dt.datetime | None:
    """The time stamp Snakemake prints before its first job (``[Wed Dec  2 00:08:47 2026]``,
    to the second), or None."""
    for line in log.splitlines():
        m = _JOB_STAMP.match(line.strip())
        if m:
            return dt.datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
    return None


def job_table(benchmarks: Path) -> list[dict]:
    """Every job's benchmark file under ``benchmarks`` (:func:`pagecore._smk.read_timing`): job
    (the file's path without ``.tsv``), wall s, CPU s; largest CPU first."""
    from pagecore._smk import read_timing

    rows = []
    for f in sorted(Path(benchmarks).rglob("*.tsv")):
        got = read_timing(f)
        if got is not None:
            rows.append({"job": str(f.relative_to(benchmarks).with_suffix("")), "wall_s": got[0], "cpu_s": got[1]})
    return sorted(rows, key=lambda r: (-r["cpu_s"], r["job"]))


def compile_table(path: Path) -> list[dict]:
    """The lines of a compile log (:func:`pagecore._jit.install_compile_log`): pid, script,
    kernel, self and total CPU s, signature. Missing file: none."""
    rows = []
    if not Path(path).is_file():
        return rows
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        f = line.split("\t")
        if len(f) < 5:
            continue
        script = re.sub(r"^tmp[^.]*\.", "", f[1])  # Snakemake's copy of a workflow script
        rows.append({"pid": int(f[0]), "script": script, "kernel": f[2], "self_s": float(f[3]),
                     "total_s": float(f[4]), "signature": f[5] if len(f) > 5 else ""})  # fmt: skip
    return rows


def _sums(rows: list[dict], key: str, value: str) -> list[tuple[str, float, int]]:
    out: dict[str, list] = {}
    for r in rows:
        s = out.setdefault(r[key], [0.0, 0])
        s[0] += r[value]
        s[1] += 1
    return sorted(((k, v[0], v[1]) for k, v in out.items()), key=lambda t: (-t[1], t[0]))


def host_speed() -> float:
    """Seconds NumPy takes to sort 10 M random 64-bit integers, the least of 3 (the host's
    speed at the time of a run)."""
    import numpy as np

    a = np.random.default_rng(0).integers(0, 2**63, 10_000_000, dtype=np.int64)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        np.sort(a)
        best = min(best, time.perf_counter() - t0)
    return best


def repo_root() -> Path:
    """The checkout this pagecore runs from (a directory with ``.git`` and ``README.md``)."""
    here = Path(__file__).resolve()
    for d in here.parents:
        if (d / ".git").exists() and (d / "README.md").is_file():
            return d
    raise ValueError("pagecore does not run from a git checkout: give --repo")


# ----------------------------------------------------------------------------- one run
def run_one(repo: Path, rev: str, workdir: Path | None = None, keep: bool = False, log=print) -> dict:
    """Quick start line 1 of ``rev`` from a clean clone of ``repo`` (see the module docstring);
    returns what :func:`format_run` prints. Raises RuntimeError (with the log's tail) if a step
    fails."""
    tmp = Path(tempfile.mkdtemp(prefix="pagecore-quickstart-", dir=workdir))
    clone, home = tmp / "clone", tmp / "home"
    home.mkdir()
    try:
        subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
        subprocess.run(["git", "-C", str(clone), "checkout", "-q", rev], check=True)
        commit = subprocess.run(["git", "-C", str(clone), "rev-parse", "--short", "HEAD"], check=True,
                                capture_output=True, text=True).stdout.strip()  # fmt: skip
        line = quick_start_line((clone / "README.md").read_text(encoding="utf-8"))
        parts = steps(line)
        times, out, clog = tmp / "times", tmp / "run.log", tmp / "compile.tsv"
        script = ["set -euo pipefail", f"cd {_q(clone)}", f"echo start $(date +%s.%N) >> {_q(times)}"]
        for i, p in enumerate(parts):
            script += [p, f"echo {i} $(date +%s.%N) >> {_q(times)}"]
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PAGECORE_COMPILE_LOG")}
        env.update(HOME=str(home), PAGECORE_COMPILE_LOG=str(clog))
        speed = host_speed()
        log(f"{commit}: running Quick start line 1 in {clone} (empty HOME) ...")
        with open(out, "w") as f:
            rc = _run_group(["bash", "-c", "\n".join(script)], env=env, stdout=f, stderr=subprocess.STDOUT)
        text = out.read_text(errors="replace")
        if rc != 0:
            raise RuntimeError(f"{commit}: Quick start line 1 failed (exit {rc}); its log ends:\n" + text[-3000:])
        marks = [float(x.split()[1]) for x in times.read_text().splitlines()]
        step_s = [b - a for a, b in itertools.pairwise(marks)]
        first = first_job_time(text)
        to_first = None
        if first is not None:  # Snakemake's own start: from its step's start to its first job
            to_first = max(0.0, first.timestamp() - marks[-2])
        jobs = job_table(clone / "results" / "benchmarks")
        comp = compile_table(clog)
        jit = clone / "pagecore" / "_jit.py"  # an older revision may not log its compilations
        logged = jit.is_file() and "PAGECORE_COMPILE_LOG" in jit.read_text(encoding="utf-8")
        return {
            "rev": rev, "commit": commit, "date": dt.datetime.now().isoformat(timespec="seconds"),
            "host_sort_10M_s": speed, "total_s": marks[-1] - marks[0],
            "steps": [{"step": p, "wall_s": s} for p, s in zip(parts, step_s, strict=True)],
            "snakemake_to_first_job_s": to_first, "jobs": jobs,
            "jobs_cpu_s": sum(j["cpu_s"] for j in jobs), "compile": comp,
            "compile_cpu_s": sum(c["self_s"] for c in comp) if logged else None,
        }  # fmt: skip
    finally:
        if keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _run_group(cmd: list[str], **kw) -> int:
    """Run ``cmd`` in a process group of its own and return its exit status; interrupted
    (Ctrl-C, SIGTERM), the whole group is killed before the exception goes on: killing the shell
    alone left its pip or Snakemake running on in the clone being removed."""
    import signal

    proc = subprocess.Popen(cmd, start_new_session=True, **kw)
    try:
        return proc.wait()
    except BaseException:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        raise


def _q(p) -> str:
    return shlex.quote(str(p))


def format_run(r: dict, top: int = 10) -> str:
    """The report of one :func:`run_one`."""
    out = [
        f"Quick start line 1 of {r['commit']} ({r['rev']}), clean clone, empty HOME, {r['date']}: "
        f"{r['total_s']:.1f} s (host: NumPy sorts 10 M integers in {r['host_sort_10M_s']:.3f} s)",
        "  steps:",
    ]
    for s in r["steps"]:
        out.append(f"    {s['wall_s']:7.1f} s  {s['step']}")
    if r["snakemake_to_first_job_s"] is not None:
        last = r["steps"][-1]["wall_s"]
        f = r["snakemake_to_first_job_s"]
        out.append(f"    of the last: {f:.0f} s to Snakemake's first job (to the second), {last - f:.0f} s of jobs")
    jobs = r["jobs"]
    out.append(f"  jobs: {len(jobs)}, {r['jobs_cpu_s']:.1f} CPU-s ({sum(j['wall_s'] for j in jobs):.1f} s of wall "
               f"added up); the largest by CPU:")  # fmt: skip
    for j in jobs[:top]:
        out.append(f"    {j['cpu_s']:7.2f} CPU-s {j['wall_s']:7.2f} s  {j['job']}")
    comp = r["compile"]
    if r["compile_cpu_s"] is None:
        out.append("  Numba compilation: not measured (this revision's pagecore does not log its compilations)")
        comp = []
    else:
        n = len({c["pid"] for c in comp})
        out.append(f"  Numba compilation: {r['compile_cpu_s']:.1f} CPU-s in {n} processes; by script:")
    for name, s, n in _sums(comp, "script", "self_s")[:top]:
        out.append(f"    {s:7.2f} CPU-s {n:4d} kernels  {name}")
    if comp:
        out.append("  by kernel (without the kernels compiled inside it):")
    for name, s, n in _sums(comp, "kernel", "self_s")[:top]:
        out.append(f"    {s:7.2f} CPU-s {n:4d} times   {name}")
    t = r["total_s"]
    out.append(f"  goals (issue 18): under {LIMIT_S:.0f} s: {'met' if t < LIMIT_S else 'NOT met'}; "
               f"goal {GOAL_S:.0f} s: {'met' if t < GOAL_S else 'not met'}")  # fmt: skip
    return "\n".join(out)


# ----------------------------------------------------------------------------- command line
def _where_problem(workdir: Path | None, json_path: Path | None) -> str | None:
    """Why ``--workdir`` or ``--json`` cannot be used (one line), or None."""
    from pagecore._util import check_output
    from pagecore.errors import PagecoreError

    if workdir is not None and not workdir.is_dir():
        return f"--workdir {workdir}: {'not a directory' if workdir.exists() else 'no such directory'}"
    if json_path is not None:
        try:
            check_output(json_path)
        except PagecoreError as e:
            return f"--json: {e}"
        if not json_path.resolve().parent.is_dir():
            return f"--json {json_path}: {json_path.parent} is not a directory; create it or name another file"
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="pagecore bench quickstart",
        description="Quick start line 1 from a clean clone (install included, empty HOME), timed step by step, "
        "with the pipeline's job times and Numba compilations. Needs git and network access.",
    )
    p.add_argument(
        "--repo", type=Path, default=None, help="repository to clone (default: the checkout pagecore runs from)"
    )
    p.add_argument(
        "--rev",
        action="append",
        default=None,
        help="revision to run (repeat for several: run back to back in the order given; default HEAD)",
    )
    p.add_argument("--workdir", type=Path, default=None, help="where the temporary clones go (default: the system's)")
    p.add_argument("--keep", action="store_true", help="keep each clone (its results/ and logs)")
    p.add_argument("--top", type=positive_int, default=10, help="rows of each table (default 10)")
    p.add_argument("--json", type=Path, default=None, help="also write every run's measurements to this JSON file")
    a = p.parse_args(argv)
    try:
        repo = (a.repo or repo_root()).resolve()
    except ValueError as e:
        print(f"pagecore bench quickstart: {e}", file=sys.stderr)
        return 2
    if shutil.which("git") is None:
        print("pagecore bench quickstart: needs git", file=sys.stderr)
        return 2
    # checked before minutes of runs: a --json in a missing directory failed after all of them
    problem = _where_problem(a.workdir, a.json)
    if problem:
        print(f"pagecore bench quickstart: {problem}", file=sys.stderr)
        return 2
    # the repository and every revision, before any clone: --rev nosuch printed git's lines and a
    # CalledProcessError repr
    if subprocess.run(["git", "-C", str(repo), "rev-parse", "--git-dir"], capture_output=True).returncode != 0:
        print(f"pagecore: error: bench quickstart --repo {repo}: not a git repository", file=sys.stderr)
        return 2
    for rev in a.rev or ["HEAD"]:
        proc = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", "--end-of-options",
                               f"{rev}^{{commit}}"], capture_output=True, text=True)  # fmt: skip
        if proc.returncode != 0:
            print(f"pagecore: error: bench quickstart --rev {rev}: no such revision in {repo}", file=sys.stderr)
            return 2
    runs = []
    for rev in a.rev or ["HEAD"]:
        try:
            r = run_one(repo, rev, a.workdir, a.keep, log=lambda m: print(m, flush=True))
        except subprocess.CalledProcessError as e:
            cmd = " ".join(str(c) for c in e.cmd[:2] if not str(c).startswith("-")) if e.cmd else "a command"
            print(f"pagecore: error: bench quickstart --rev {rev}: {cmd} failed (exit {e.returncode})", file=sys.stderr)
            return 1
        except (RuntimeError, ValueError) as e:
            print(f"pagecore bench quickstart: {e}", file=sys.stderr)
            return 1
        print(format_run(r, a.top), flush=True)
        runs.append(r)
    if a.json is not None:
        from pagecore._util import write_json_atomic

        write_json_atomic(a.json, runs)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
