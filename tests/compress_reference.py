"""Slow, obviously-correct twin of the kernel-LZ4 port in pagecore.pages.compress.

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
