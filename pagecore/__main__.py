"""`python -m pagecore`: the same command as `pagecore`."""

from pagecore.cli import console

console()
