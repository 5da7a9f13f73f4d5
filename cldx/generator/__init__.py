"""Realistic roll-out data: provider files, registry and submission history, reproducible from a seed.

Writes the layout of DESIGN.md (`DIR/registry/`, `DIR/<provider_code>/` with the six record
files) plus the generator's own ground truth beside them (`faults.csv`, `provider_effects.csv`)
so tests can check that validation finds every planted fault and comparisons find the
providers made better or worse. May import `cldx.standard` only.
"""
