"""LLVM intrinsics for pagecore's Numba kernels: cache prefetch hints and calls of C functions by
address.

* :func:`prefetch_read` / :func:`prefetch_write` — ``llvm.prefetch`` of ``arr[i]`` (the start of
  row ``i`` of a 2-D array), keeping the line in all cache levels: a hint with no effect on
  results. Kernels whose reads form chains through random addresses (the replay's frames, the
  scanner's page -> bucket -> frame records) prefetch the items of the events or pages ahead.
* :func:`stream_store` — ``arr[i] = v`` as a non-temporal store (``movnti``): the line is not
  read first and bypasses the caches. For whole 64-byte lines written at once (the counter's
  scatter flushes its write-combining buffers with it); the same thread reads the values back as
  usual. :func:`store_fence` orders them before later stores of other threads.
* :func:`stream_line` — ``dst[i:i + 8] = src[j:j + 8]`` (int64) as one 64-byte non-temporal vector
  store (``vmovntdq``: one store instead of eight ``movnti``); ``dst[i]`` must start a 64-byte
  line.
* :func:`ccall2` ... :func:`ccall5` — call the C function at address ``fn`` (a run-time integer,
  :func:`address` of a ctypes function) with 2 to 5 arguments, every argument and the result a
  64-bit integer (pointers, ``size_t``; a function returning a C ``int`` leaves its value in the
  low 32 bits: truncate with ``np.int32``). Kernels take library functions as addresses, not as
  ctypes-function arguments: a ctypes function used as a global is compiled in as a
  process-specific constant (the kernel cannot be cached), and Numba's dispatcher types each
  distinct ctypes-function argument again at every call (40-70 µs each on the reference machine).

With ``NUMBA_DISABLE_JIT`` set the kernels run as Python: the prefetches do nothing and the calls
go through ctypes.
"""

from __future__ import annotations

import ctypes

import numpy as np

from pagecore._jit import JIT_DISABLED


def address(fn) -> int:
    """The address of the ctypes function ``fn``, for :func:`ccall2` ... :func:`ccall5`."""
    return ctypes.cast(fn, ctypes.c_void_p).value


if JIT_DISABLED:

    def prefetch_read(arr, i):
        """A hint to the CPU only: nothing to do in Python."""

    def prefetch_write(arr, i):
        """A hint to the CPU only: nothing to do in Python."""

    def _ccaller(nargs: int):
        proto = ctypes.CFUNCTYPE(ctypes.c_uint64, *[ctypes.c_uint64] * nargs)
        return lambda fn, *args: np.uint64(proto(int(fn))(*(int(a) for a in args)))

    ccall2, ccall3, ccall4, ccall5 = (_ccaller(n) for n in (2, 3, 4, 5))

    def stream_store(arr, i, v):
        """``arr[i] = v`` (the non-temporal hint means nothing in Python)."""
        arr[i] = v

    def store_fence():
        """Nothing to order in Python."""

    def stream_line(dst, i, src, j):
        """``dst[i:i + 8] = src[j:j + 8]`` (the non-temporal hint means nothing in Python)."""
        dst[i : i + 8] = src[j : j + 8]

else:
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    def _prefetcher(rw: int):
        def codegen(context, builder, signature, args):
            aryty, _ = signature.args
            ary = context.make_array(aryty)(context, builder, args[0])
            idx = [args[1]] + [context.get_constant(types.intp, 0)] * (aryty.ndim - 1)  # row start
            ptr = cgutils.get_item_pointer(context, builder, aryty, ary, idx)
            i8p = ir.IntType(8).as_pointer()
            i32 = ir.IntType(32)
            fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
            fn = builder.module.declare_intrinsic("llvm.prefetch", [i8p], fnty)
            # (address, 0 read / 1 write, locality 3 = keep in all levels, 1 = data cache)
            builder.call(fn, [builder.bitcast(ptr, i8p), i32(rw), i32(3), i32(1)])
            return context.get_dummy_value()

        return codegen

    @intrinsic
    def prefetch_read(typingctx, arr, i):
        """``llvm.prefetch`` of ``arr[i]`` for a read."""
        return types.void(arr, i), _prefetcher(0)

    @intrinsic
    def prefetch_write(typingctx, arr, i):
        """``llvm.prefetch`` of ``arr[i]`` for a write."""
        return types.void(arr, i), _prefetcher(1)

    def _ccall_codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        fnty = ir.FunctionType(i64, [i64] * (len(args) - 1))
        return builder.call(builder.inttoptr(args[0], fnty.as_pointer()), list(args[1:]))

    def _u64(n: int):
        return types.uint64(*[types.uint64] * (n + 1))

    @intrinsic
    def ccall2(typingctx, fn, a, b):
        """``fn(a, b)``, ``fn`` a C function's address."""
        return _u64(2), _ccall_codegen

    @intrinsic
    def ccall3(typingctx, fn, a, b, c):
        """``fn(a, b, c)``, ``fn`` a C function's address."""
        return _u64(3), _ccall_codegen

    @intrinsic
    def ccall4(typingctx, fn, a, b, c, d):
        """``fn(a, b, c, d)``, ``fn`` a C function's address."""
        return _u64(4), _ccall_codegen

    @intrinsic
    def ccall5(typingctx, fn, a, b, c, d, e):
        """``fn(a, b, c, d, e)``, ``fn`` a C function's address."""
        return _u64(5), _ccall_codegen

    @intrinsic
    def stream_store(typingctx, arr, i, v):
        """``arr[i] = v`` (1-D ``arr``, ``v`` cast to its dtype) with LLVM's ``!nontemporal``."""

        def codegen(context, builder, signature, args):
            aryty, _, vty = signature.args
            ary = context.make_array(aryty)(context, builder, args[0])
            ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]])
            st = builder.store(context.cast(builder, args[2], vty, aryty.dtype), ptr)
            st.set_metadata("nontemporal", builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)]))
            return context.get_dummy_value()

        return types.void(arr, i, v), codegen

    @intrinsic
    def stream_line(typingctx, dst, i, src, j):
        """``dst[i:i + 8] = src[j:j + 8]`` (1-D int64 arrays) as one 64-byte store with LLVM's
        ``!nontemporal``; ``dst[i]`` must be 64-byte aligned (the store says so), ``src[j]`` need
        not be."""

        def codegen(context, builder, signature, args):
            dty, _, sty, _ = signature.args
            d = context.make_array(dty)(context, builder, args[0])
            s = context.make_array(sty)(context, builder, args[2])
            dp = cgutils.get_item_pointer(context, builder, dty, d, [args[1]])
            sp = cgutils.get_item_pointer(context, builder, sty, s, [args[3]])
            vt = ir.VectorType(ir.IntType(64), 8)
            v = builder.load(builder.bitcast(sp, vt.as_pointer()), align=8)
            st = builder.store(v, builder.bitcast(dp, vt.as_pointer()), align=64)
            st.set_metadata("nontemporal", builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)]))
            return context.get_dummy_value()

        if not (isinstance(dst, types.Array) and isinstance(src, types.Array)):
            return None
        if dst.dtype != types.int64 or src.dtype != types.int64 or dst.ndim != 1 or src.ndim != 1:
            return None
        return types.void(dst, i, src, j), codegen

    @intrinsic
    def store_fence(typingctx):
        """``fence seq_cst``: non-temporal stores before it are visible to other threads after it."""

        def codegen(context, builder, signature, args):
            builder.fence("seq_cst")
            return context.get_dummy_value()

        return types.void(), codegen
