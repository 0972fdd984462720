"""Slow, obviously-correct twins of the kernel-LZ4 and LZO1X-1 ports in pagecore.pages.compress.

A line-by-line transliteration of ``LZ4_compress_generic`` from the kernel's lib/lz4/lz4_compress.c
(Linux 4.11+, LZ4 1.7.3) for the case zram uses on a page: ``noDict``, ``byU16`` table,
``noLimit`` output, acceleration 1. Plain Python on ``bytes``; pointers are indices into the
input (``base`` = ``source`` = 0). Names follow the C source.
"""

from __future__ import annotations

MINMATCH = 4
MFLIMIT = 12
LASTLITERALS = 5
LZ4_HASHLOG = 12  # LZ4_MEMORY_USAGE 14 - 2
LZ4_SKIPTRIGGER = 6
ML_BITS = 4
ML_MASK = (1 << ML_BITS) - 1
RUN_BITS = 8 - ML_BITS
RUN_MASK = (1 << RUN_BITS) - 1
MAX_DISTANCE = 65535
LZ4_64KLIMIT = 64 * 1024 + (MFLIMIT - 1)


def _read32(src: bytes, p: int) -> int:
    return int.from_bytes(src[p : p + 4], "little")


def _hash4(sequence: int) -> int:
    # byU16: ((sequence * 2654435761U) >> ((MINMATCH * 8) - (LZ4_HASHLOG + 1))), U32 arithmetic
    return ((sequence * 2654435761) & 0xFFFFFFFF) >> ((MINMATCH * 8) - (LZ4_HASHLOG + 1))


def _count(src: bytes, p_in: int, p_match: int, p_in_limit: int) -> int:
    """LZ4_count: how many bytes from p_in equal those from p_match, stopping at p_in_limit."""
    start = p_in
    while p_in < p_in_limit and src[p_in] == src[p_match]:
        p_in += 1
        p_match += 1
    return p_in - start


def lz4_kernel_reference(source: bytes) -> bytes:
    """``LZ4_compress_fast(source, dest, len, LZ4_compressBound(len), 1, wrkmem)`` of the kernel."""
    source = bytes(source)
    input_size = len(source)
    if input_size >= LZ4_64KLIMIT:
        raise ValueError("byU16 is only used below 64 KiB + 11")
    hash_table = [0] * (1 << (LZ4_HASHLOG + 1))  # LZ4_resetStream: the U16 view of a zeroed state
    out = bytearray()
    ip = 0
    anchor = 0
    iend = input_size
    mflimit = iend - MFLIMIT
    matchlimit = iend - LASTLITERALS

    def put_position(p):
        hash_table[_hash4(_read32(source, p))] = p & 0xFFFF  # (U16)(p - srcBase)

    def last_literals():
        last_run = iend - anchor
        if last_run >= RUN_MASK:
            accumulator = last_run - RUN_MASK
            out.append(RUN_MASK << ML_BITS)
            while accumulator >= 255:
                out.append(255)
                accumulator -= 255
            out.append(accumulator)
        else:
            out.append(last_run << ML_BITS)
        out.extend(source[anchor:iend])
        return bytes(out)

    if input_size < MFLIMIT + 1:  # LZ4_minLength
        return last_literals()

    # First Byte
    put_position(ip)
    ip += 1
    forward_h = _hash4(_read32(source, ip))

    while True:  # Main Loop
        # Find a match
        forward_ip = ip
        step = 1
        search_match_nb = 1 << LZ4_SKIPTRIGGER
        while True:
            h = forward_h
            ip = forward_ip
            forward_ip += step
            step = search_match_nb >> LZ4_SKIPTRIGGER
            search_match_nb += 1
            if forward_ip > mflimit:
                return last_literals()
            match = hash_table[h]
            forward_h = _hash4(_read32(source, forward_ip))
            hash_table[h] = ip & 0xFFFF
            if _read32(source, match) == _read32(source, ip):
                break

        # Catch up
        while ip > anchor and match > 0 and source[ip - 1] == source[match - 1]:
            ip -= 1
            match -= 1

        # Encode Literals
        lit_length = ip - anchor
        token = len(out)
        out.append(0)
        if lit_length >= RUN_MASK:
            length = lit_length - RUN_MASK
            out[token] = RUN_MASK << ML_BITS
            while length >= 255:
                out.append(255)
                length -= 255
            out.append(length)
        else:
            out[token] = lit_length << ML_BITS
        out.extend(source[anchor:ip])

        while True:  # _next_match
            # Encode Offset
            offset = ip - match
            out.append(offset & 0xFF)
            out.append(offset >> 8)
            # Encode MatchLength
            match_code = _count(source, ip + MINMATCH, match + MINMATCH, matchlimit)
            ip += MINMATCH + match_code
            if match_code >= ML_MASK:
                out[token] += ML_MASK
                match_code -= ML_MASK
                while match_code >= 255:
                    out.append(255)
                    match_code -= 255
                out.append(match_code)
            else:
                out[token] += match_code
            anchor = ip
            # Test end of chunk
            if ip > mflimit:
                return last_literals()
            # Fill table
            put_position(ip - 2)
            # Test next position
            match = hash_table[_hash4(_read32(source, ip))]
            put_position(ip)
            if match + MAX_DISTANCE >= ip and _read32(source, match) == _read32(source, ip):
                token = len(out)
                out.append(0)
                continue
            break

        # Prepare next loop
        ip += 1
        forward_h = _hash4(_read32(source, ip))


# ---------------------------------------------------------------------------------- LZO1X-1
# lib/lzo/lzo1x_compress.c and lzodefs.h (Linux 5.1+: lzo and lzo-rle), the x86-64 build
# (CONFIG_HAVE_EFFICIENT_UNALIGNED_ACCESS, LZO_USE_CTZ64, LZO_FAST_64BIT_MEMORY_ACCESS).
D_BITS = 13
D_MASK = (1 << D_BITS) - 1
M2_MAX_LEN = 8
M3_MAX_LEN = 33
M4_MAX_LEN = 9
M2_MAX_OFFSET = 0x0800
M3_MAX_OFFSET = 0x4000
M4_MAX_OFFSET_V0 = 0xBFFF
M4_MAX_OFFSET_V1 = 0xBFFE
M3_MARKER = 32
M4_MARKER = 16
MIN_ZERO_RUN_LENGTH = 4
MAX_ZERO_RUN_LENGTH = 2047 + MIN_ZERO_RUN_LENGTH
LZO_VERSION = 1


def _u64(src: bytes, p: int) -> int:
    return int.from_bytes(src[p : p + 8], "little")


def _ctz(v: int) -> int:
    return (v & -v).bit_length() - 1


def _lzo1x_1_do_compress(src: bytes, out: bytearray, ti: int, dict_: list, state: list, bitstream_version: int):
    """``lzo1x_1_do_compress`` on all of ``src`` (one block); appends to ``out``; returns the new ``*tp``."""
    in_len = len(src)
    in_end = in_len
    ip_end = in_len - 20
    ip = 0
    ii = ip
    ip += 4 - ti if ti < 4 else 0
    goto_literal = True
    while True:
        m_pos = 0
        run_length = 0
        if goto_literal:  # literal:
            ip += 1 + ((ip - ii) >> 5)
        goto_literal = True
        # next:
        if ip >= ip_end:
            break
        dv = _read32(src, ip)
        if dv == 0 and bitstream_version:
            ir = ip + 4
            limit = min(ip_end, ip + MAX_ZERO_RUN_LENGTH + 1)
            while ir + 32 <= limit:
                if _u64(src, ir) | _u64(src, ir + 8) | _u64(src, ir + 16) | _u64(src, ir + 24):
                    break
                ir += 32
            while ir + 8 <= limit:
                dv64 = _u64(src, ir)
                if dv64:
                    ir += _ctz(dv64) >> 3
                    break
                ir += 8
            while ir < limit and src[ir] == 0:
                ir += 1
            run_length = ir - ip
            if run_length > MAX_ZERO_RUN_LENGTH:
                run_length = MAX_ZERO_RUN_LENGTH
        else:
            t = (((dv * 0x1824429D) & 0xFFFFFFFF) >> (32 - D_BITS)) & D_MASK
            m_pos = dict_[t]
            dict_[t] = ip
            if dv != _read32(src, m_pos):
                continue  # goto literal
        ii -= ti
        ti = 0
        t = ip - ii
        if t != 0:
            if t <= 3:
                out[len(out) + state[0]] |= t
                out.extend(src[ii : ii + t])
            elif t <= 16:
                out.append(t - 3)
                out.extend(src[ii : ii + t])
            else:
                if t <= 18:
                    out.append(t - 3)
                else:
                    tt = t - 18
                    out.append(0)
                    while tt > 255:
                        tt -= 255
                        out.append(0)
                    out.append(tt)
                out.extend(src[ii : ii + t])
        if run_length:
            ip += run_length
            run_length -= MIN_ZERO_RUN_LENGTH
            out.extend((((run_length << 21) | 0xFFFC18 | (run_length & 0x7)) & 0xFFFFFFFF).to_bytes(4, "little"))
            state[0] = -3
            ii = ip  # finished_writing_instruction
            goto_literal = False  # goto next
            continue
        m_len = 4
        v = _u64(src, ip + m_len) ^ _u64(src, m_pos + m_len)
        done = False
        if v == 0:
            while True:
                m_len += 8
                v = _u64(src, ip + m_len) ^ _u64(src, m_pos + m_len)
                if ip + m_len >= ip_end:
                    done = True  # goto m_len_done
                    break
                if v != 0:
                    break
        if not done:
            m_len += _ctz(v) // 8
        # m_len_done:
        m_off = ip - m_pos
        ip += m_len
        if m_len <= M2_MAX_LEN and m_off <= M2_MAX_OFFSET:
            m_off -= 1
            out.append((((m_len - 1) << 5) | ((m_off & 7) << 2)) & 0xFF)
            out.append((m_off >> 3) & 0xFF)
        elif m_off <= M3_MAX_OFFSET:
            m_off -= 1
            if m_len <= M3_MAX_LEN:
                out.append(M3_MARKER | (m_len - 2))
            else:
                m_len -= M3_MAX_LEN
                out.append(M3_MARKER | 0)
                while m_len > 255:
                    m_len -= 255
                    out.append(0)
                out.append(m_len)
            out.append((m_off << 2) & 0xFF)
            out.append((m_off >> 6) & 0xFF)
        else:
            m_off -= 0x4000
            if m_len <= M4_MAX_LEN:
                out.append((M4_MARKER | ((m_off >> 11) & 8) | (m_len - 2)) & 0xFF)
            else:
                if (m_off & 0x403F) == 0x403F and 261 <= m_len <= 264 and bitstream_version:
                    ip -= m_len - 260
                    m_len = 260
                m_len -= M4_MAX_LEN
                out.append((M4_MARKER | ((m_off >> 11) & 8)) & 0xFF)
                while m_len > 255:
                    m_len -= 255
                    out.append(0)
                out.append(m_len)
            out.append((m_off << 2) & 0xFF)
            out.append((m_off >> 6) & 0xFF)
        state[0] = -2
        ii = ip  # finished_writing_instruction
        goto_literal = False  # goto next
    return in_end - (ii - ti)


def lzo1x_1_reference(source: bytes, bitstream_version: int = 0) -> bytes:
    """``lzo1x_1_compress`` (``bitstream_version`` 0) or ``lzorle1x_1_compress`` (1) of the kernel,
    for inputs of at most one block (``m4_max_offset + 1`` bytes; a page is one block)."""
    src = bytes(source)
    in_len = len(src)
    out = bytearray()
    state = [-2]  # signed char state_offset
    if bitstream_version > 0:
        out += bytes([17, bitstream_version])
        m4_max_offset = M4_MAX_OFFSET_V1
    else:
        m4_max_offset = M4_MAX_OFFSET_V0
    if in_len > m4_max_offset + 1:
        raise ValueError("the reference compresses one block only")
    data_start = len(out)
    t = 0
    l = in_len
    if l > 20:
        dict_ = [0] * (1 << D_BITS)  # memset(wrkmem, 0, D_SIZE * sizeof(lzo_dict_t))
        t = _lzo1x_1_do_compress(src, out, t, dict_, state, bitstream_version)
        l = 0
    t += l
    if t > 0:
        ii = in_len - t
        if len(out) == data_start and t <= 238:
            out.append(17 + t)
        elif t <= 3:
            out[len(out) + state[0]] |= t
        elif t <= 18:
            out.append(t - 3)
        else:
            tt = t - 18
            out.append(0)
            while tt > 255:
                tt -= 255
                out.append(0)
            out.append(tt)
        out.extend(src[ii : ii + t])
    out += bytes([M4_MARKER | 1, 0, 0])
    return bytes(out)
