"""Machine code in this process through llvmlite alone: one LLVM JIT engine, without Numba's start-up.

Importing Numba and making the first call of a (cached) jitted function costs about a second
per process (Numba sets up its typing and target contexts); ``pagecore hash`` of a small dump
took 1.7 s, most of it that (issue 18). llvmlite, which Numba is built on, loads machine code in
about 10 ms: :func:`load_object` adds an object file that Numba compiled earlier
(:mod:`pagecore.pages._native`), :func:`compile_ir` a few lines of LLVM IR
(:mod:`pagecore.dumps._sigbus`). Both return addresses of functions, called through ctypes
(which releases the GIL, so Python threads run them in parallel).
"""

from __future__ import annotations

import threading

_lock = threading.RLock()
_engine = None  # (llvmlite.binding, target machine, MCJIT engine), made on first use


def target():
    """``(llvmlite.binding, target_machine, description)`` for this host, made once per process.

    ``description`` names the triple, CPU and CPU features that machine code built here depends
    on (a cache key). The target machine is the one Numba itself uses for its JIT (host CPU and
    features, optimisation level 3, the JIT code model)."""
    ll, tm, _, desc = _get()
    return ll, tm, desc


def _get():
    global _engine
    with _lock:
        if _engine is None:
            import llvmlite
            import llvmlite.binding as ll

            try:  # needed by llvmlite < 0.45; an error (nothing to do) in later versions
                ll.initialize()
            except RuntimeError:
                pass
            ll.initialize_native_target()
            ll.initialize_native_asmprinter()
            triple = ll.get_process_triple()
            cpu = ll.get_host_cpu_name()
            features = ll.get_host_cpu_features().flatten()
            tm = ll.Target.from_triple(triple).create_target_machine(
                cpu=cpu, features=features, opt=3, codemodel="jitdefault", jit=True
            )
            empty = ll.parse_assembly("")
            empty.triple = triple
            empty.data_layout = str(tm.target_data)
            engine = ll.create_mcjit_compiler(empty, tm)
            desc = f"llvmlite {llvmlite.__version__}; {triple}; {cpu}; {features}"
            _engine = (ll, tm, engine, desc)
        return _engine


def load_object(data: bytes, symbols: list[str]) -> list[int]:
    """Add the object file ``data`` to the engine; return the addresses of ``symbols``.

    Raises ``RuntimeError`` (from llvmlite) if the object refers to a symbol the process lacks.
    """
    ll, _, engine, _ = _get()
    with _lock:
        engine.add_object_file(ll.ObjectFileRef.from_data(data))
        engine.finalize_object()
        return [_address(engine, s) for s in symbols]


def compile_ir(ir: str, symbols: list[str], externals: dict[str, int] | None = None) -> list[int]:
    """Compile the LLVM IR module ``ir``; return the addresses of ``symbols``.

    ``externals`` maps names the module declares but does not define to addresses in this
    process (C library functions, buffers owned by Python)."""
    ll, _, engine, _ = _get()
    with _lock:
        for name, addr in (externals or {}).items():
            ll.add_symbol(name, addr)
        mod = ll.parse_assembly(ir)
        mod.verify()
        engine.add_module(mod)
        engine.finalize_object()
        return [_address(engine, s) for s in symbols]


def _address(engine, symbol: str) -> int:
    addr = engine.get_function_address(symbol) or engine.get_global_value_address(symbol)
    if not addr:
        raise RuntimeError(f"symbol {symbol} not found in the loaded machine code")
    return int(addr)
