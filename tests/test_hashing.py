"""pcx64-v1 page hash and zero flag: the Numba kernels against the slow twin."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import JIT_DISABLED, scaled
from slow_twins import is_zero, pcx64

from pagecore.pages.hashing import ALGORITHM, PageKey, as_page_words, hash_pages


def _pages(rng, n):
    return rng.integers(0, 256, size=(n, 4096), dtype=np.uint8)


def _check_against_twin(pages, secret=b""):
    key = PageKey.from_secret(secret) if secret else None
    h, z = hash_pages(pages, key)
    for i in range(pages.shape[0]):
        b = pages[i].tobytes()
        assert int(h[i]) == pcx64(b, secret), f"page {i}"
        assert bool(z[i]) == is_zero(b), f"page {i}"


def test_algorithm_name():
    assert ALGORITHM == "pcx64-v1"


@pytest.mark.parametrize("n", [1, 2, 7])
def test_random_pages_match_twin(rng, n):
    _check_against_twin(_pages(rng, n))


def test_edge_cases_match_twin(rng):
    pages = np.zeros((6, 4096), np.uint8)
    pages[1, 4095] = 1  # zero but for the last byte
    pages[2, 0] = 0x80  # zero but for the first byte
    pages[3] = 0xFF
    pages[4] = _pages(rng, 1)[0]
    pages[5] = pages[4]
    _check_against_twin(pages)
    h, z = hash_pages(pages)
    assert z.tolist() == [True, False, False, False, False, False]
    assert h[4] == h[5] and len(set(h[:5].tolist())) == 5


def test_all_identical_and_all_zero(rng):
    one = _pages(rng, 1)
    same = np.repeat(one, scaled(50, 3), axis=0)
    h, z = hash_pages(same)
    assert len(set(h.tolist())) == 1 and not z.any()
    h0, z0 = hash_pages(np.zeros((scaled(50, 3), 4096), np.uint8))
    assert len(set(h0.tolist())) == 1 and z0.all()
    assert int(h0[0]) == pcx64(bytes(4096))


def test_empty_input():
    h, z = hash_pages(np.zeros((0, 4096), np.uint8))
    assert h.shape == (0,) and h.dtype == np.uint64 and z.dtype == np.bool_


def test_keyed_hash_matches_twin_and_differs(rng):
    pages = _pages(rng, 3)
    _check_against_twin(pages, secret=b"s3cret")
    h0, _ = hash_pages(pages)
    h1, _ = hash_pages(pages, PageKey.from_secret(b"s3cret"))
    h2, _ = hash_pages(pages, PageKey.from_secret(b"other"))
    assert not np.any(h0 == h1) and not np.any(h1 == h2)


def test_key_id_is_a_fingerprint_not_the_key():
    k = PageKey.from_secret(b"hunter2")
    assert k.keyed and "hunter2" not in k.key_id and len(k.key_id) == 12
    assert PageKey.default().key_id == "none" and not PageKey.default().keyed
    assert PageKey.from_secret(b"hunter2").key_id == k.key_id


def test_key_from_env_and_file(tmp_path, monkeypatch):
    from pagecore.errors import ConfigError

    secret = "abc-a-long-enough-secret"
    monkeypatch.setenv("PC_TEST_KEY", secret)
    assert PageKey.from_env("PC_TEST_KEY").key_id == PageKey.from_secret(secret.encode()).key_id
    f = tmp_path / "key"
    f.write_text(secret + "\n")
    assert PageKey.from_file(f).key_id == PageKey.from_secret(secret.encode()).key_id
    monkeypatch.delenv("PC_TEST_KEY")
    with pytest.raises(ConfigError, match="PC_TEST_KEY"):
        PageKey.from_env("PC_TEST_KEY")
    with pytest.raises(ConfigError, match="cannot read"):
        PageKey.from_file(tmp_path / "missing")


def test_key_from_the_workflow_hashing_section(monkeypatch):
    secret = "abc-a-long-enough-secret"
    monkeypatch.setenv("PC_TEST_KEY", secret)
    assert PageKey.from_config({"key_env": "PC_TEST_KEY"}).key_id == PageKey.from_secret(secret.encode()).key_id
    assert PageKey.from_config({"key_env": None}).key_id == "none"
    assert PageKey.from_config({}) is PageKey.default()


def test_every_bit_position_changes_the_hash(rng):
    base = _pages(rng, 1)
    positions = range(0, 4096 * 8, 61 if not JIT_DISABLED else 997)
    variants = np.repeat(base, len(positions), axis=0)
    for row, bit in enumerate(positions):
        variants[row, bit // 8] ^= 1 << (bit % 8)
    h, _ = hash_pages(np.vstack([base, variants]))
    assert len(set(h.tolist())) == len(positions) + 1


def test_word_swaps_within_a_lane_change_the_hash(rng):
    # the lane sums B_l are order-blind; the per-word key must make A_l order-sensitive
    base = _pages(rng, 1).view(np.uint64).copy()
    swapped = base.copy()
    swapped[0, 3], swapped[0, 40] = base[0, 40], base[0, 3]
    h, _ = hash_pages(np.vstack([base, swapped]))
    assert h[0] != h[1]


@pytest.mark.skipif(JIT_DISABLED, reason="thread count has no meaning without the JIT")
def test_thread_count_does_not_change_results(rng):
    pages = _pages(rng, 257)
    h1, z1 = hash_pages(pages, threads=1)
    h2, z2 = hash_pages(pages, threads=2)
    h0, z0 = hash_pages(pages, threads=None)
    assert np.array_equal(h1, h2) and np.array_equal(h1, h0)
    assert np.array_equal(z1, z2) and np.array_equal(z1, z0)


def test_uint8_and_uint64_views_agree_and_readonly_ok(rng):
    pages = _pages(rng, 4)
    pages.setflags(write=False)
    h8, _ = hash_pages(pages)
    h64, _ = hash_pages(pages.view(np.uint64))
    assert np.array_equal(h8, h64)


def test_non_contiguous_input_is_copied(rng):
    pages = _pages(rng, 6)
    h_all, _ = hash_pages(pages)
    h_odd, _ = hash_pages(pages[::2])
    assert np.array_equal(h_all[::2], h_odd)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((3, 4095), np.uint8),
        np.zeros(4096, np.uint8),
        np.zeros((2, 4096), np.int16),
        np.zeros((2, 512), np.float64),
    ],
    ids=["short-rows", "1-d", "int16", "float64"],
)
def test_bad_shapes_and_dtypes_raise(bad):
    with pytest.raises(ValueError, match="pages must be"):
        hash_pages(bad)


def test_not_an_array():
    with pytest.raises(TypeError):
        as_page_words([[0] * 4096])


def test_out_buffers_are_used_and_checked(rng):
    pages = _pages(rng, 3)
    out = (np.empty(3, np.uint64), np.empty(3, np.bool_))
    h, z = hash_pages(pages, out=out)
    assert h is out[0] and z is out[1]
    with pytest.raises(ValueError, match="out\\[0\\]"):
        hash_pages(pages, out=(np.empty(2, np.uint64), np.empty(3, np.bool_)))


@pytest.mark.skipif(JIT_DISABLED, reason="already running without the JIT")
def test_kernels_without_jit():
    """Run every kernel test again with NUMBA_DISABLE_JIT=1 so the Python bodies are exercised."""
    here = Path(__file__).parent
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    files = ["test_hashing.py", "test_sharing.py", "test_synth.py"]
    proc = subprocess.run(
        # Without the JIT the kernels run on NumPy scalars, which warn when uint64 arithmetic
        # wraps; wrapping modulo 2**64 is what the hash specifies, so that warning is ignored.
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-x",
            "-p",
            "no:cacheprovider",
            "-W",
            "ignore:overflow encountered:RuntimeWarning",
            *files,
        ],
        cwd=here,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout


def test_kernel_module_shares_the_algorithm_shape():
    from pagecore.pages import _pcx64, hashing

    assert (_pcx64.WORDS, _pcx64.LANES, _pcx64.LANE_WORDS) == (hashing.WORDS, hashing.LANES, hashing.LANE_WORDS)


def _native_or_skip():
    from pagecore.pages import _native

    if JIT_DISABLED:
        pytest.skip("NUMBA_DISABLE_JIT=1: the native kernel is off by design")
    fn = _native.kernel()
    if fn is None:
        pytest.fail(f"the native hash kernel should load here: {_native.status()}")
    return fn


def _jitted(pages, key, nchunks):
    """The Numba-dispatched kernels, called directly (what hash_pages falls back to)."""
    from pagecore.pages import _pcx64

    words = as_page_words(pages)
    h, z = np.empty(len(words), np.uint64), np.empty(len(words), np.bool_)
    if nchunks == 1:
        _pcx64._hash_serial(words, key.words, key.k0, key.k1, h, z)
    else:
        _pcx64._hash_parallel(words, key.words, key.k0, key.k1, h, z, nchunks)
    return h, z


@pytest.mark.parametrize("secret", [b"", b"k3y"])
@pytest.mark.parametrize("threads", [1, 2])
def test_native_kernel_matches_jitted_kernels_and_twin(rng, secret, threads):
    """The machine code hash_pages runs (Numba's cfunc of hash_into, loaded by llvmlite) against
    the jitted kernels and the slow twin: random pages, zero pages, a page zero but for one byte."""
    _native_or_skip()
    key = PageKey.from_secret(secret) if secret else PageKey.default()
    pages = _pages(rng, 37)
    pages[3] = 0
    pages[4] = 0
    pages[4, 2048] = 1
    pages[5] = pages[6]
    h, z = hash_pages(pages, key, threads=threads)
    hj, zj = _jitted(pages, key, 1 if threads == 1 else 8)
    assert np.array_equal(h, hj) and np.array_equal(z, zj)
    for i in (0, 3, 4, 5, 36):
        assert int(h[i]) == pcx64(pages[i].tobytes(), secret) and bool(z[i]) == is_zero(pages[i].tobytes())


def test_native_kernel_writes_strided_outputs_and_slices(rng):
    _native_or_skip()
    pages = _pages(rng, 9)
    h0, z0 = hash_pages(pages)
    out_h = np.zeros((9, 2), np.uint64)
    out_z = np.zeros((9, 2), np.bool_)
    h, z = hash_pages(pages, out=(out_h[:, 1], out_z[:, 1]), threads=2)  # non-contiguous outputs
    assert np.array_equal(out_h[:, 1], h0) and np.array_equal(out_z[:, 1], z0) and not out_h[:, 0].any()
    assert np.array_equal(h, h0) and np.array_equal(z, z0)
    h2, _ = hash_pages(pages[3:7], threads=2)  # a view that starts mid-array
    assert np.array_equal(h2, h0[3:7])


def test_native_cache_is_built_once_then_loaded_without_numba(tmp_path):
    """A fresh cache directory: the first process builds the machine code with Numba, the second
    loads it and hashes without ever importing Numba; both agree with the twin."""
    if JIT_DISABLED:
        pytest.skip("NUMBA_DISABLE_JIT=1: the native kernel is off by design")
    code = (
        "import sys, numpy as np\n"
        "from pagecore.pages import _native\n"
        "from pagecore.pages.hashing import hash_pages\n"
        "p = np.arange(3 * 4096, dtype=np.uint8).reshape(3, 4096)\n"
        "h, z = hash_pages(p, threads=2)\n"
        "print(_native.status()); print('numba' in sys.modules); print(' '.join(map(str, h.tolist())))\n"
        "print('llvmlite' in sys.modules)\n"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    outs = [
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    ]
    first, second = (o.splitlines() for o in outs)
    assert first[0].startswith("native machine code built with Numba"), first
    assert second[0].startswith("native machine code loaded from"), second
    assert second[1] == "False", "loading the cached kernel imported Numba"
    if shutil.which("ld") and os.path.exists("/proc/cpuinfo"):  # a shared library: not even llvmlite
        assert second[0].endswith(".so") and second[3] == "False", second
    p = np.arange(3 * 4096, dtype=np.uint8).reshape(3, 4096)
    expected = " ".join(str(pcx64(p[i].tobytes())) for i in range(3))
    assert first[2] == second[2] == expected
    assert len(list((tmp_path / "pagecore").glob("pcx64-native-*.bin"))) == 1


def test_native_kernel_can_be_switched_off():
    env = {**os.environ, "PAGECORE_NATIVE_HASH": "0"}
    code = (
        "import numpy as np\nfrom pagecore.pages import _native\nfrom pagecore.pages.hashing import hash_pages\n"
        "hash_pages(np.zeros((2, 4096), np.uint8)); print(_native.status())"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.startswith("disabled"), out


def test_pagecore_hash_of_a_raw_dump_does_not_import_numba(tmp_path):
    """Start-up is the fixed cost of every `pagecore hash` (issue 18): a raw dump is detected,
    read, hashed and written without importing Numba (once the native kernel is cached)."""
    if JIT_DISABLED:
        pytest.skip("NUMBA_DISABLE_JIT=1: the native kernel is off by design")
    _native_or_skip()  # builds the cache in this process if needed
    dump = tmp_path / "g.raw"
    dump.write_bytes(bytes(4096) + bytes(range(256)) * 16)
    code = (
        "import sys\nfrom pagecore.cli import main\n"
        f"rc = main(['hash', {str(dump)!r}, '-o', {str(tmp_path / 'g.parquet')!r}, '--quiet'])\n"
        "print(rc, sorted(m for m in sys.modules if m in ('numba', 'pandas', 'llvmlite')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    linked = shutil.which("ld") and os.path.exists("/proc/cpuinfo")  # else llvmlite loads the kernel
    assert out.strip() in (("0 []",) if linked else ("0 []", "0 ['llvmlite']")), out


def _hash_in_child(pages):
    h, z = hash_pages(pages, threads=2)
    return h.tolist(), z.tolist()


def test_hashing_threads_work_in_a_forked_child():
    """The kept hashing threads are not inherited by a forked child (it once waited forever for
    threads that exist only in the parent)."""
    import multiprocessing as mp

    pages = np.random.default_rng(8).integers(0, 256, (64, 4096), dtype=np.uint8)
    pages[5] = 0
    h, z = hash_pages(pages, threads=2)  # the parent's pool now exists
    want = (h.tolist(), z.tolist())
    assert want == tuple(x.tolist() for x in hash_pages(pages, threads=1))
    with mp.get_context("fork").Pool(1) as pool:
        got = pool.apply_async(_hash_in_child, (pages,)).get(timeout=120)
    assert got == want
