"""cldx: Client-Level Data eXchange.

Collects client-level records from the community providers a ministry funds, keeps the identifying
part apart, and turns the rest into disclosure-controlled evidence. One folder per part of
DESIGN.md; each part's docstring says what it owns and what it may import.
"""

__version__ = "0.1.0"
