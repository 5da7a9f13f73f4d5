"""Notification and consent, counted per provider: what the privacy officer checks.

Every client record says when the provider told the client that the data is shared with the
ministry (`notified_of_sharing_on`); a record without it is accepted with a `not-notified`
warning and counted here. A client who declined identification is stored without identity and
has no pseudonym.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, case, func, select

from cldx.store.models import Client, Provider


@dataclass(frozen=True)
class ProviderNotification:
    provider: str
    clients: int
    not_notified: int
    declined_identity: int

    @property
    def notified_share(self) -> float:
        return 1.0 if self.clients == 0 else (self.clients - self.not_notified) / self.clients


def notification_counts(connection: Connection) -> list[ProviderNotification]:
    """Per provider with clients: live client records, those not notified, those who declined identity."""
    query = (
        select(
            Provider.code,
            func.count(Client.id),
            func.sum(case((Client.notified_of_sharing_on.is_(None), 1), else_=0)),
            func.sum(case((Client.identity_consent.is_(False), 1), else_=0)),
        )
        .join(Client, Client.provider_id == Provider.id)
        .where(Client.withdrawn_at.is_(None))
        .group_by(Provider.code)
        .order_by(Provider.code)
    )
    return [ProviderNotification(code, n, int(missing or 0), int(declined or 0)) for code, n, missing, declined in connection.execute(query)]
