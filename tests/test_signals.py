"""Ctrl-C and SIGTERM are not lost inside a ctypes callback (pagecore._signals)."""

from __future__ import annotations

import ctypes
import signal
import time

import pytest

from pagecore import _signals

CALLBACK = ctypes.CFUNCTYPE(None)


def _press_inside_callback(signum: int) -> float:
    """Call, through ctypes, a function that receives ``signum``; return when it came back."""

    def pressed_inside() -> None:  # C calls this: an exception raised here would be dropped
        signal.raise_signal(signum)
        for _ in range(1000):  # Python runs the handler at one of these steps
            pass

    CALLBACK(pressed_inside)()
    return time.perf_counter()


@pytest.fixture
def as_callback(monkeypatch):
    monkeypatch.setattr(_signals, "CALLBACKS", {*_signals.CALLBACKS, (__name__, "pressed_inside")})


@pytest.mark.parametrize(("signum", "exc"), [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, _signals.Terminated)])
def test_a_signal_inside_a_callback_is_raised_after_it(as_callback, signum, exc):
    returned = None
    with pytest.raises(exc), _signals.handlers():
        returned = _press_inside_callback(signum)
        deadline = returned + 5.0
        while time.perf_counter() < deadline:  # the signal comes again, here, where it can propagate
            time.sleep(0.001)
    assert returned is not None  # the callback itself was not interrupted
    assert time.perf_counter() - returned < 1.0


def test_outside_a_callback_the_handler_raises_at_once():
    with pytest.raises(KeyboardInterrupt), _signals.handlers():
        signal.raise_signal(signal.SIGINT)
        for _ in range(1000):
            pass
        pytest.fail("Ctrl-C was not raised at once")


def test_handlers_are_restored_and_a_foreign_sigint_handler_is_kept():
    before_int, before_term = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with _signals.handlers():
        assert signal.getsignal(signal.SIGINT) is not before_int
    assert signal.getsignal(signal.SIGINT) is before_int
    assert signal.getsignal(signal.SIGTERM) is before_term

    def mine(signum, frame):
        pass

    signal.signal(signal.SIGINT, mine)
    try:
        with _signals.handlers():
            assert signal.getsignal(signal.SIGINT) is mine
    finally:
        signal.signal(signal.SIGINT, before_int)


def test_the_frames_that_count_as_callbacks_are_llvmlites():
    ee = pytest.importorskip("llvmlite.binding.executionengine")
    for module, name in _signals.CALLBACKS:
        assert module == ee.__name__
        assert callable(getattr(ee.ExecutionEngine, name))  # renamed upstream: update CALLBACKS
