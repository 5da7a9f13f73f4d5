"""Fixtures for the submission pages: a registry with one provider, and files with planted faults.

The faulty files hold one fault of each kind the pages must point at exactly (an impossible
date, an unknown code, an unknown reference, an end before a start) and one warning; the fixed
files are the same rows corrected.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine

from cldx.access.roles import PROVIDER_SUBMITTER
from cldx.identity.vault import bind_vault
from cldx.store.db import make_engine, write_transaction
from cldx.store.models import Provider
from cldx.store.registry import seed_service_lines

PROVIDER_CODE = "P0001"
PROVIDER_NAME = "Te Whare Tiaki Trust"
PERIOD = "2017-08"

CLIENTS_HEADER = "client_ref,family_name,given_names,date_of_birth,gender,primary_ethnicity,iwi_1,iwi_2,iwi_3,area,notified_of_sharing_on,identity_consent\r\n"
FAULTY_CLIENTS = CLIENTS_HEADER + (
    "C001,Smith,Jane,19/12/2008,2,11,,,,153200,2017-04-25,y\r\n"  # row 2: fine
    "C002,Ngata,Aroha,31/02/2017,2,21,,,,153200,2017-04-25,y\r\n"  # row 3: impossible date
    "C003,Brown,Sam,2009-05-06,7,11,,,,153200,2017-04-25,y\r\n"  # row 4: unknown gender code 7
    "C004,Pōkai,Mere,2010-01-02,2,21,,,,153200,,y\r\n"  # row 5: warning, not notified
)
FIXED_CLIENTS = FAULTY_CLIENTS.replace("31/02/2017", "28/02/2017").replace("2009-05-06,7,", "2009-05-06,1,")

ENGAGEMENTS_HEADER = "engagement_ref,client_ref,service_code,start_date,end_date,end_reason\r\n"
FAULTY_ENGAGEMENTS = ENGAGEMENTS_HEADER + (
    "E001,C001,SWIS,2017-04-28,2017-07-09,completed\r\n"  # row 2: fine
    "E002,C999,SWIS,2017-04-28,,\r\n"  # row 3: client C999 is unknown
    "E003,C001,SWIS,2017-08-20,2017-08-01,completed\r\n"  # row 4: ends before it starts
)
FIXED_ENGAGEMENTS = FAULTY_ENGAGEMENTS.replace("E002,C999,", "E002,C004,").replace("2017-08-20,2017-08-01", "2017-08-01,2017-08-20")

# (file, row, field, rule, severity) of every finding the faulty files give, in file and row order.
EXPECTED_FINDINGS = [
    ("clients.csv", 3, "date_of_birth", "impossible-date", "error"),
    ("clients.csv", 4, "gender", "unknown-code", "error"),
    ("clients.csv", 5, "notified_of_sharing_on", "not-notified", "warning"),
    ("engagements.csv", 3, "client_ref", "unknown-reference", "error"),
    ("engagements.csv", 4, "end_date", "date-order", "error"),
]


@dataclass(frozen=True)
class Upload:
    """Files as a test sends them: name and bytes."""

    files: tuple[tuple[str, bytes], ...]

    def multipart(self) -> list[tuple[str, tuple[str, bytes, str]]]:
        """For TestClient: `files=upload.multipart()`."""
        return [("files", (name, data, "text/csv")) for name, data in self.files]

    def playwright(self) -> list[dict[str, object]]:
        """For Playwright's `set_input_files`."""
        return [{"name": name, "mimeType": "text/csv", "buffer": data} for name, data in self.files]

    @property
    def size(self) -> int:
        return sum(len(data) for _, data in self.files)


FAULTY = Upload((("clients.csv", FAULTY_CLIENTS.encode()), ("engagements.csv", FAULTY_ENGAGEMENTS.encode())))
FIXED = Upload((("clients.csv", FIXED_CLIENTS.encode()), ("engagements.csv", FIXED_ENGAGEMENTS.encode())))


@pytest.fixture
def web_engine(web_db_url: str, vault) -> Iterator[Engine]:
    engine = make_engine(web_db_url)
    bind_vault(engine, vault)  # the same keys the app under test reads from the environment
    yield engine
    engine.dispose()


@dataclass(frozen=True)
class SeededProvider:
    code: str
    name: str


@pytest.fixture
def provider(web_engine: Engine) -> SeededProvider:
    """The brief's six service lines and one provider in the registry.

    A write transaction (SQLite's BEGIN IMMEDIATE): the app's worker may be polling the queue,
    and a transaction that reads before it writes could not wait its turn."""
    with write_transaction(web_engine) as session:
        seed_service_lines(session)
        session.add(Provider(code=PROVIDER_CODE, name=PROVIDER_NAME, region_code="09"))
    return SeededProvider(PROVIDER_CODE, PROVIDER_NAME)


@pytest.fixture
def faulty_upload() -> Upload:
    return FAULTY


@pytest.fixture
def fixed_upload() -> Upload:
    return FIXED


@pytest.fixture
def expected_findings() -> list[tuple[str, int, str, str, str]]:
    """(file, row, field, rule, severity) of every finding the faulty upload gives."""
    return list(EXPECTED_FINDINGS)


@pytest.fixture
def period() -> str:
    return PERIOD


# --- Who is signed in --------------------------------------------------------------------------


@pytest.fixture
def provider_user(provider: SeededProvider, make_user):
    """A provider-submitter of the seeded provider."""
    return make_user("tiaki.submitter", (PROVIDER_SUBMITTER, provider.code))


@pytest.fixture
def provider_client(client_for, provider_user):
    """A TestClient signed in as the seeded provider's submitter."""
    return client_for(provider_user)
