"""Execute the project's notebooks as a reader would see them, check what they show, render HTML.

Used by the workflow (``results/notebooks/<name>.html``) and by tests/test_notebooks.py. The
kernel runs with matplotlib's inline backend: ``MPLBACKEND`` (which the workflow and the tests
set to ``Agg`` for themselves) is removed from the kernel's environment, so figures appear as
``image/png`` outputs exactly as in Jupyter.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

#: Calls that draw: a cell making one of them must show an image.
PLOT_CALL = re.compile(
    r"\b(?:plt\.(?:plot|subplots|figure|bar|barh|hist|imshow)|fig\d\d\w*|whatif_memory_manager|io_remapping|host_whatif|"
    r"reclaim_balloon_vs_paging|scan_\w+)\s*\(|\.plot(?:\.\w+)?\s*\("
)
#: Text outputs that are objects' reprs rather than something meant for a reader.
STRAY_REPR = re.compile(r"^<(?:Figure size|matplotlib\.|Axes|AxesSubplot)|^(?:Text|Line2D)\(|^\[<matplotlib\.")
#: A number the text quotes from an output: written in bold, starting with a digit (``**180.0 MB**``).
QUOTED = re.compile(r"\*\*(\d[\d,]*(?:\.\d+)?)[^*]*\*\*")


def execute_notebook(path: str | os.PathLike, cwd: str | os.PathLike, timeout: int = 1200):
    """Run every cell of the notebook at ``path`` in a kernel of its own, with working directory
    ``cwd``; return it executed (:func:`execute_notebooks` of one notebook).

    Raises nbclient's ``CellExecutionError`` (naming the cell) when a cell fails.
    """
    return execute_notebooks([path], cwd, timeout)[0]


#: Run silently in the kernel before each notebook after the first: a fresh session, as in a new
#: kernel (no names of the previous notebook; cells numbered from 1); imported modules stay loaded.
_NEW_SESSION = "get_ipython().reset(new_session=True)"


def execute_notebooks(paths, cwd: str | os.PathLike, timeout: int = 1200) -> list:
    """Run the notebooks at ``paths`` one after another in one kernel; return them executed.

    Each notebook starts in a new session of that kernel (its names cleared, its cells numbered
    from 1), so it shows what it shows in a kernel of its own; the kernel starts once and each
    module is imported once (a kernel's start and imports cost about 3 CPU-seconds). Raises
    nbclient's ``CellExecutionError`` (naming the cell) when a cell fails.
    """
    import nbformat
    from nbclient import NotebookClient

    nbs = [nbformat.read(Path(p), as_version=4) for p in paths]
    if not nbs:
        return []
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    opts = dict(timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
    owner = NotebookClient(nbs[0], **opts)
    with owner.setup_kernel(env=env):
        for i, nb in enumerate(nbs):
            if i:
                reply = owner.wait_for_reply(owner.kc.execute(_NEW_SESSION, silent=True, store_history=False))
                if reply is None or reply["content"]["status"] != "ok":
                    raise RuntimeError(f"could not start a new kernel session before {paths[i]}: {reply}")
            client = NotebookClient(nb, km=owner.km, **opts)
            client.kc = owner.kc
            client.execute()
    return nbs


def _texts(cell) -> list[str]:
    out = []
    for o in cell.get("outputs", []):
        if o.output_type == "stream":
            out.append(o.text)
        elif o.output_type in ("execute_result", "display_data"):
            out.append(o.data.get("text/plain", ""))
    return out


def plotting_cells_without_image(nb) -> list[int]:
    """Indices of code cells that call a plotting function but show no ``image/png``."""
    bad = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not PLOT_CALL.search(cell.source):
            continue
        if not any("image/png" in o.get("data", {}) for o in cell.get("outputs", [])):
            bad.append(i)
    return bad


def stray_reprs(nb) -> list[tuple[int, str]]:
    """(cell index, text) of outputs that are bare object reprs like ``<Figure size 640x480 …>``."""
    bad = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for o in cell.get("outputs", []):
            if o.output_type in ("execute_result", "display_data") and "image/png" not in o.get("data", {}):
                text = o.data.get("text/plain", "")
                if STRAY_REPR.search(text) and "text/html" not in o.data:
                    bad.append((i, text[:80]))
    return bad


def quoted_numbers_missing(nb) -> list[str]:
    """Numbers the markdown quotes (in bold, e.g. ``**180.0 MB**``) that no output prints."""
    printed = "\n".join(t for c in nb.cells if c.cell_type == "code" for t in _texts(c))
    missing = []
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for num in QUOTED.findall(cell.source):
            if not re.search(rf"(?<![\d.,]){re.escape(num)}(?![\d])", printed):
                missing.append(num)
    return missing


def render_html(nb, out: str | os.PathLike) -> None:
    """Write the executed notebook ``nb`` as one self-contained HTML page (images inline)."""
    from nbconvert import HTMLExporter

    from pagecore._util import atomic_path

    body, _ = HTMLExporter(embed_images=True).from_notebook_node(nb)
    with atomic_path(out) as tmp:
        Path(tmp).write_text(body, encoding="utf-8")
