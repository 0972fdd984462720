"""`pagecore qemu …`: real QEMU guests (capture dumps, Figure 4 on real guests, the KSM check, free page reporting)."""

from __future__ import annotations

import argparse

from pagecore.cli._args import command

#: ``pagecore qemu WHAT`` → the module whose ``main(argv)`` runs it.
TOOLS = {
    "capture": "pagecore.qemu.capture",
    "realguests": "pagecore.qemu.realguests",
    "ksmcheck": "pagecore.qemu.ksmcheck",
    "zramcheck": "pagecore.qemu.zramcheck",
    "savestate": "pagecore.qemu.savestate",
    "freereport": "pagecore.qemu.freereport",
    "virshsave": "pagecore.qemu.virshsave",
}


def _cmd_qemu(args) -> int:
    import importlib

    return importlib.import_module(TOOLS[args.what]).main(args.tool_args)


def register(sub) -> None:
    """Add the `qemu` subcommand to the ``pagecore`` parser."""
    q = command(
        sub,
        "qemu",
        _cmd_qemu,
        help="real guests and host devices: capture dumps, real-guest Figure 4, KSM and zram checks, saved state, "
        "free page reporting",
        description="Tools that boot real guests (need qemu-system-x86, a kernel and busybox); "
        "`pagecore qemu WHAT --help` lists each one's options.",
    )
    q.add_argument("what", choices=sorted(TOOLS), help=" | ".join(sorted(TOOLS)))
    q.add_argument("tool_args", nargs=argparse.REMAINDER, help="options passed to the tool")
