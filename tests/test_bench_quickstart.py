"""`pagecore bench quickstart`: its pieces on made-up inputs, a whole run on a small made-up
repository (no install, no network), and the compile log of pagecore._jit in a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import ctrl_c_when
from conftest import JIT_DISABLED

from pagecore.bench import quickstart as qs

ROOT = Path(__file__).resolve().parents[1]


def test_quick_start_line_refuses_a_readme_without_it():
    with pytest.raises(ValueError, match="no '## Quick start'"):
        qs.quick_start_line("# title\n")
    with pytest.raises(ValueError, match="no line 2"):
        qs.quick_start_line("## Quick start\n\n```sh\necho one\n```\n", 2)
    assert qs.quick_start_line("## Quick start\n```\na && b\nc\n```\n```\nd\n```", 2) == "c"


def test_steps_and_first_job_time():
    assert qs.steps("a -x && . b/activate &&c") == ["a -x", ". b/activate", "c"]
    with pytest.raises(ValueError, match="empty step"):
        qs.steps("a && && b")
    log = "Building DAG of jobs...\n[Wed Dec  2 00:08:47 2026]\nrule x:\n[Wed Dec  2 00:09:01 2026]\n"
    t = qs.first_job_time(log)
    assert (t.hour, t.minute, t.second, t.day) == (0, 8, 47, 2)
    assert qs.first_job_time("no jobs\n") is None


def test_job_table_reads_the_benchmark_files(tmp_path):
    head = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    (tmp_path / "sim").mkdir()
    (tmp_path / "a.tsv").write_text(head + "2.5\t0:00:02\t1\tNA\tNA\tNA\tNA\tNA\tNA\t2.25\n")
    (tmp_path / "sim" / "fig08.tsv").write_text(head + "4.0\t0:00:04\t1\tNA\tNA\tNA\tNA\tNA\tNA\t3.5\n")
    (tmp_path / "empty.tsv").write_text(head)
    (tmp_path / "blank.tsv").write_text("")
    rows = qs.job_table(tmp_path)
    assert rows == [{"job": "sim/fig08", "wall_s": 4.0, "cpu_s": 3.5}, {"job": "a", "wall_s": 2.5, "cpu_s": 2.25}]


@pytest.mark.skipif(JIT_DISABLED, reason="Numba's JIT is off: nothing is compiled")
def test_compile_log_of_a_real_process(tmp_path):
    """A process with PAGECORE_COMPILE_LOG set appends one line per kernel it compiled (an empty
    Numba cache, so it compiles); a caller's own time excludes its callees'."""
    log = tmp_path / "compile.tsv"
    env = {**os.environ, "PAGECORE_COMPILE_LOG": str(log), "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    code = "from pagecore.sharing.counts import _log2_at_least as f; assert f(5) == 3"
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    subprocess.run([sys.executable, "-c", code], env=env, check=True)  # from the cache: nothing compiled
    rows = qs.compile_table(log)
    assert [r["kernel"] for r in rows] == ["pagecore.sharing.counts._log2_at_least"]
    assert 0 < rows[0]["self_s"] <= rows[0]["total_s"] and rows[0]["signature"] == "(int64,)"
    assert qs.compile_table(tmp_path / "none.tsv") == []


def _fake_repo(path: Path, line: str) -> Path:
    path.mkdir()
    (path / "README.md").write_text(f"# x\n\n## Quick start\n\n```sh\n{line}\nsecond line\n```\n")
    for cmd in (["init", "-q"], ["add", "README.md"]):
        subprocess.run(["git", *cmd], cwd=path, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"], cwd=path, check=True)
    return path


def test_a_whole_run_on_a_made_up_repository(tmp_path):
    """Each step timed in one shell (state carries over), the jobs' benchmark files read, the first
    job found, the clone removed; a failing step is reported with its log."""
    head = "s\\th:m:s\\tmax_rss\\tmax_vms\\tmax_uss\\tmax_pss\\tio_in\\tio_out\\tmean_load\\tcpu_time"
    line = (
        'export X=1 && sleep 0.2 && test "$X" = 1 && test "$HOME" != /root && mkdir -p results/benchmarks/j && '
        f"printf '{head}\\n1.5\\t0\\t1\\tNA\\tNA\\tNA\\tNA\\tNA\\tNA\\t1.25\\n' > results/benchmarks/j/one.tsv && "
        "date '+[%a %b %e %H:%M:%S %Y]'"
    )
    repo = _fake_repo(tmp_path / "repo", line)
    work = tmp_path / "work"
    work.mkdir()
    r = qs.run_one(repo, "HEAD", work, log=lambda m: None)
    assert [s["step"] for s in r["steps"]] == qs.steps(line)
    assert r["steps"][1]["wall_s"] >= 0.2 and r["total_s"] >= sum(s["wall_s"] for s in r["steps"]) - 1e-6
    assert r["jobs"] == [{"job": "j/one", "wall_s": 1.5, "cpu_s": 1.25}] and r["jobs_cpu_s"] == 1.25
    assert r["snakemake_to_first_job_s"] is not None and r["compile"] == []
    assert list(work.iterdir()) == []  # the clone is gone
    text = qs.format_run(r)
    assert "j/one" in text and "under 150 s: met" in text and "goal 90 s: met" in text
    assert "not measured" in text  # the made-up repository has no pagecore that logs compilations
    bad = _fake_repo(tmp_path / "bad", "echo working && echo broken >&2 && false")
    with pytest.raises(RuntimeError, match=r"(?s)failed \(exit 1\).*broken"):
        qs.run_one(bad, "HEAD", work, log=lambda m: None)
    # refused before any clone, in one line (audit C: a bad --rev printed a CalledProcessError repr)
    assert qs.main(["--repo", str(tmp_path / "missing"), "--workdir", str(work)]) == 2
    assert qs.main(["--repo", str(bad), "--rev", "nosuch", "--workdir", str(work)]) == 2
    assert list(work.iterdir()) == []


def test_report_of_a_run_with_compilations():
    comp = [
        {"pid": 1, "script": "share_report.py", "kernel": "m.a", "self_s": 2.0, "total_s": 3.0, "signature": ""},
        {"pid": 1, "script": "share_report.py", "kernel": "m.b", "self_s": 1.0, "total_s": 1.0, "signature": ""},
        {"pid": 2, "script": "host_whatif.py", "kernel": "m.a", "self_s": 0.5, "total_s": 0.5, "signature": ""},
    ]
    r = {"rev": "HEAD", "commit": "abc", "date": "d", "host_sort_10M_s": 0.2, "total_s": 151.0,
         "steps": [{"step": "snakemake --cores all", "wall_s": 140.0}], "snakemake_to_first_job_s": 6.0,
         "jobs": [], "jobs_cpu_s": 0.0, "compile": comp, "compile_cpu_s": 3.5}  # fmt: skip
    text = qs.format_run(r)
    assert "3.5 CPU-s in 2 processes" in text
    assert "   3.00 CPU-s    2 kernels  share_report.py" in text  # by script, largest first
    assert "   2.50 CPU-s    2 times   m.a" in text  # by kernel, over processes
    assert "6 s to Snakemake's first job" in text and "134 s of jobs" in text
    assert "under 150 s: NOT met" in text


def test_output_and_work_directories_are_checked_before_any_run(tmp_path, capsys):
    """``--json /missing/x.json`` failed only after every run (minutes each, results lost);
    ``--workdir`` missing was a traceback from mkdtemp."""
    repo = _fake_repo(tmp_path / "repo", "true")
    work = tmp_path / "work"
    work.mkdir()
    for args, want in (
        (["--json", str(tmp_path / "missing" / "x.json")], "--json "),
        (["--json", str(work)], "--json: "),
        (["--workdir", str(tmp_path / "nowhere")], "--workdir "),
    ):
        argv = ["--repo", str(repo), "--workdir", str(work), *args]
        assert qs.main(argv) == 2, args
        err = capsys.readouterr().err
        assert err.startswith(f"pagecore bench quickstart: {want}") and err.count("\n") == 1, err
        assert list(work.iterdir()) == []


def test_an_interrupted_run_stops_every_process_of_its_steps(tmp_path):
    """Ctrl-C or SIGTERM killed the shell running the steps; what it had started (pip, Snakemake)
    ran on in the clone being removed."""
    import os
    import signal
    import time

    pidfile = tmp_path / "pid"
    repo = _fake_repo(tmp_path / "repo", f"true && sh -c 'echo $$ > {pidfile}; exec sleep 60'")
    work = tmp_path / "work"
    work.mkdir()

    pid = None
    try:
        # once the step's sleep runs (cloning may be slow on a loaded host)
        with ctrl_c_when(lambda: pidfile.exists() and pidfile.read_text().strip()):
            with pytest.raises(KeyboardInterrupt):
                qs.run_one(repo, "HEAD", work, log=lambda m: None)
        pid = int(pidfile.read_text())
        for _ in range(50):  # the group was killed; its sleep is reaped by init soon after
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            try:
                if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                    break
            except FileNotFoundError:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the step's process runs on")
        assert list(work.iterdir()) == []
    finally:
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
