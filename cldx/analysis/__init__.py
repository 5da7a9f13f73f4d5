"""Analysis: reach, outcomes, providers, cohorts, coverage and compliance.

May import `cldx.store` and `cldx.disclosure`; every table it hands outward passes through disclosure.
"""
