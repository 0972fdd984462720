"""VM names as page tables store them: one check for every writer and reader (``pagecore hash
--vm``, ``import``, :func:`pagecore.pages.tables.read_page_table`), in a module of its own so the
table reader need not import the hashing pipeline."""

from __future__ import annotations

from pagecore.errors import ConfigError


def check_vm_name(vm) -> None:
    """Refuse a VM name that is not non-blank text: ``vm=5`` failed deep in the writer
    (``'int' object has no attribute 'encode'``), ``vm=""`` wrote a table of a nameless VM, and a
    name with an undecodable command-line byte (a lone surrogate) failed in Arrow's encoder.

    Names are printed in every report, so a line break, tab or other unprintable character is
    refused too (``--vm $'a\nall'`` printed a report row "all alone" that was no set), and so is
    white space around a name ("web1 " and "web1" were two VMs that read the same)."""
    if not isinstance(vm, str) or not vm.strip():
        raise ConfigError(f"vm: expected a VM name (non-blank text), got {vm!r}")
    try:
        vm.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"vm: {vm!r} is not valid text (undecodable bytes); give a UTF-8 VM name") from None
    if not vm.isprintable():
        raise ConfigError(
            f"vm: {vm!r} holds a line break, tab or other unprintable character (names are printed in "
            "reports); give a printable VM name (pagecore hash --vm NAME)"
        )
    if vm != vm.strip():
        raise ConfigError(f"vm: {vm!r} begins or ends with white space; give the name without it")
