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

import ctypes
import hashlib
import os
import threading
from pathlib import Path

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


# --- shared libraries: the same machine code, loaded next time without importing llvmlite ---
#
# Importing llvmlite.binding costs a process 40-70 ms of CPU (it loads libllvmlite and builds
# llvmlite.ir), more than everything else pagecore's hash path does besides numpy and pyarrow.
# So once machine code has been built, it is also linked into a shared library with the system
# linker (``ld -shared``; position-independent code from a second target machine), cached under
# a key that needs no llvmlite (the source of the code and this host's CPU as /proc/cpuinfo
# describes it), and loaded by later processes with ctypes alone. Where there is no linker or no
# /proc/cpuinfo, everything still works through the JIT engine above.


def cache_dir() -> Path:
    """Where machine code is cached: ``$NUMBA_CACHE_DIR/pagecore``, else ``__pycache__`` beside
    this package's ``pages`` module, else ``~/.cache/pagecore`` (where Numba's cache would go)."""
    env = os.environ.get("NUMBA_CACHE_DIR")
    if env:
        return Path(env) / "pagecore"
    pages = Path(__file__).resolve().parent / "pages"
    here = pages / "__pycache__"
    if os.access(here if here.is_dir() else pages, os.W_OK):
        return here
    return Path(os.path.expanduser("~")) / ".cache" / "pagecore"


def host_id() -> str | None:
    """This host's CPU as machine code depends on it (architecture, model, feature flags), read
    without llvmlite; ``None`` where /proc/cpuinfo is not available."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            info = {}
            for line in fh:
                if not line.strip():
                    break  # the first CPU is enough
                k, _, v = line.partition(":")
                info[k.strip()] = v.strip()
    except OSError:
        return None
    flags = info.get("flags") or info.get("Features")
    if not flags:
        return None
    return f"{platform_machine()}; {info.get('vendor_id', '')}; {info.get('model name', '')}; {flags}"


def platform_machine() -> str:
    return os.uname().machine if hasattr(os, "uname") else "unknown"


def library_path(stem: str, *sources: bytes) -> Path | None:
    """The cache path of the shared library built from ``sources`` on this host, or ``None``."""
    host = host_id()
    if host is None:
        return None
    h = hashlib.sha256(f"pagecore-shared-library/1\n{host}\n".encode())
    for s in sources:
        h.update(hashlib.sha256(s).digest())
    return cache_dir() / f"{stem}-{h.hexdigest()[:24]}.so"


def open_library(path: Path | None):
    """``ctypes.CDLL`` of a cached shared library, or ``None`` when it is not there (or unusable)."""
    if path is None or not path.is_file():
        return None
    try:
        return ctypes.CDLL(str(path))
    except OSError:
        return None


def emit_pic(module) -> bytes:
    """Object code of ``module`` (an llvmlite ModuleRef, already optimised) as position-independent
    code for this host, ready for :func:`link_library`."""
    ll, _, _, _ = _get()
    with _lock:
        tm = ll.Target.from_triple(module.triple).create_target_machine(
            cpu=ll.get_host_cpu_name(), features=ll.get_host_cpu_features().flatten(), opt=3, reloc="pic"
        )
        return tm.emit_object(module)


def link_library(pic_object: bytes, path: Path | None) -> bool:
    """Link ``pic_object`` (from :func:`emit_pic`) into the shared library ``path`` with
    ``ld -shared``, written atomically. Returns False (and changes nothing) where that is not
    possible: no linker, no host id, a linker error."""
    import shutil  # not at the top: these cost start-up, and only a build needs them
    import subprocess
    import tempfile

    ld = shutil.which("ld")
    if path is None or ld is None:
        return False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=".link-") as td:
            o, so = Path(td) / "code.o", Path(td) / "code.so"
            o.write_bytes(pic_object)
            proc = subprocess.run([ld, "-shared", "-o", str(so), str(o)], capture_output=True, text=True)
            if proc.returncode != 0 or not so.is_file():
                return False
            os.replace(so, path)
    except OSError:
        return False
    return True


def link_ir_library(ir: str, path: Path | None) -> bool:
    """Compile the LLVM IR module ``ir`` to position-independent code and link it into ``path``."""
    if path is None or path.exists():
        return False
    ll, tm, _, _ = _get()
    with _lock:
        mod = ll.parse_assembly(ir)
        mod.triple = tm.triple
        mod.data_layout = str(tm.target_data)
    try:
        return link_library(emit_pic(mod), path)
    except Exception:  # a library is an optimisation: the JIT path works without it
        return False
