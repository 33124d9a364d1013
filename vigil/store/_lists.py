"""Named lists of values (``blocked_cards``, ``suspicious_emails``, ...) that rules test with
``in @list_name``.

The rules package reads lists through a protocol of two methods, ``contains(list_name,
value)`` and ``members(list_name)``; :class:`~vigil.store.Store` has both. A list exists while
it holds a value; values are text, compared exactly (normalise e-mails before adding them).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from vigil.store._base import StoreBase
from vigil.store._records import ListItem
from vigil.store._tables import insert_or_ignore, list_items
from vigil.store._validate import list_name as check_list_name
from vigil.store._validate import text


class ListsMixin(StoreBase):
    """Named lists of values."""

    def add_list_item(self, list_name: str, value: str, source: str,
                      reason: str | None = None) -> bool:
        """Put ``value`` on the list; True if added, False if it was already there.

        ``source`` says who or what added it (``admin:alice``, ``review 12``), ``reason`` why.
        """
        item = _item(list_name, value, source, reason)
        with self._write() as conn:
            return bool(add_items(conn, [item], self._now()))

    def remove_list_item(self, list_name: str, value: str) -> bool:
        """Take ``value`` off the list; True if it was there."""
        with self._write() as conn:
            return conn.execute(list_items.delete().where(
                list_items.c.list_name == list_name, list_items.c.value == value)).rowcount > 0

    def list_items(self, list_name: str) -> list[ListItem]:
        """The list's items, oldest first."""
        with self._read() as conn:
            rows = conn.execute(sa.select(list_items).where(list_items.c.list_name == list_name)
                                .order_by(list_items.c.added_at, list_items.c.value))
            return [ListItem(**row) for row in rows.mappings()]

    def list_names(self) -> list[str]:
        """The names of the lists that hold at least one value, sorted."""
        with self._read() as conn:
            return list(conn.execute(sa.select(list_items.c.list_name).distinct()
                                     .order_by(list_items.c.list_name)).scalars())

    def contains(self, list_name: str, value: Any) -> bool:
        """Whether ``value`` is on the list (None never is; other non-text values are compared
        as their ``str``)."""
        if value is None:
            return False
        with self._read() as conn:
            return conn.execute(sa.select(sa.literal(1)).where(
                list_items.c.list_name == list_name,
                list_items.c.value == (value if isinstance(value, str) else str(value)))
            ).first() is not None

    def members(self, list_name: str) -> set[str]:
        """Every value on the list (empty for a list that does not exist)."""
        with self._read() as conn:
            return set(conn.execute(sa.select(list_items.c.value)
                                    .where(list_items.c.list_name == list_name)).scalars())


def _item(list_name: str, value: str, source: str, reason: str | None) -> dict[str, Any]:
    if reason is not None:
        text(reason, "reason")
    return {"list_name": check_list_name(list_name), "value": text(value, "a list value"),
            "source": text(source, "source"), "reason": reason}


def add_items(conn: sa.Connection, items: list[dict[str, Any]], now: datetime
              ) -> list[tuple[str, str]]:
    """Insert list items that are not there yet; return the ``(list_name, value)`` added."""
    added = []
    for item in items:
        if conn.execute(insert_or_ignore(conn, list_items).values(**item, added_at=now)
                        .returning(list_items.c.value)).first() is not None:
            added.append((item["list_name"], item["value"]))
    return added
