"""Ctrl-C and SIGTERM that are never lost while Numba compiles or loads a kernel.

Python cannot propagate an exception out of a ctypes callback: it prints "Exception ignored
on calling ctypes callback function" and carries on. llvmlite calls Python through ctypes
callbacks (its object-cache hooks) while Numba compiles a kernel or loads one from its cache,
so a signal handler that raises ``KeyboardInterrupt`` while the main thread is inside one
loses the key press: the command keeps running (seen in CI as a read that ignored Ctrl-C, and
reproduced by ``tests/test_dumps_hostile.py::test_ctrl_c_stops_a_read_promptly`` in about one
run out of four before this module existed).

:func:`handlers` installs handlers that look at the interrupted frames first: inside one of
those callbacks they re-send the same signal :data:`REDELIVER_S` later, to be raised where it
can propagate; anywhere else they raise at once, as Python's own Ctrl-C handler does.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator

#: Seconds between finding the main thread inside a callback and sending the signal again.
REDELIVER_S = 0.02

#: ``(module, function)`` of the Python functions that C code calls through ctypes; an
#: exception raised while one of them is on the stack is lost.
CALLBACKS: set[tuple[str, str]] = {
    ("llvmlite.binding.executionengine", "_raw_object_cache_notify"),
    ("llvmlite.binding.executionengine", "_raw_object_cache_getbuffer"),
}


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that outputs unwind like on Ctrl-C."""


def in_callback(frame) -> bool:
    """Whether ``frame`` or a frame that called it is one of :data:`CALLBACKS`."""
    while frame is not None:
        if (frame.f_globals.get("__name__"), frame.f_code.co_name) in CALLBACKS:
            return True
        frame = frame.f_back
    return False


def _send_later(signum: int) -> None:
    main = threading.main_thread().ident

    def send() -> None:
        time.sleep(REDELIVER_S)
        signal.pthread_kill(main, signum)

    threading.Thread(target=send, name="pagecore-signal", daemon=True).start()


def raising(exc_type: type[BaseException]) -> Callable:
    """A signal handler that raises ``exc_type``, or sends the signal again inside a callback."""

    def handler(signum, frame):
        if in_callback(frame):
            _send_later(signum)
            return
        raise exc_type

    return handler


@contextlib.contextmanager
def handlers() -> Iterator[None]:
    """Ctrl-C raises ``KeyboardInterrupt`` and SIGTERM :class:`Terminated`, never lost.

    Main thread only (elsewhere a no-op). A SIGINT handler someone else installed is kept.
    Both previous handlers are restored on the way out.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, raising(Terminated))}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, raising(KeyboardInterrupt))
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
