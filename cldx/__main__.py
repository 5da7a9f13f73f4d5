"""`python -m cldx`: the `cldx` command, where the console script is not on PATH (or a fresh interpreter is wanted)."""

from cldx.cli.main import app

app(prog_name="cldx")
