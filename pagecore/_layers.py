"""The one order in which pagecore's stages may import each other (checked by tests/test_layering.py).

Base modules may be imported by every stage. A stage imports only base modules, itself and the
stages listed before it; stages on the same rank (``plotting``, ``qemu``, ``bench``) do not import
each other. Type-only imports count too.
"""

from __future__ import annotations

#: Importable by every module of the package.
BASE = (
    "pagecore",
    "pagecore._argtypes",
    "pagecore._defaults",
    "pagecore._intrinsics",
    "pagecore._jit",
    "pagecore._llvm",
    "pagecore._pcg64",
    "pagecore._signals",
    "pagecore._sort",
    "pagecore._util",
    "pagecore._smk",
    "pagecore._layers",
    "pagecore.config",
    "pagecore.errors",
    "pagecore.paper",
    "pagecore.timelines",
    "pagecore.notebooks",
    "pagecore.vocab",
)  # notebooks: runs and renders notebooks/, imports no stage

#: Stages in data-flow order; each inner tuple is one rank.
STAGES = (
    ("dumps",),
    ("pages",),
    ("sharing",),
    ("synth",),
    ("sim",),
    ("experiments",),
    ("plotting", "qemu", "bench"),
    ("cli",),
)


def stage_of(module: str) -> str | None:
    """The stage of a dotted module name, or ``None`` for a base module."""
    if module == "pagecore.__main__":  # `python -m pagecore` is the command line
        return "cli"
    if module in BASE:
        return None
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "pagecore":
        raise ValueError(f"{module} is not a pagecore module")
    return parts[1]


def rank(stage: str) -> int:
    """Position of ``stage`` in :data:`STAGES` (equal ranks may not import each other)."""
    for i, group in enumerate(STAGES):
        if stage in group:
            return i
    raise ValueError(f"stage {stage!r} is not listed in pagecore._layers.STAGES")


def may_import(importer: str, imported: str) -> bool:
    """Whether module ``importer`` may import module ``imported`` under the layering."""
    target = stage_of(imported)
    if target is None:
        return True
    source = stage_of(importer)
    if source is None:
        # base modules may import nothing but base modules (pagecore/__init__ re-exports lazily)
        return importer == "pagecore"
    return source == target or rank(target) < rank(source)
