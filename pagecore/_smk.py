"""Glue for workflow/scripts: send a job's stderr to its Snakemake log."""

from __future__ import annotations

import contextlib
import sys
import traceback


@contextlib.contextmanager
def job_log(smk):
    """Redirect stdout and stderr to ``smk.log[0]`` for the duration of a Snakemake script.

    An exception is written to the log (with its traceback, for debugging) and re-raised so
    the job fails and Snakemake points at the log.
    """
    if not smk.log:
        yield
        return
    with open(smk.log[0], "w") as fh:
        old = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = fh
        try:
            yield
        except BaseException:
            traceback.print_exc(file=fh)
            raise
        finally:
            sys.stdout, sys.stderr = old
