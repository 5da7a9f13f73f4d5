"""Disclosure control: suppression, rounding and k-anonymity as pure functions on tables.

May import nothing else in cldx.
"""
