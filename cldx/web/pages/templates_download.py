"""Blank templates to download: each record type's CSV and the Excel workbook for all six.

Generated from `cldx.standard.templates` on request, with the service lines the registry
stores (the workbook's service_code drop-down), so a service line added to the registry shows
up in the next download. The workbook is deterministic, so it is cached by the service lines
it was built from.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from cldx.standard import RECORD_TYPES
from cldx.standard.templates import csv_template, workbook_bytes, workbook_file_name
from cldx.store.registry import service_lines
from cldx.web.deps import SessionDep

router = APIRouter()

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


@dataclass(frozen=True)
class TemplateLink:
    """One download the upload page lists."""

    file_name: str
    title: str
    description: str

    @property
    def path(self) -> str:
        return f"/templates/{self.file_name}"


def template_links() -> list[TemplateLink]:
    """The workbook first (what most staff want), then one CSV per record type in the standard's order."""
    links = [TemplateLink(workbook_file_name(), "Excel workbook", "All six record types, with drop-downs for every coded column and a note on every heading.")]
    links += [TemplateLink(rt.file_name, rt.title, rt.description) for rt in RECORD_TYPES.values()]
    return links


@lru_cache(maxsize=4)
def _workbook(pairs: tuple[tuple[str, str], ...]) -> bytes:
    return workbook_bytes(list(pairs))


@router.get("/templates/{file_name}", name="template_download")
def template_download(file_name: str, session: SessionDep) -> Response:
    """A blank template: `clients.csv` and the other record types' files, or the workbook."""
    disposition = {"Content-Disposition": f'attachment; filename="{file_name}"'}
    if file_name == workbook_file_name():
        # The stored service lines, or the brief's six when the registry has none yet.
        pairs = tuple((line.code, line.name) for line in service_lines(session))
        data = _workbook(pairs) if pairs else workbook_bytes()
        return Response(data, media_type=XLSX_MEDIA_TYPE, headers=disposition)
    for rt in RECORD_TYPES.values():
        if rt.file_name == file_name:
            return Response(csv_template(rt), media_type=CSV_MEDIA_TYPE, headers=disposition)
    raise HTTPException(404, detail=f"There is no template called {file_name}")
