"""Versioned rule sets: every save is a new version; the highest version is in force."""

from __future__ import annotations

import sqlalchemy as sa

from vigil._errors import SchemaError
from vigil.store._base import StoreBase
from vigil.store._records import RuleSet
from vigil.store._tables import rules
from vigil.store._validate import text


class RulesMixin(StoreBase):
    """Versioned rule sets."""

    def save_rules(self, rules_text: str, by: str) -> int:
        """Save ``rules_text`` as the new version in force, ``by`` whom; return its version.

        The store keeps the text as given; the rules package parses it (check it before
        saving). To roll back, save an older version's text again.
        """
        if not isinstance(rules_text, str):
            raise SchemaError(f"rules must be text, not {type(rules_text).__name__}")
        by = text(by, "who saves the rules (by)")
        with self._write("rules") as conn:
            version = (conn.execute(sa.select(sa.func.max(rules.c.version))).scalar() or 0) + 1
            conn.execute(rules.insert().values(version=version, text=rules_text,
                                               created_at=self._now(), created_by=by))
        return version

    def current_rules(self) -> tuple[int, str] | None:
        """``(version, text)`` of the rules in force, or None if none were ever saved."""
        with self._read() as conn:
            row = conn.execute(sa.select(rules.c.version, rules.c.text)
                               .order_by(rules.c.version.desc()).limit(1)).first()
        return (row[0], row[1]) if row is not None else None

    def rules_history(self) -> list[RuleSet]:
        """Every saved version, newest first."""
        with self._read() as conn:
            return [RuleSet(**row) for row in conn.execute(
                sa.select(rules).order_by(rules.c.version.desc())).mappings()]
