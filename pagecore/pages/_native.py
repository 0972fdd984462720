"""The page-hash kernel as cached machine code that ``pagecore hash`` runs without importing Numba.

Numba compiles :func:`pagecore.pages._pcx64.hash_into` (the serial ``pcx64-v1`` kernel on raw
pointers, built from the same ``_hash_page`` as the jitted kernels) into a C function once per
machine; its object code is stored in a cache file, and also linked into a shared library
(``ld -shared``), which every later process loads with ctypes in about a millisecond — without
importing Numba (about a second for its import and first dispatch: issue 18) or even llvmlite
(40-70 ms). Without a linker, the object file is loaded through llvmlite's JIT in about 10 ms
(:mod:`pagecore._llvm`). Threads are Python threads calling the kernel through ctypes, which
releases the GIL.

The cache files are named by a SHA-256 of this module's, ``_pcx64``'s and ``hashing``'s source
and the host's CPU (the object file: llvmlite's triple, CPU name and features and its version;
the shared library: /proc/cpuinfo), so an edit, an upgrade or another machine builds new ones
(written atomically; concurrent builders are harmless). It lives where
Numba keeps its own cache: ``$NUMBA_CACHE_DIR``, else ``__pycache__`` beside this module, else
``~/.cache/pagecore``. Building checks that the object refers to no outside symbol (no Numba
runtime, no Python API), so loading cannot fail half-way.

:func:`kernel` returns ``None`` — and :func:`pagecore.pages.hash_pages` uses the jitted kernels —
when ``NUMBA_DISABLE_JIT=1`` (tests measure coverage inside the kernels), when
``PAGECORE_NATIVE_HASH=0``, or when building or loading fails (:func:`status` says why).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import threading
from pathlib import Path

#: Bumped when the cache file's layout or the C signature changes.
FORMAT = "pagecore-native-pcx64/2"
#: The C entry point's name in the cached machine code.
SYMBOL = "pagecore_pcx64_hash_into"
_HERE = Path(__file__).resolve().parent
_SOURCES = ("_native.py", "_pcx64.py", "hashing.py")
_PREFIX = "pcx64-native-"

_P = ctypes.c_void_p
#: ``void hash_into(u64 *pages, i64 n, u64 *key_words, u64 k0, u64 k1, u64 *out_hash, u8 *out_zero, u64 *scratch16)``
CFUNC = ctypes.CFUNCTYPE(None, _P, ctypes.c_int64, _P, ctypes.c_uint64, ctypes.c_uint64, _P, _P, _P)

_lock = threading.Lock()
_kernel = None
_status = "not loaded yet"


def enabled() -> bool:
    """False under ``NUMBA_DISABLE_JIT=1`` or ``PAGECORE_NATIVE_HASH=0``."""
    if os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"):
        return False
    return os.environ.get("PAGECORE_NATIVE_HASH", "1") not in ("", "0")


def status() -> str:
    """One line: where the native kernel came from, or why it is not used."""
    return _status


def kernel():
    """The native serial kernel (a ctypes function, signature :data:`CFUNC`), or ``None``."""
    global _kernel, _status
    if _kernel is None:
        with _lock:
            if _kernel is None:
                if not enabled():
                    _status = "disabled (NUMBA_DISABLE_JIT or PAGECORE_NATIVE_HASH=0): jitted kernels"
                    _kernel = False
                else:
                    try:
                        _kernel = _load_or_build()
                    except Exception as exc:  # any failure: the jitted kernels hash the same
                        _status = f"unavailable ({type(exc).__name__}: {exc}): jitted kernels"
                        _kernel = False
    return _kernel or None


def cache_dir() -> Path:
    """Where the machine code is cached (see the module docstring)."""
    from pagecore import _llvm

    return _llvm.cache_dir()


def cache_key(target_description: str) -> str:
    h = hashlib.sha256(f"{target_description}\n".encode())
    for src in _sources():
        h.update(src)
    return h.hexdigest()[:24]


def _sources() -> list[bytes]:
    return [FORMAT.encode()] + [(_HERE / name).read_bytes() for name in _SOURCES]


def _load_or_build():
    """The shared library if there is one (ctypes only: no llvmlite import), else the object file
    through llvmlite (linking the shared library for next time), else build both with Numba."""
    global _status
    from pagecore import _llvm

    so = _llvm.library_path(_PREFIX.rstrip("-"), *_sources())
    lib = _llvm.open_library(so)
    if lib is not None:
        _status = f"native machine code loaded from {so}"
        return CFUNC(ctypes.cast(lib[SYMBOL], ctypes.c_void_p).value)
    _, _, desc = _llvm.target()
    path = cache_dir() / f"{_PREFIX}{cache_key(desc)}.bin"
    try:
        blob = path.read_bytes()
        how = f"loaded from {path}"
    except FileNotFoundError:
        blob = build(path)
        how = f"built with Numba into {path}"
    header_len = int.from_bytes(blob[:4], "little")
    header = json.loads(blob[4 : 4 + header_len])
    if header.get("format") != FORMAT:
        raise RuntimeError(f"{path}: not a {FORMAT} file")
    body = blob[4 + header_len :]
    jit, pic = body[: header["jit_size"]], body[header["jit_size"] :]
    if so is not None and not so.exists() and pic and _llvm.link_library(pic, so):
        how += f" (and linked into {so} for the next process)"
    (addr,) = _llvm.load_object(jit, [SYMBOL])
    _status = f"native machine code {how}"
    return CFUNC(addr)


def build(path: Path) -> bytes:
    """Compile ``hash_into`` with Numba, check it is self-contained, write ``path``; return its bytes."""
    from numba import cfunc, types

    from pagecore import _llvm
    from pagecore.pages._pcx64 import hash_into

    ll, tm, _ = _llvm.target()
    u64p = types.CPointer(types.uint64)
    sig = types.void(u64p, types.int64, u64p, types.uint64, types.uint64, u64p, types.CPointer(types.uint8), u64p)
    compiled = cfunc(sig, nopython=True, boundscheck=False)(hash_into)
    mod = ll.parse_assembly(compiled.inspect_llvm())
    for fn in mod.functions:  # keep only the C entry point visible, so the optimiser drops the rest
        if fn.is_declaration:
            continue
        if fn.name == compiled.native_name:
            fn.name = SYMBOL
        else:
            fn.linkage = "internal"
    for gv in mod.global_variables:
        if not gv.is_declaration:
            gv.linkage = "internal"
    mod.triple = tm.triple
    mod.data_layout = str(tm.target_data)
    pb = ll.create_pass_builder(tm, ll.create_pipeline_tuning_options(speed_level=3))
    pb.getModulePassManager().run(mod, pb)
    outside = [f.name for f in mod.functions if f.is_declaration and not f.name.startswith("llvm.")]
    outside += [g.name for g in mod.global_variables if g.is_declaration]
    if outside:
        raise RuntimeError(f"the compiled hash kernel refers to outside symbols {sorted(outside)}")
    obj = tm.emit_object(mod)
    try:
        pic = _llvm.emit_pic(mod)  # for the shared library (see pagecore._llvm)
    except Exception:  # no PIC code: later processes load the object through llvmlite
        pic = b""
    header = json.dumps({"format": FORMAT, "symbol": SYMBOL, "jit_size": len(obj)}).encode()
    blob = len(header).to_bytes(4, "little") + header + obj + pic
    path.parent.mkdir(parents=True, exist_ok=True)
    import tempfile  # not at the top: only a build needs it

    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return blob
