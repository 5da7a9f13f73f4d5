"""The `cldx` command (Typer + Rich): one module per command group. May import any part of cldx."""
