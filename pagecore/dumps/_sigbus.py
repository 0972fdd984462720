"""One line instead of a silent death when a memory-mapped input shrinks under pagecore.

Readers hand out zero-copy views of a read-only ``mmap``. If another process truncates the
file, touching a page past its new end raises SIGBUS, which kills the process with no
message — possibly inside a Numba kernel on a worker thread, where no Python code can run.
The readers check the file size before every chunk (:meth:`MmapReader._check_size`), but a
truncation while a chunk is being hashed can only be caught here: a native SIGBUS handler
(machine code compiled by llvmlite from the few lines of LLVM IR in :data:`HANDLER_IR`, so it
needs neither the GIL nor the interpreter) writes one prepared line naming the input to stderr
and ends the process with exit status :data:`EXIT_STATUS`. Output files are not cleaned up (as
after SIGKILL).

:func:`install_async` is called by a reader when it maps a file (compiling the handler takes
milliseconds, and Numba is not imported for it: that cost ``pagecore hash`` a second, issue 18);
:func:`set_current` names the file.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading

import numpy as np

#: Exit status after a SIGBUS (the shell's 128 + SIGBUS).
EXIT_STATUS = 128 + int(signal.SIGBUS)
MSG_CAP = 4096

_msg = np.zeros(MSG_CAP + 1, np.uint8)  # the line to write, NUL-terminated; its address is baked in
_installed = False
_install_lock = threading.Lock()
_handler = None  # the handler's address


def set_current(path) -> None:
    """Prepare the line the handler writes, naming ``path``."""
    line = (
        f"pagecore: error: {os.fspath(path)}: the file shrank while being read (SIGBUS on a mapped page); "
        "expected an input that nothing writes while pagecore reads it; wait until the producer "
        "has finished (or copy the dump) and run again\n"
    ).encode(errors="replace")[:MSG_CAP]
    if not line.endswith(b"\n"):
        line = line[:-1] + b"\n"
    _msg[:] = 0
    _msg[: len(line)] = np.frombuffer(line, np.uint8)


#: The handler: ``write(2, msg, strlen(msg)); _exit(EXIT_STATUS)`` (async-signal-safe calls
#: only); ``pagecore_sigbus_msg_ptr`` is set to :data:`_msg`, the C functions are the C library's.
HANDLER_IR = f"""
@pagecore_sigbus_msg_ptr = global ptr null
declare i64 @strlen(ptr)
declare i64 @write(i32, ptr, i64)
declare void @_exit(i32) noreturn
define void @pagecore_on_sigbus(i32 %signum) {{
  %m = load volatile ptr, ptr @pagecore_sigbus_msg_ptr
  %n = call i64 @strlen(ptr %m)
  %w = call i64 @write(i32 2, ptr %m, i64 %n)
  call void @_exit(i32 {EXIT_STATUS})
  unreachable
}}
"""


def install_async() -> None:
    """Install the handler (kept under its old name: it once compiled on a daemon thread)."""
    install()


def install() -> bool:
    """Install the SIGBUS handler once; False where that is not possible (then SIGBUS kills).

    The handler is a cached shared library loaded with ctypes (see :mod:`pagecore._llvm`); the
    first time on a machine it is compiled with llvmlite, and linked for the next process.
    """
    global _installed, _handler
    if _installed:
        return True
    with _install_lock:
        if _installed:
            return True
        try:
            from pagecore import _llvm

            try:  # the process's own symbols include the C library's (no ldconfig subprocess)
                libc = ctypes.CDLL(None, use_errno=True)
                libc.signal  # noqa: B018 - present?
            except (OSError, AttributeError):
                from ctypes.util import find_library  # only here: it imports tempfile, random (start-up)

                libc = ctypes.CDLL(find_library("c") or "libc.so.6", use_errno=True)
            so = _llvm.library_path("sigbus", HANDLER_IR.encode())
            lib = _llvm.open_library(so)
            if lib is not None:
                address = ctypes.cast(lib.pagecore_on_sigbus, ctypes.c_void_p).value
                msg_ptr = ctypes.c_void_p.in_dll(lib, "pagecore_sigbus_msg_ptr")
            else:
                externals = {
                    name: ctypes.cast(getattr(libc, name), ctypes.c_void_p).value
                    for name in ("strlen", "write", "_exit")
                }
                address, ptr_at = _llvm.compile_ir(
                    HANDLER_IR, ["pagecore_on_sigbus", "pagecore_sigbus_msg_ptr"], externals
                )
                msg_ptr = ctypes.c_void_p.from_address(ptr_at)
                _llvm.link_ir_library(HANDLER_IR, so)  # for the next process
            msg_ptr.value = _msg.ctypes.data
            _handler = (address, lib)  # keep the library loaded
            sighandler_t = ctypes.c_void_p
            libc.signal.restype = sighandler_t
            libc.signal.argtypes = [ctypes.c_int, sighandler_t]
            libc.signal(int(signal.SIGBUS), address)
        except Exception:  # pragma: no cover - no libc or no llvmlite: keep the default action
            return False
        _installed = True
        return True
