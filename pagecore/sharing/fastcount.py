"""The paper's basic counts of a hash array, from the one counting kernel of :mod:`.counts`.

:func:`count_hashes` is :func:`pagecore.sharing.count_sharing` without VMs, zero flags, salts
or verification: it returns (distinct contents, shared pages, shared contents). There is no
second kernel: the bucket-then-table counter in :mod:`.counts` serves both (issue 18), so the
speed measured by ``pagecore bench count`` is the speed of ``pagecore share``.
"""

from __future__ import annotations

import numpy as np

from pagecore.sharing.counts import T_DISTINCT, T_SHARED, T_SHARED_GROUPS, count_sharing


def count_hashes(hashes: np.ndarray) -> tuple[int, int, int]:
    """Exact (distinct contents, shared pages, shared contents) of ``hashes``.

    Parameters
    ----------
    hashes : numpy.ndarray
        ``uint64[n]``; not modified.

    Returns
    -------
    (int, int, int)
        Reclaimed pages are ``n − distinct``; shared − reclaimed is the number of shared contents.

    Notes
    -----
    Memory: the input plus 8 bytes per page of scratch (see :mod:`.counts`).
    """
    # count_sharing checks the hashes (a check of its own here took a scalar as one page and refused
    # big-endian uint64)
    c = count_sharing(hashes, None, None, ["all"], top_n=0)
    return c.t(T_DISTINCT), c.t(T_SHARED), c.t(T_SHARED_GROUPS)
