"""Linkage: SLK-581 over whole columns, person pseudonyms, and how many clients link.

`slk581_column` is `cldx.identity.slk.slk581` over whole Polars columns (the bulk path has no
per-row Python for it; a test checks both agree on the shared vectors and on generated names).
The raw SLK only ever exists in memory: `with_person_keys` replaces it by the keyed pseudonym.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
from sqlalchemy import Connection, text

from .vault import Vault

SLK581_PATTERN = r"^[A-Z2]{3}(?:[A-Z2]{2}|99)[0-9]{8}[1239]$|^999(?:[A-Z2]{2}|99)[0-9]{8}[1239]$"


def fold_expr(column: str) -> pl.Expr:
    """Upper-case plain letters only (NFKD, marks dropped, non-letters removed), as `slk.fold`."""
    return (
        pl.col(column).fill_null("").str.normalize("NFKD").str.replace_all(r"\p{M}", "")
        .str.to_uppercase().str.replace_all(r"[^A-Z]", "")
    )


def _letters(folded: pl.Expr, positions: tuple[int, ...], missing: str) -> pl.Expr:
    """The letters of a folded name at `positions` (1-based), "2" past its end; `missing` when it has none."""
    padded = folded + "2" * max(positions)  # a short name's missing letters are 2s
    return pl.when(folded == "").then(pl.lit(missing)).otherwise(pl.concat_str([padded.str.slice(p - 1, 1) for p in positions]))


def slk581_column(frame: pl.DataFrame, family_name: str, given_names: str, date_of_birth: str, gender: str) -> pl.Series:
    """SLK-581 of each row of `frame`; null where the date of birth is null.

    Each name is folded once, then its letters picked: as one expression the fold ran again for
    every letter picked and every test of the name (twelve times a row), most of the ingest's time
    for linkage.
    """
    first = pl.col(gender).fill_null("").str.strip_chars().str.slice(0, 1)
    folded = frame.select(
        fold_expr(family_name).alias("family"), fold_expr(given_names).alias("given"), pl.col(date_of_birth).alias("born"),
        pl.when(first.is_in(["1", "2", "3"])).then(first).otherwise(pl.lit("9")).alias("sex"),
    )
    born = pl.col("born")
    return folded.select(pl.when(born.is_not_null()).then(pl.concat_str([
        _letters(pl.col("family"), (2, 3, 5), "999"),
        _letters(pl.col("given"), (2, 3), "99"),
        born.dt.strftime("%d%m%Y"),
        pl.col("sex"),
    ])).alias("slk581")).to_series()


def with_person_keys(clients: pl.DataFrame, vault: Vault) -> pl.DataFrame:
    """Set `person_key` on client rows and drop any SLK.

    A row from a de-identified provider brings its `slk581`; an identified row's SLK is computed
    from its names, date of birth and gender. A client who declined identification has neither
    and keeps a null pseudonym: it is linked only by the provider's reference.
    """
    slks = pl.Series("slk", [None] * clients.height, dtype=pl.String)
    if "date_of_birth" in clients.columns:
        slks = slk581_column(clients, "family_name", "given_names", "date_of_birth", "gender")
    if "slk581" in clients.columns:
        slks = clients["slk581"].fill_null(slks)
    keyed = clients.with_columns(vault.person_keys(slks).alias("person_key"))
    return keyed.drop("slk581") if "slk581" in keyed.columns else keyed


@dataclass(frozen=True)
class LinkageSummary:
    """How many people the store links, and across what."""

    clients: int  # client records (live)
    keyed: int  # of which carry a pseudonym
    persons: int  # distinct pseudonyms
    across_providers: int  # persons seen by two or more providers
    across_service_lines: int  # persons with engagements in two or more service lines
    unlinked: int  # client records without a pseudonym (identity declined)
    by_service_line_pair: list[tuple[str, str, int]]  # persons engaged in both lines


def linkage_summary(connection: Connection) -> LinkageSummary:
    """Counts only: no pseudonym, name or reference leaves this function."""
    one = lambda sql: connection.execute(text(sql)).scalar_one()  # noqa: E731
    live = "c.withdrawn_at IS NULL"
    clients = one(f"SELECT count(*) FROM client c WHERE {live}")
    keyed = one(f"SELECT count(*) FROM client c WHERE {live} AND c.person_key IS NOT NULL")
    persons = one(f"SELECT count(DISTINCT c.person_key) FROM client c WHERE {live}")
    across_providers = one(
        f"SELECT count(*) FROM (SELECT c.person_key FROM client c WHERE {live} AND c.person_key IS NOT NULL "
        "GROUP BY c.person_key HAVING count(DISTINCT c.provider_id) > 1) t"
    )
    person_lines = (
        "SELECT DISTINCT c.person_key AS person_key, e.service_code AS service_code FROM client c "
        "JOIN engagement e ON e.provider_id = c.provider_id AND e.client_ref = c.client_ref "
        f"WHERE {live} AND e.withdrawn_at IS NULL AND c.person_key IS NOT NULL"
    )
    across_lines = one(f"SELECT count(*) FROM (SELECT person_key FROM ({person_lines}) pl GROUP BY person_key HAVING count(*) > 1) t")
    pairs = connection.execute(text(
        f"SELECT a.service_code, b.service_code, count(*) FROM ({person_lines}) a JOIN ({person_lines}) b "
        "ON a.person_key = b.person_key AND a.service_code < b.service_code "
        "GROUP BY a.service_code, b.service_code ORDER BY count(*) DESC, a.service_code, b.service_code"
    )).all()
    return LinkageSummary(clients, keyed, persons, across_providers, across_lines, clients - keyed, [tuple(p) for p in pairs])
