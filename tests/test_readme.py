"""The README's commands are the tested ones, pinned by constraints.txt; the config is documented."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def quick_start() -> list[str]:
    """The Quick start block's two lines, read as `pagecore bench quickstart` reads them."""
    from pagecore.bench.quickstart import quick_start_line

    text = (ROOT / "README.md").read_text()
    return [quick_start_line(text, n) for n in (1, 2)]


def test_quick_start_is_two_pinned_commands():
    lines = quick_start()
    assert len(lines) == 2
    # uv (pinned itself) installs the pinned versions. The test line byte-compiles all of them:
    # this machine kind sets PYTHONDONTWRITEBYTECODE, so without it every test process would
    # recompile its imports' sources. The pipeline line need not (about 38 CPU-seconds for 7,000
    # modules): the workflow compiles Snakemake's imports and its jobs cache the bytecode of what
    # they import (workflow/rules/common.smk, _byte_compile_imports).
    assert "pip install -q -c constraints.txt uv && uv pip install -c constraints.txt -e . && " in lines[0]
    install = "pip install -q -c constraints.txt uv && uv pip install --compile-bytecode -c constraints.txt -e "
    assert install in lines[1], lines[1]
    assert "_byte_compile_imports()" in (ROOT / "workflow/rules/common.smk").read_text()

    assert lines[0].endswith("snakemake --cores all") and lines[1].endswith("pytest")


def test_ci_runs_both_quick_start_lines_and_the_report():
    ci = (ROOT / ".ci/run").read_text()
    assert "quick_start 1" in ci and "quick_start 2" in ci
    assert 'bash -euo pipefail -c "$run_cmd"' in ci and 'bash -euo pipefail -c "$test_cmd"' in ci
    assert "snakemake --report results/report.html" in ci
    # the awk/sed extraction CI uses gives the same two lines as this test
    define = next(line for line in ci.splitlines() if line.startswith("quick_start() {"))
    for n, want in enumerate(quick_start(), 1):
        got = subprocess.run(["bash", "-c", f"{define}\nquick_start {n}"], cwd=ROOT, capture_output=True, text=True)
        assert got.stdout.strip() == want


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower().replace("_", "-")


def test_constraints_pin_every_dependency():
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in py["dependencies"]} | {_name(r) for r in py["optional-dependencies"]["test"]}
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version, f"not pinned: {line}"
            pins[name.lower().replace("_", "-")] = version
    assert not wanted - set(pins), sorted(wanted - set(pins))
    assert "pygments" in pins  # snakemake[reports], for `snakemake --report` after line 1
    assert "uv" in pins  # the Quick start's installer


def test_refresh_command_is_documented_and_parses():
    assert ".ci/refresh_constraints" in (ROOT / "README.md").read_text()
    assert ".ci/refresh_constraints" in (ROOT / "constraints.txt").read_text()
    subprocess.run(["bash", "-n", str(ROOT / ".ci/refresh_constraints")], check=True)


def test_requirements_box():
    text = (ROOT / "README.md").read_text()
    box = text.split("**Requirements.**", 1)[1].split("\n\n", 1)[0]
    for needle in ("Python ≥ 3.11", "0.7 GB", "QEMU", "kernel", "Jupyter"):
        assert needle in box, needle
    # the one command in the box is the package install CI runs (same packages)
    (cmd,) = [c for c in re.findall(r"`([^`]+)`", box.replace("\n> ", " ")) if " install " in c]
    ci = (ROOT / ".ci/run").read_text()
    ci_pkgs = re.search(r"apt-get install -y -qq ([\w .-]+?) >/dev/null", ci).group(1).split()
    assert cmd.split("install", 1)[1].split() == ci_pkgs


def _schema_keys(schema: dict) -> set[str]:
    defs = schema.get("$defs", {})

    def resolve(s):
        return resolve(defs[s["$ref"].split("/")[-1]]) if "$ref" in s else s

    keys: set[str] = set()

    def walk(s, prefix):
        s = resolve(s)
        for k, sub in s.get("properties", {}).items():
            key = f"{prefix}.{k}" if prefix else k
            keys.add(key)
            walk(sub, key)
        ap = s.get("additionalProperties")
        if isinstance(ap, dict) and "properties" in resolve(ap):
            walk(ap, f"{prefix}.<name>")

    walk(schema, "")
    return keys


def test_config_readme_documents_every_key():
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    doc = (ROOT / "workflow/config/README.md").read_text()
    missing = sorted(k for k in _schema_keys(schema) if f"`{k}`" not in doc)
    assert not missing, missing


def test_every_rule_explains_itself():
    """`snakemake --list-rules` prints a docstring under every rule."""
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--list-rules", "--snakefile", str(ROOT / "Snakefile")],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    rules = [line for line in proc.stdout.splitlines() if re.match(r"^\w+", line)]
    assert len(rules) > 30
    assert not [line for line in rules if not re.match(r"^\w+ \(.{20,}\)$", line)]  # `rule (docstring)`
    assert (ROOT / ".snakemake-workflow-catalog.yml").is_file()
