"""Page hashing: a 64-bit content hash and an all-zero flag for every 4 KiB page.

ESX identifies shareable pages by a 64-bit hash of their contents (paper §4.2–4.3, Bob
Jenkins' hash) and confirms a hash match by comparing the pages byte for byte. pagecore does
the same; the hash only has to be fast, well distributed and — when keyed — unpredictable
without the key. Which Jenkins variant ESX used is not stated (UNCONFIRMED), so pagecore uses
its own memory-bandwidth hash, ``pcx64-v1``, defined exactly here:

Algorithm ``pcx64-v1``
----------------------
Let the page be 512 little-endian 64-bit words ``w[0..511]`` and the key material be 512
64-bit words ``K[0..511]`` plus two 64-bit words ``k0, k1`` (see :class:`PageKey`).

1. Eight lanes, lane ``l`` covering words ``64·l … 64·l+63``. For each lane, modulo 2**64::

       x_j = w_j XOR K_j
       A_l = Σ_j (x_j mod 2**32) · (x_j >> 32)       # 32×32→64-bit products
       B_l = Σ_j w_j

2. Fold to four words: ``m_i = ((A_{2i} XOR rotl(B_{2i}, 29)) · P) XOR (A_{2i+1} +
   rotl(B_{2i+1}, 41))`` with ``P = 0x9E3779B97F4A7C15``.
3. SipHash-1-3 compression of ``m_0 … m_3`` under the key ``(k0, k1)`` (no length block), then
   ``v2 ^= 0xff`` and three finalization rounds; the hash is ``v0 ^ v1 ^ v2 ^ v3``.

The lane sums are associative, so LLVM vectorizes them (AVX2 ``vpmuludq``) and the kernel
runs at memory bandwidth; the keyed SipHash finish makes the output a pseudo-random function of
the lane state, so without the secret a stored hash cannot confirm a guessed page.
The zero flag is the OR of all words being zero.

The Numba kernels are in :mod:`._pcx64`. :func:`hash_pages` (checks shapes and dtypes, carries
this docstring) runs them as machine code loaded without importing Numba (:mod:`._native`, on
Python threads), or through Numba's dispatcher where that is not available; both give the same
hashes. This module itself imports no Numba, so ``pagecore hash`` starts fast (issue 18).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
from dataclasses import dataclass, field

import numpy as np

from pagecore import PAGE_SIZE
from pagecore._jit import resolve_threads
from pagecore.errors import ConfigError
from pagecore.pages import _native

ALGORITHM = "pcx64-v1"
WORDS = PAGE_SIZE // 8
LANES = 8
LANE_WORDS = WORDS // LANES


#: Longest key file read (a key is a secret of a few dozen bytes, not a dump).
MAX_KEY_FILE_BYTES = 1 << 16

#: Shortest secret taken from ``--key-file`` / ``--key-env`` (after stripping white space). Every
#: keyed table stores :attr:`PageKey.key_id`, a 48-bit digest of the raw secret, so a short one
#: (a word, a PIN) is found by guessing offline against it, and with it the key.
#: 16 bytes of random data are beyond guessing.
MIN_KEY_BYTES = 16


def _check_key_length(secret: bytes, where: str) -> None:
    if len(secret) < MIN_KEY_BYTES:
        raise ConfigError(
            f"hash key {where} holds {len(secret)} bytes; a key needs at least {MIN_KEY_BYTES} "
            "(page tables store a 48-bit fingerprint of it, from which a short key can be guessed): "
            "make one with `head -c 32 /dev/urandom | base64`"
        )


@dataclass(frozen=True)
class PageKey:
    """Key material for ``pcx64-v1``, derived from a secret with SHAKE-256.

    The unkeyed default derives from the empty secret, so every pagecore installation computes
    the same hashes for the same pages. A keyed hash (secret from an environment variable or a
    file) makes stored page tables useless for confirming a guessed page content. The secret is
    never stored; outputs carry only :attr:`key_id`, a short fingerprint.
    """

    words: np.ndarray = field(repr=False)
    k0: np.uint64 = field(repr=False)
    k1: np.uint64 = field(repr=False)
    key_id: str = "none"

    @classmethod
    def from_secret(cls, secret: bytes | None) -> PageKey:
        secret = b"" if secret is None else bytes(secret)
        material = hashlib.shake_256(b"pagecore/pcx64-v1/key\x00" + secret).digest(8 * WORDS + 16)
        arr = np.frombuffer(material, dtype="<u8").astype(np.uint64)
        key_id = "none"
        if secret:
            key_id = hashlib.blake2b(secret, digest_size=6, person=b"pagecore-keyid").hexdigest()
        return cls(words=arr[:WORDS].copy(), k0=arr[WORDS], k1=arr[WORDS + 1], key_id=key_id)

    @classmethod
    def default(cls) -> PageKey:
        return _DEFAULT_KEY

    @classmethod
    def from_config(cls, hashing: dict) -> PageKey:
        """The key a workflow ``hashing:`` section names: its ``key_env`` variable's secret, else
        the unkeyed default."""
        return cls.from_env(hashing["key_env"]) if hashing.get("key_env") else cls.default()

    @classmethod
    def from_env(cls, variable: str) -> PageKey:
        value = os.environ.get(variable)
        if not value:
            raise ConfigError(f"hash key variable {variable} is not set or empty; export it or use --key-file")
        _check_key_length(value.encode(), f"variable {variable}")
        return cls.from_secret(value.encode())

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> PageKey:
        try:  # at most MAX_KEY_FILE_BYTES: /dev/zero (or a dump named by mistake) was read whole
            with open(path, "rb") as fh:  # a pipe is fine: --key-file <(pass show pagecore)
                data = fh.read(MAX_KEY_FILE_BYTES + 1)
        except OSError as exc:
            raise ConfigError(f"cannot read hash key file {path}: {exc.strerror}") from None
        if len(data) > MAX_KEY_FILE_BYTES:
            raise ConfigError(f"hash key file {path} is longer than {MAX_KEY_FILE_BYTES:,} bytes; is it the key?")
        if not data.strip():
            raise ConfigError(f"hash key file {path} is empty")
        _check_key_length(data.strip(), f"file {path}")
        return cls.from_secret(data.strip())

    @property
    def keyed(self) -> bool:
        return self.key_id != "none"


_DEFAULT_KEY = PageKey.from_secret(None)


def as_page_words(pages: np.ndarray) -> np.ndarray:
    """View ``pages`` (uint8[n, 4096] or uint64[n, 512], C-contiguous) as uint64[n, 512]."""
    if not isinstance(pages, np.ndarray):
        raise TypeError(f"pages must be a numpy array, got {type(pages).__name__}")
    if pages.ndim != 2:
        raise ValueError(f"pages must be 2-D (n, {PAGE_SIZE}) bytes or (n, {WORDS}) words, got shape {pages.shape}")
    if pages.dtype == np.uint8 and pages.shape[1] == PAGE_SIZE:
        if not pages.flags.c_contiguous:
            pages = np.ascontiguousarray(pages)
        return pages.view(np.uint64)
    if pages.dtype == np.uint64 and pages.shape[1] == WORDS:
        return pages if pages.flags.c_contiguous else np.ascontiguousarray(pages)
    raise ValueError(
        f"pages must be uint8[n, {PAGE_SIZE}] or uint64[n, {WORDS}], "
        f"got {pages.dtype}[{', '.join(map(str, pages.shape))}]"
    )


def hash_pages(
    pages: np.ndarray,
    key: PageKey | None = None,
    threads: int | None = 1,
    out: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Hash every page with ``pcx64-v1`` and flag all-zero pages.

    Parameters
    ----------
    pages : numpy.ndarray
        ``uint8[n, 4096]`` or ``uint64[n, 512]``, one row per page. A read-only view (for
        example of a memory-mapped dump) is fine: pages are never written.
    key : PageKey, optional
        Key material; the unkeyed default when omitted.
    threads : int or None
        Threads to use; ``None`` or 0 means all Numba threads, 1 runs the serial kernel.
        Results are identical for every thread count.
    out : (uint64[n], bool[n]), optional
        Preallocated outputs.

    Returns
    -------
    hashes : numpy.ndarray
        ``uint64[n]``.
    zero : numpy.ndarray
        ``bool[n]``, True where every byte of the page is zero.

    Notes
    -----
    Paper §4.2–4.3: a 64-bit hash per scanned page keys the global sharing table; a hash match
    is confirmed by a full comparison before pages are shared.
    """
    return hash_pages_start(pages, key, threads, out)()


def hash_pages_start(
    pages: np.ndarray,
    key: PageKey | None = None,
    threads: int | None = 1,
    out: tuple[np.ndarray, np.ndarray] | None = None,
):
    """Start :func:`hash_pages` and return at once; call the returned function for its result.

    With the native kernel the pages are hashed on the hashing threads meanwhile, so a caller
    can read the next chunk of a dump while this one is hashed (:func:`.ingest.hashed_chunks`).
    ``pages`` and ``out`` must not change until the result has been collected. Without the
    native kernel the work is done before this returns.
    """
    words = as_page_words(pages)
    key = key or _DEFAULT_KEY
    n = words.shape[0]
    if out is None:
        out_hash = np.empty(n, np.uint64)
        out_zero = np.empty(n, np.bool_)
    else:
        out_hash, out_zero = out
        if out_hash.shape != (n,) or out_hash.dtype != np.uint64:
            raise ValueError(f"out[0] must be uint64[{n}], got {out_hash.dtype}{out_hash.shape}")
        if out_zero.shape != (n,) or out_zero.dtype != np.bool_:
            raise ValueError(f"out[1] must be bool[{n}], got {out_zero.dtype}{out_zero.shape}")
    if n == 0:
        return lambda: (out_hash, out_zero)
    nthreads = resolve_threads(threads)
    # a few chunks per thread balances load without per-page scheduling overhead
    nchunks = 1 if nthreads == 1 or n < 2 else min(n, nthreads * 4)
    fn = _native.kernel()
    if fn is not None:
        if out_hash.flags.c_contiguous and out_zero.flags.c_contiguous:
            wait = _hash_native(fn, words, key, out_hash, out_zero, nthreads, nchunks)
            return lambda: (wait(), (out_hash, out_zero))[1]
        # the kernel writes through plain pointers: hash into contiguous arrays, then copy
        h, z = np.empty(n, np.uint64), np.empty(n, np.bool_)
        _hash_native(fn, words, key, h, z, nthreads, nchunks)()
        out_hash[:], out_zero[:] = h, z
        return lambda: (out_hash, out_zero)
    from pagecore.pages import _pcx64

    if nchunks == 1:
        _pcx64._hash_serial(words, key.words, key.k0, key.k1, out_hash, out_zero)
    else:
        _pcx64._hash_parallel(words, key.words, key.k0, key.k1, out_hash, out_zero, nchunks)
    return lambda: (out_hash, out_zero)


#: Pages read per ``pread`` by :func:`hash_file_start` (4 MiB). Measured on a cached 4 GiB raw
#: file, 2 threads, :func:`.ingest.hashed_chunks` with its 64 MiB chunks (session 23, 5 rounds,
#: median): 1 MiB blocks 0.190 s, 2 MiB 0.158, 4 MiB 0.157, 8 MiB 0.161, 16 MiB 0.273 (a chunk's
#: 4 blocks no longer share out evenly over the threads, and a block no longer stays in cache).
FILE_BLOCK_PAGES = 1024

_file_buffers = threading.local()


def _file_scratch() -> np.ndarray:
    """This thread's 16-word scratch for the native kernel (kept for the next call)."""
    st = getattr(_file_buffers, "scratch", None)
    if st is None:
        st = _file_buffers.scratch = np.empty(2 * LANES, np.uint64)
    return st


def _file_buffer(nbytes: int) -> np.ndarray:
    """This thread's page-aligned read buffer of at least ``nbytes`` (kept for the next call)."""
    buf = getattr(_file_buffers, "buf", None)
    if buf is None or buf.shape[0] < nbytes:
        raw = np.empty(nbytes + PAGE_SIZE, np.uint8)
        off = (-raw.ctypes.data) % PAGE_SIZE
        buf = _file_buffers.buf = raw[off : off + nbytes]
    return buf


def _check_outputs(out_hash: np.ndarray, out_zero: np.ndarray, n: int, names: tuple[str, str]) -> None:
    """Raise ValueError unless the outputs are a writable contiguous uint64[n] and bool[n] (the
    native kernel writes through their addresses)."""
    for a, dtype, name in ((out_hash, np.uint64, names[0]), (out_zero, np.bool_, names[1])):
        if a.shape != (n,) or a.dtype != dtype or not a.flags.c_contiguous or not a.flags.writeable:
            raise ValueError(f"{name} must be a writable contiguous {np.dtype(dtype)}[{n}], got {a.dtype}{a.shape}")


def can_hash_files() -> bool:
    """Whether :func:`hash_file_start` can run here (it needs the native kernel and ``os.preadv``)."""
    return hasattr(os, "preadv") and _native.kernel() is not None


def hash_file_start(
    fd: int,
    offset: int,
    n: int,
    key: PageKey | None = None,
    threads: int | None = 1,
    out: tuple[np.ndarray, np.ndarray] | None = None,
):
    """Start hashing the ``n`` pages stored one after another in the open file ``fd`` from byte
    ``offset``, as :func:`hash_pages` hashes them in memory; return a function that waits for the
    result ``(hashes, zero)``.

    Each hashing thread reads a block of :data:`FILE_BLOCK_PAGES` pages with ``pread`` into a
    buffer of its own and hashes it there, in cache, instead of reading every page through a
    4 KiB mapping of the file (a ``MADV_POPULATE_READ`` entry, its release and a TLB miss per
    page). Measured on a cached 16 GiB raw dump, :func:`.ingest.hashed_chunks` on 2 threads
    (issue 18, session 23): 0.58-0.59 s this way against 0.67-0.70 s mapped (``cat``: 0.64-0.69
    s); on a 4 GiB one whose page cache lay otherwise, 0.15-0.18 s against 0.19-0.20 s.
    A block that comes back short (the file shrank) raises ``EOFError``
    from the returned function; the caller says which file. Needs the native kernel
    (:func:`can_hash_files`).
    """
    fn = _native.kernel()
    if fn is None or not hasattr(os, "preadv"):
        raise RuntimeError("hash_file_start needs the native page-hash kernel and os.preadv (see can_hash_files)")
    if n < 0 or offset < 0:
        raise ValueError(f"n and offset must be >= 0, got {n} and {offset}")
    key = key or _DEFAULT_KEY
    if out is None:
        out_hash, out_zero = np.empty(n, np.uint64), np.empty(n, np.bool_)
    else:
        out_hash, out_zero = out
        _check_outputs(out_hash, out_zero, n, ("out[0]", "out[1]"))
    if n == 0:
        return lambda: (out_hash, out_zero)
    kp, k0, k1 = key.words.ctypes.data, int(key.k0), int(key.k1)
    hbase, zbase = out_hash.ctypes.data, out_zero.ctypes.data
    block = FILE_BLOCK_PAGES
    keep = (key.words, out_hash, out_zero)  # alive while any block runs

    def run(b: int, keep=keep) -> None:
        buf = _file_buffer(block * PAGE_SIZE)
        lo = b * block
        k = min(n, lo + block) - lo
        want, got = k * PAGE_SIZE, 0
        view = memoryview(buf)
        while got < want:  # pread may return less than asked without being at the end
            r = os.preadv(fd, [view[got:want]], offset + lo * PAGE_SIZE + got)
            if r == 0:
                raise EOFError(f"{want - got:,} bytes missing at byte {offset + lo * PAGE_SIZE + got:,}")
            got += r
        fn(buf.ctypes.data, k, kp, k0, k1, hbase + 8 * lo, zbase + lo, _file_scratch().ctypes.data)

    wait = _start_pieces(run, -(-n // block), resolve_threads(threads), lazy=True)
    return lambda: (wait(), (out_hash, out_zero))[1]


def rows_hasher(
    pages: np.ndarray,
    key: PageKey | None,
    out_hash: np.ndarray,
    out_zero: np.ndarray,
    known_zero: np.ndarray | None = None,
    elsewhere: tuple[np.ndarray, np.ndarray] | None = None,
):
    """Return ``hash_rows(lo, hi)``, which hashes ``pages[lo:hi]`` into ``out_hash[lo:hi]`` and
    ``out_zero[lo:hi]`` on the calling thread, as :func:`hash_pages` would.

    ``known_zero`` (``bool[n]``, optional): rows the caller guarantees are all zero by the time
    they are hashed (a kdump reader fills the rows of its shared zero page with zeros instead of
    reading them): they get the key's hash of a zero page and ``out_zero`` True without being
    read (a third of a guest's pages, often more). A row wrongly marked gets a wrong hash.

    ``elsewhere`` (``(src, src_off)``, optional; ``src`` ``uint8[:]``, ``src_off`` ``int64[n]``):
    rows with ``src_off[i] >= 0`` are hashed from the page at byte ``src_off[i]`` of ``src``, not
    from ``pages[i]`` (a kdump reader's raw pages, hashed where the file holds them instead of
    after a copy). ``known_zero`` wins over it.

    For callers that hash a buffer range by range as it fills (:func:`.ingest.hashed_chunks`
    hashes each range of a kdump chunk right after it is decoded, while it is in cache): the
    shapes are checked once here, not per range. Ranges may be hashed concurrently from several
    threads (the native kernel releases the GIL) and again (the result is overwritten).
    ``pages``, ``out_hash`` and ``out_zero`` must stay alive while ``hash_rows`` is used; it
    refers to all three.
    """
    words = as_page_words(pages)
    key = key or _DEFAULT_KEY
    n = words.shape[0]
    _check_outputs(out_hash, out_zero, n, ("out_hash", "out_zero"))
    if known_zero is not None:
        if known_zero.shape != (n,) or known_zero.dtype != np.bool_ or not known_zero.flags.c_contiguous:
            raise ValueError(f"known_zero must be a contiguous bool[{n}], got {known_zero.dtype}{known_zero.shape}")
    if elsewhere is not None:
        src, src_off = elsewhere
        if src_off.shape != (n,) or src_off.dtype != np.int64 or not src_off.flags.c_contiguous:
            raise ValueError(f"elsewhere offsets must be a contiguous int64[{n}], got {src_off.dtype}{src_off.shape}")
        if src.ndim != 1 or src.dtype != np.uint8:
            raise ValueError(f"elsewhere source must be uint8[:], got {src.dtype}{src.shape}")
        outside = (src_off >= 0) & (src_off > src.shape[0] - PAGE_SIZE)
        if outside.any():
            raise IndexError(f"row {int(np.flatnonzero(outside)[0])}: a page outside the source")
        if (src_off >= 0).any():
            if known_zero is None:
                known_zero = np.zeros(n, np.bool_)
            return _rows_hasher_known_zero(words, key, out_hash, out_zero, known_zero, (src, src_off))
    if known_zero is not None and known_zero.any():
        return _rows_hasher_known_zero(words, key, out_hash, out_zero, known_zero)
    fn = _native.kernel()
    if fn is None:
        from pagecore.pages import _pcx64

        def hash_rows(lo: int, hi: int) -> None:
            _pcx64._hash_serial(words[lo:hi], key.words, key.k0, key.k1, out_hash[lo:hi], out_zero[lo:hi])

        return hash_rows
    kp, k0, k1 = key.words.ctypes.data, int(key.k0), int(key.k1)
    base, hbase, zbase = words.ctypes.data, out_hash.ctypes.data, out_zero.ctypes.data
    keep = (words, key.words, out_hash, out_zero)  # alive while hash_rows is

    def hash_rows(lo: int, hi: int, keep=keep) -> None:
        if not 0 <= lo <= hi <= n:
            raise IndexError(f"rows {lo}..{hi} outside 0..{n}")
        scratch = np.empty(2 * LANES, np.uint64)
        fn(base + lo * PAGE_SIZE, hi - lo, kp, k0, k1, hbase + 8 * lo, zbase + lo, scratch.ctypes.data)

    return hash_rows


_ZERO_HASHES: dict = {}


def _zero_page_hash(key: PageKey) -> np.uint64:
    """The key's hash of an all-zero page (computed once per key: a kdump reader asks for it twice per
    chunk)."""
    ident = (key.words.tobytes(), int(key.k0), int(key.k1))
    h = _ZERO_HASHES.get(ident)
    if h is None:
        if len(_ZERO_HASHES) > 16:  # a process that uses many keys: stay small
            _ZERO_HASHES.clear()
        h = _ZERO_HASHES[ident] = hash_pages(np.zeros((1, WORDS), np.uint64), key)[0][0]
    return h


def _rows_hasher_known_zero(words, key: PageKey, out_hash, out_zero, known_zero, elsewhere=None):
    """:func:`rows_hasher` with rows known to be zero (and rows held elsewhere): one jitted call per
    range (Numba is loaded anyway by the readers that know such rows: kdump's decoders)."""
    from pagecore.pages import _pcx64

    n = words.shape[0]
    zero_hash = _zero_page_hash(key)
    kw, k0, k1 = key.words, key.k0, key.k1
    if elsewhere is not None:
        src, src_off = elsewhere
        fe = _pcx64._hash_rows_elsewhere

        def hash_rows(lo: int, hi: int) -> None:
            if not 0 <= lo <= hi <= n:
                raise IndexError(f"rows {lo}..{hi} outside 0..{n}")
            fe(words, lo, hi, known_zero, src, src_off, kw, k0, k1, zero_hash, out_hash, out_zero)

        return hash_rows
    fn = _pcx64._hash_rows_known_zero

    def hash_rows(lo: int, hi: int) -> None:
        if not 0 <= lo <= hi <= n:
            raise IndexError(f"rows {lo}..{hi} outside 0..{n}")
        fn(words, lo, hi, known_zero, kw, k0, k1, zero_hash, out_hash, out_zero)

    return hash_rows


_pools: dict = {}
_pools_lock = threading.Lock()


def _forget_pools_in_child() -> None:
    """A forked child has none of the parent's threads: its pools would take work and never
    run it (the child hung). Start afresh there."""
    global _pools_lock
    _pools.clear()
    _pools_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools_in_child)


def _pool(nthreads: int):
    """The hashing threads (a ThreadPoolExecutor per thread count, made on first use)."""
    from concurrent.futures import ThreadPoolExecutor  # not at the top: it imports logging (start-up)

    with _pools_lock:
        pool = _pools.get(nthreads)
        if pool is None:
            pool = _pools[nthreads] = ThreadPoolExecutor(nthreads, thread_name_prefix="pagecore-hash")
        return pool


def _hash_native(fn, words, key, out_hash, out_zero, nthreads, nchunks):
    """Start the native kernel on ``nchunks`` slices, on ``nthreads`` threads (ctypes drops the
    GIL); return a function that waits for them (and keeps the arrays alive until then)."""
    n = words.shape[0]
    kp, k0, k1 = key.words.ctypes.data, int(key.k0), int(key.k1)
    base, hbase, zbase = words.ctypes.data, out_hash.ctypes.data, out_zero.ctypes.data
    scratch = np.empty((nchunks, 2 * LANES), np.uint64)
    sbase = scratch.ctypes.data
    keep = (words, key.words, out_hash, out_zero, scratch)  # alive while any slice runs

    def run(c: int, keep=keep) -> None:
        lo, hi = c * n // nchunks, (c + 1) * n // nchunks
        fn(base + lo * PAGE_SIZE, hi - lo, kp, k0, k1, hbase + 8 * lo, zbase + lo, sbase + c * 16 * 8)

    return _start_pieces(run, nchunks, nthreads)


def _start_pieces(run, npieces: int, nthreads: int, lazy: bool = False):
    """Run ``run(i)`` for every piece ``i < npieces`` on up to ``nthreads`` hashing threads; return
    a function that waits for them and raises what a piece raised.

    One task per thread, each taking the next piece (``itertools.count`` hands each out once,
    atomic under the GIL), instead of a future per piece: a chunk's 8 futures and their wake-ups
    cost a chunked read ~4 % of the hash's CPU (issue 18). With one thread (or one piece) the
    pieces run on the calling thread: at once, or, when ``lazy``, in the returned function, so
    that an error comes from there either way.
    """
    nthreads = min(nthreads, npieces)
    if nthreads <= 1:

        def serial() -> None:
            for i in range(npieces):
                run(i)

        if lazy:
            return serial
        serial()
        return lambda: None
    take = itertools.count().__next__

    def pieces() -> None:
        while (i := take()) < npieces:
            run(i)

    futures = [_pool(nthreads).submit(pieces) for _ in range(nthreads)]

    def wait() -> None:
        for f in futures:
            f.result()

    return wait
