"""Sharing report (JSON) for the user's own dumps."""

from pagecore._smk import job_log
from pagecore._util import write_json_atomic
from pagecore.sharing import report_page_tables

with job_log(snakemake):
    write_json_atomic(snakemake.output.report, report_page_tables(snakemake.input.pages))
