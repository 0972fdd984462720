"""Every notebook runs top to bottom and shows a reader what its text promises.

Executed with the inline backend (as in Jupyter), each notebook must: raise no error, show an
``image/png`` for every cell that plots, print no bare object reprs, and print every number its
text quotes in bold. Notebook 01 must find the pipeline's results from ``notebooks/`` and leave no
temporary directory behind.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from pagecore.notebooks import execute_notebook, plotting_cells_without_image, quoted_numbers_missing, stray_reprs

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
_RUNS: dict[str, tuple] = {}


def executed(path: Path, tmp_path_factory):
    """Run ``path`` once per test session in a scratch directory with its own TMPDIR."""
    if path.name not in _RUNS:
        cwd = tmp_path_factory.mktemp(path.stem)
        tmp = tmp_path_factory.mktemp(path.stem + "-tmp")
        old = os.environ.get("TMPDIR")
        os.environ["TMPDIR"] = str(tmp)
        try:
            _RUNS[path.name] = (execute_notebook(path, cwd), tmp)
        finally:
            if old is None:
                del os.environ["TMPDIR"]
            else:
                os.environ["TMPDIR"] = old
    return _RUNS[path.name]


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name}: clear outputs before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_shows_what_it_says(path, tmp_path_factory):
    nb, tmp = executed(path, tmp_path_factory)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert plotting_cells_without_image(nb) == [], "plotting cells without an inline image"
    assert stray_reprs(nb) == []
    assert quoted_numbers_missing(nb) == [], "numbers the text quotes but no cell prints"
    streams = [o.text for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "stream"]
    assert not [s for s in streams if "Warning" in s], streams
    assert not list(tmp.iterdir()), "temporary files left behind"


def test_notebooks_quote_numbers(tmp_path_factory):
    """The check above is not vacuous: the notebooks do quote numbers in bold."""
    quoted = 0
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        quoted += sum(len(re.findall(r"\*\*\d", c.source)) for c in nb.cells if c.cell_type == "markdown")
    assert quoted >= 6


def test_notebook_01_finds_the_pipeline_results_from_notebooks_dir(tmp_path):
    """Started in notebooks/ (as Jupyter does), notebook 01 uses <root>/results/pages/fig04."""
    from pagecore.pages import hash_dump
    from pagecore.synth import FIG04_DEFAULTS, Fig04Model

    pages = tmp_path / "repo/results/pages/fig04"
    pages.mkdir(parents=True)
    (tmp_path / "repo/notebooks").mkdir()
    model = Fig04Model(**{**FIG04_DEFAULTS, "mem_mb": 1})
    for i in range(2):
        dump = tmp_path / f"vm{i + 1:02d}.raw"
        model.write_raw(i, dump)
        hash_dump(dump, pages / f"vm{i + 1:02d}.parquet", dump.stem, show_progress=False)
    nb = execute_notebook(ROOT / "notebooks/01_explore_page_sharing.ipynb", tmp_path / "repo/notebooks")
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert f"the pipeline's page tables in {pages.resolve()}" in text
    assert "2 page tables" in text and "temporary" not in text


def _nb(*cells):
    return new_notebook(cells=list(cells))


def test_checks_catch_what_a_reader_would_miss():
    """Each check flags a notebook that breaks it and passes the fixed one."""
    plot = new_code_cell("fig = fig04_page_sharing(sweep)\nfig")
    plot.outputs = [new_output("execute_result", data={"text/plain": "<Figure size 640x800 with 2 Axes>"})]
    assert plotting_cells_without_image(_nb(plot)) == [0]
    assert stray_reprs(_nb(plot)) == [(0, "<Figure size 640x800 with 2 Axes>")]
    plot.outputs = [new_output("display_data", data={"text/plain": "<Figure …>", "image/png": "iVBOR"})]
    assert plotting_cells_without_image(_nb(plot)) == [] and stray_reprs(_nb(plot)) == []
    text = new_markdown_cell("ten VMs reclaim **234.8** MB, **1,358** pages")
    shown = new_code_cell("print(x)")
    shown.outputs = [new_output("stream", name="stdout", text="reclaimed 234.8 MB of 1,3580 pages\n")]
    assert quoted_numbers_missing(_nb(text, shown)) == ["1,358"]
    shown.outputs[0].text = "reclaimed 234.8 MB, 1,358 pages\n"
    assert quoted_numbers_missing(_nb(text, shown)) == []


def _strip(nb):
    """What a reader sees of each code cell: its number and outputs (no timing metadata)."""
    return [(c.execution_count, [dict(o) for o in c.outputs]) for c in nb.cells if c.cell_type == "code"]


def test_notebooks_in_one_kernel_each_start_a_fresh_session(tmp_path):
    """execute_notebooks (the workflow's one-kernel run): each notebook sees none of the previous
    one's names, numbers its cells from 1, and shows what it shows in a kernel of its own."""
    from pagecore.notebooks import execute_notebooks

    first = _nb(new_code_cell("x = 41\nimport json\nx + 1"), new_code_cell("print(sorted(json.loads('[2, 1]')))"))
    second = _nb(
        new_code_cell("print('x' in dir(), 'json' in dir())"),
        new_code_cell("y = 3\ny * 2"),
        new_markdown_cell("text"),
        new_code_cell("print(In[1], Out[2])"),
    )
    paths = []
    for name, nb in (("a", first), ("b", second)):
        paths.append(tmp_path / f"{name}.ipynb")
        nbformat.write(nb, paths[-1])
    a, b = execute_notebooks(paths, tmp_path)
    assert [c.execution_count for c in b.cells if c.cell_type == "code"] == [1, 2, 3]
    assert b.cells[0].outputs[0].text == "False False\n"
    assert b.cells[1].outputs[0].data["text/plain"] == "6"
    assert b.cells[3].outputs[0].text == "print('x' in dir(), 'json' in dir()) 6\n"
    assert a.cells[0].outputs[0].data["text/plain"] == "42"
    alone = execute_notebook(paths[1], tmp_path)
    assert _strip(alone) == _strip(b)
    assert execute_notebooks([], tmp_path) == []
