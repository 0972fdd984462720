"""pagecore._smk: a workflow job's log and its own timing file."""

import time
from types import SimpleNamespace

import pytest

from pagecore._smk import TIMING_HEADER, _process_start, job_log, timing_path


@pytest.mark.parametrize(
    "log,expected",
    [
        ("results/logs/fig04_guest/vm01.log", "results/benchmarks/fig04_guest/vm01.tsv"),
        ("results/logs/comparison.log", "results/benchmarks/comparison.tsv"),
        ("/abs/run/results/logs/sim_replay/fig06.log", "/abs/run/results/benchmarks/sim_replay/fig06.tsv"),
        ("logs/elsewhere.log", None),
        ("results/logs/not_a_log.txt", None),
    ],
)
def test_timing_path_mirrors_the_log(log, expected):
    assert timing_path(log) == expected


def test_process_start_is_before_now():
    start = _process_start()
    assert 0 < time.time() - start < 24 * 3600


def test_process_start_is_exact_to_a_clock_tick():
    """A new process's start is within a few clock ticks of when it was launched (btime of
    /proc/stat, whole seconds, was up to 1 s early)."""
    import subprocess
    import sys

    before = time.time()
    out = subprocess.run(
        [sys.executable, "-c", "from pagecore._smk import _process_start; print(repr(_process_start()))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert before - 0.05 <= float(out) <= before + 1.0


def _smk(tmp_path, bench_iteration=None):
    log = tmp_path / "results/logs/rule/job.log"
    log.parent.mkdir(parents=True)
    return SimpleNamespace(log=[str(log)], bench_iteration=bench_iteration)


def test_job_log_writes_its_timing_in_snakemakes_columns(tmp_path):
    smk = _smk(tmp_path)
    with job_log(smk):
        print("hello")
        sum(i * i for i in range(200_000))  # some CPU
    assert (tmp_path / "results/logs/rule/job.log").read_text() == "hello\n"
    header, row, *rest = (tmp_path / "results/benchmarks/rule/job.tsv").read_text().splitlines()
    assert rest == []
    assert header.split("\t") == list(TIMING_HEADER)
    values = dict(zip(TIMING_HEADER, row.split("\t"), strict=True))
    assert float(values["s"]) > 0
    assert float(values["cpu_time"]) > 0
    assert float(values["max_rss"]) > 1  # MB: a Python process with pytest loaded
    assert values["io_in"] == "NA"


def test_job_log_leaves_the_timing_to_snakemakes_benchmark(tmp_path):
    smk = _smk(tmp_path, bench_iteration=0)  # the rule has `benchmark:`; Snakemake writes that file
    with job_log(smk):
        pass
    assert not (tmp_path / "results/benchmarks").exists()


def test_failed_job_writes_no_timing_and_logs_the_error(tmp_path):
    smk = _smk(tmp_path)
    with pytest.raises(RuntimeError), job_log(smk):
        raise RuntimeError("boom")
    assert "RuntimeError: boom" in (tmp_path / "results/logs/rule/job.log").read_text()
    assert not (tmp_path / "results/benchmarks").exists()


def test_sigterm_unwinds_a_job_and_leaves_no_temporary(tmp_path):
    """A job killed by SIGTERM (a cluster's time limit, ``scancel``) died where it stood and left
    its output's ``.<name>.pagecore-tmp-<pid>-<n>`` beside it (session 18 audit); it now unwinds
    through the atomic write, logs one line and exits 143."""
    import signal
    import subprocess
    import sys

    log = tmp_path / "results/logs/rule/job.log"
    log.parent.mkdir(parents=True)
    out = tmp_path / "results/out.bin"
    script = (
        "import time\nfrom types import SimpleNamespace\nfrom pagecore._smk import job_log\n"
        "from pagecore._util import atomic_path\n"
        f"smk = SimpleNamespace(log=[{str(log)!r}], bench_iteration=None)\n"
        f"with job_log(smk), atomic_path({str(out)!r}) as tmp:\n"
        "    tmp.write_bytes(b'partial')\n    print('writing', flush=True)\n    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 60
    while "writing" not in (log.read_text() if log.exists() else "") and time.time() < deadline:
        time.sleep(0.05)
    assert [p for p in out.parent.iterdir() if p.name.startswith(".out.bin.pagecore-tmp-")], "nothing written"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143
    assert sorted(p.name for p in out.parent.iterdir()) == ["logs"]  # no output, no temporary
    assert log.read_text().splitlines()[-1] == "pagecore: terminated (SIGTERM); no output written"


def test_report_asks_for_the_sensitivity_charts_once_they_exist(tmp_path):
    """Issue 14: the report includes the tornado charts when `snakemake sensitivity` has run.
    `snakemake --report results/report.html` reported `rule all`'s jobs only, and the charts are
    outside the default run, so the report never held them (checked on a real run, session 20).
    `rule all` asks for them while a report is built, never while the workflow runs."""
    from pagecore._smk import report_only_outputs

    charts = [str(tmp_path / f"sensitivity_fig0{i}.png") for i in (2, 4)]
    report = ["snakemake", "--report", "results/report.html"]
    assert report_only_outputs(report, charts) == []  # not run yet: the report builds without them
    for c in charts:
        open(c, "wb").close()
    assert report_only_outputs(report, charts) == charts
    assert report_only_outputs(["snakemake", "--report=r.html"], charts) == charts
    assert report_only_outputs(["snakemake", "--cores", "2"], charts) == []  # the default run
    assert report_only_outputs([*report, "--report-after-run"], charts) == []  # runs jobs first
    assert report_only_outputs(["snakemake", "--report-stylesheet", "s.css"], charts) == []
    open(charts[0], "wb").close()
    (tmp_path / "sensitivity_fig04.png").unlink()
    assert report_only_outputs(report, charts) == []  # a partial set: not reported


def test_snakefile_rule_all_takes_the_report_only_charts():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    assert "sensitivity_in_report()" in (root / "Snakefile").read_text()


def test_report_leaves_out_charts_made_under_another_config(tmp_path, capsys):
    """The report runs no job: charts drawn under an earlier config went into it as if they were
    this config's. With the digest stamp they are left out, with a warning."""
    from pagecore._smk import config_digest, report_only_outputs

    charts = [str(tmp_path / "sensitivity_fig08.png")]
    open(charts[0], "wb").close()
    stamp = tmp_path / "config.sha256"
    report = ["snakemake", "--report", "r.html"]
    now = config_digest({"comparison": {"tolerances": {"fig08": 0.25}}})
    assert now == config_digest({"comparison": {"tolerances": {"fig08": 0.25}}})
    assert report_only_outputs(report, charts, stamp=str(stamp), digest=now) == []  # no stamp: not known
    stamp.write_text(config_digest({"comparison": {"tolerances": {"fig08": 0.2}}}) + "\n")
    assert report_only_outputs(report, charts, stamp=str(stamp), digest=now) == []
    assert "made under another config" in capsys.readouterr().err
    stamp.write_text(now + "\n")
    assert report_only_outputs(report, charts, stamp=str(stamp), digest=now) == charts


def test_closing_summary_only_after_runs_that_made_it():
    """`snakemake sensitivity` after a config change ended with the comparison summary of the
    earlier config, as "paper vs pagecore"; only the default run and the comparison's own targets
    print it now (the file is up to date after them)."""
    from pagecore._smk import closing_summary_shown

    assert closing_summary_shown(frozenset())  # `snakemake` (rule all)
    assert closing_summary_shown({"all"})
    assert closing_summary_shown({"results/numbers/comparison.txt"})
    assert not closing_summary_shown({"sensitivity"})
    assert not closing_summary_shown({"results/pages/fig04/vm01.parquet"})
