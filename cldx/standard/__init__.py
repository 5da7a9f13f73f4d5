"""The data standard: record types, fields, code sets, templates and the standard's version.

Owns what a provider sends and how it is written down: the six record types of DESIGN.md,
the registry files, the code sets (shipped in `codesets/` with their sources) and everything
generated from them (JSON Schemas, CSV and Excel templates, docs). May import nothing else in
cldx: every other part builds on this one.
"""

from .codesets import Code, CodeSet, code_set, code_sets, load_instruments, ta_regions
from .fields import Field, FieldType, RecordType, Reference
from .records import RECORD_TYPES, STANDARD_NAME, STANDARD_VERSION, record_type_for_file
from .registry import REGISTRY_FILES, SEED_SERVICE_LINES, ServiceLine

__all__ = [
    "Code",
    "CodeSet",
    "Field",
    "FieldType",
    "RECORD_TYPES",
    "REGISTRY_FILES",
    "RecordType",
    "Reference",
    "SEED_SERVICE_LINES",
    "STANDARD_NAME",
    "STANDARD_VERSION",
    "ServiceLine",
    "code_set",
    "code_sets",
    "load_instruments",
    "record_type_for_file",
    "ta_regions",
]
