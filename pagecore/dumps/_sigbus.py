"""One line instead of a silent death when a memory-mapped input shrinks under pagecore.

Readers hand out zero-copy views of a read-only ``mmap``. If another process truncates the
file, touching a page past its new end raises SIGBUS, which kills the process with no
message — possibly inside a Numba kernel on a worker thread, where no Python code can run.
The readers check the file size before every chunk (:meth:`MmapReader._check_size`), but a
truncation while a chunk is being hashed can only be caught here: a native SIGBUS handler
(a Numba ``cfunc``, so it needs neither the GIL nor the interpreter) writes one prepared line
naming the input to stderr and ends the process with exit status :data:`EXIT_STATUS`.
Output files are not cleaned up (as after SIGKILL).

:func:`install_async` is called by a reader when it maps a file (the handler is compiled on a
daemon thread, so reads do not wait for it; a fault in the first fraction of a second of a
process's first read still dies silently); :func:`set_current` names the file.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import threading

import numpy as np

#: Exit status after a SIGBUS (the shell's 128 + SIGBUS).
EXIT_STATUS = 128 + int(signal.SIGBUS)
MSG_CAP = 4096

_msg = np.zeros(MSG_CAP + 1, np.uint8)  # the line to write, NUL-terminated; its address is baked in
_installed = False
_starting = False
_handler = None  # keep the cfunc alive


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


def install_async() -> None:
    """Install the handler from a daemon thread (compiling it costs ~0.4 s of CPU, off the main path)."""
    global _starting
    if _installed or _starting:
        return
    _starting = True
    threading.Thread(target=install, name="pagecore-sigbus", daemon=True).start()


def install() -> bool:
    """Install the SIGBUS handler once; False where that is not possible (then SIGBUS kills)."""
    global _installed, _handler
    if _installed:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        from numba import cfunc, types

        write = libc.write
        write.restype = ctypes.c_ssize_t
        write.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_size_t]
        exit_ = libc._exit
        exit_.restype = None
        exit_.argtypes = [ctypes.c_int]
        strlen = libc.strlen
        strlen.restype = ctypes.c_size_t
        strlen.argtypes = [ctypes.c_size_t]
        msg_addr, status = _msg.ctypes.data, EXIT_STATUS

        @cfunc(types.void(types.int32), nopython=True)
        def _on_sigbus(signum):
            write(2, msg_addr, strlen(msg_addr))
            exit_(status)

        _handler = _on_sigbus
        sighandler_t = ctypes.c_void_p
        libc.signal.restype = sighandler_t
        libc.signal.argtypes = [ctypes.c_int, sighandler_t]
        libc.signal(int(signal.SIGBUS), _on_sigbus.address)
    except Exception:  # pragma: no cover - no libc or no Numba: keep the default action
        return False
    _installed = True
    return True
