"""Run `snakemake --lint` and fail on any lint except the conda/container one.

Why that one is filtered: pagecore's rules run in the project's own Python environment (the
README installs it with pip); conda channels and container registries cannot be reached from
the machines this project runs on, so per-rule `conda:`/`container:` directives could never be
used or tested here. Every other lint fails CI.
"""

from __future__ import annotations

import re
import subprocess
import sys

ALLOWED = ("Specify a conda environment or container for each rule.",)

proc = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], capture_output=True, text=True)
text = proc.stdout + proc.stderr
blocks = re.split(r"\n(?=Lints for )", text)
problems = []
for block in blocks:
    lines = block.strip().splitlines()
    if not lines or not lines[0].startswith("Lints for "):
        continue
    items = re.split(r"\n\s{4}\* ", "\n" + "\n".join(lines[1:]))
    for item in items:
        item = item.strip()
        if item and not item.startswith(ALLOWED):
            problems.append(f"{lines[0]}\n    * {item}")
# anything that is neither a lint block nor empty is an error from snakemake itself
if proc.returncode not in (0, 1) or ("Lints for" not in text and proc.returncode != 0):
    print(text)
    sys.exit(f"snakemake --lint failed to run (exit {proc.returncode})")
if problems:
    print("\n\n".join(problems))
    sys.exit(f"snakemake --lint: {len(problems)} lint(s)")
print(f"snakemake --lint: clean (filtered only: {ALLOWED[0]!r})")
