"""The import graph flows one way (pagecore._layers), every module says its one job."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pagecore import _layers

ROOT = Path(__file__).resolve().parents[1] / "pagecore"


def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        yield ".".join(parts), path, is_pkg


def _imports(name: str, path: Path, is_pkg: bool) -> set[str]:
    """Every pagecore module ``path`` imports, at any depth (functions, TYPE_CHECKING blocks)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if is_pkg else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "pagecore")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "pagecore":
                continue
            out.add(mod)
            for a in node.names:  # `from pagecore.sim import memory` imports a module
                sub = f"{mod}.{a.name}"
                if (ROOT.parent / (sub.replace(".", "/") + ".py")).exists() or (
                    ROOT.parent / sub.replace(".", "/") / "__init__.py"
                ).exists():
                    out.add(sub)
    return out


MODULES = list(_modules())


@pytest.mark.parametrize("name,path,is_pkg", MODULES, ids=[m[0] for m in MODULES])
def test_imports_follow_the_layering(name, path, is_pkg):
    bad = sorted(i for i in _imports(name, path, is_pkg) if not _layers.may_import(name, i))
    assert not bad, f"{name} imports against the order in pagecore._layers: {bad}"


def test_no_import_cycle():
    graph = {name: {i for i in _imports(name, path, pkg) if i != name} for name, path, pkg in MODULES}
    names = set(graph)
    # a package's __init__ importing its own submodules is how packages export; not a cycle
    for n in graph:
        graph[n] = {i for i in graph[n] if i in names and not i.startswith(n + ".")}
    seen, stack, cycles = set(), [], []

    def visit(n):
        if n in stack:
            cycles.append([*stack[stack.index(n) :], n])
            return
        if n in seen:
            return
        seen.add(n)
        stack.append(n)
        for m in sorted(graph[n]):
            visit(m)
        stack.pop()

    for n in sorted(graph):
        visit(n)
    assert not cycles, f"import cycles: {cycles[:5]}"


def test_layering_catches_a_backward_import():
    assert not _layers.may_import("pagecore.pages.ingest", "pagecore.sim.engine")
    assert not _layers.may_import("pagecore.plotting.fig04", "pagecore.qemu.capture")
    assert _layers.may_import("pagecore.sim.engine", "pagecore.synth.specs")
    assert _layers.may_import("pagecore.dumps.raw", "pagecore.errors")


@pytest.mark.parametrize("name,path,is_pkg", MODULES, ids=[m[0] for m in MODULES])
def test_every_module_says_its_job(name, path, is_pkg):
    doc = ast.get_docstring(ast.parse(path.read_text()))
    assert doc and doc.strip(), f"{path} has no module docstring"
    first = doc.strip().splitlines()[0]
    assert len(first) > 15, f"{path}: the docstring's first line should say the module's one job"
    if is_pkg and name != "pagecore.cli" and name.count(".") == 1:
        assert "Owns" in doc or "owns" in doc, f"{path}: a package's docstring says what it owns"
        assert "ust not" in doc, f"{path}: a package's docstring says what it must not do"


PUBLIC_MODULES = {"pagecore", "pagecore.paper", "pagecore.config", "pagecore.timelines", "pagecore.notebooks"} | {
    f"pagecore.{s}" for group in _layers.STAGES for s in group if s != "cli"
}
REPO = ROOT.parent


def _client_sources():
    import json

    for path in sorted((REPO / "workflow" / "scripts").glob("*.py")):
        yield path, path.read_text()
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        # IPython magics (`%matplotlib inline`) are not Python
        yield path, "\n".join(line for line in code.splitlines() if not line.lstrip().startswith("%"))


@pytest.mark.parametrize("path,source", list(_client_sources()), ids=lambda v: getattr(v, "name", ""))
def test_notebooks_and_scripts_use_the_public_api(path, source):
    import importlib

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "pagecore":
            assert node.module in PUBLIC_MODULES, f"{path.name} imports {node.module}: use pagecore or a subpackage"
            mod = importlib.import_module(node.module)
            if not hasattr(mod, "__path__"):  # a public base module: all of it is public
                continue
            exported = set(getattr(mod, "__all__", ()))
            for a in node.names:
                is_module = importlib.util.find_spec(f"{node.module}.{a.name}") is not None
                assert a.name in exported or is_module, f"{path.name}: {node.module}.{a.name} is not public"


def test_the_command_line_starts_without_the_numeric_stack():
    """`pagecore --help` and every parser import no numpy/numba/pandas/pyarrow (fast start-up)."""
    import subprocess
    import sys

    code = (
        "import sys; from pagecore.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('numpy', 'numba', 'pandas', 'pyarrow', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"the parser imports {out.strip()}"


def test_version_lookup_agrees_with_importlib_metadata():
    """``pagecore.__version__`` reads the dist-info itself (start-up); it must say what pip says."""
    from importlib.metadata import version

    import pagecore

    assert pagecore._version() == version("pagecore")
