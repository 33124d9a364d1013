"""Named lists that rules look values up in: ``:email: in @suspicious_emails``.

A rule only names a list; its members live elsewhere (a file, the store) and change without
recompiling the rules. Anything with ``contains`` and ``members`` can serve them:
:class:`InMemoryLists` here, the store's tables later.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from vigil._errors import DataFileError
from vigil.rules._errors import RuleError

LIST_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@runtime_checkable
class ListLookup(Protocol):
    """Where rules find the members of ``@name`` lists.

    ``contains`` serves one payment (it must be fast: the service calls it while deciding);
    ``members`` serves a backtest, which looks up a whole column at once. Both must agree:
    ``contains(name, v) == (v in members(name))``. Both raise :class:`RuleError` for a list
    they do not know.
    """

    def contains(self, list_name: str, value: Any) -> bool:
        """Whether ``value`` is on the list ``list_name``."""
        ...

    def members(self, list_name: str) -> set[Any]:
        """Every value on the list ``list_name``."""
        ...


def list_name(name: str) -> str:
    """A list's name without its ``@``, checked: letters, digits and ``_``."""
    bare = name[1:] if name.startswith("@") else name
    if not LIST_NAME.fullmatch(bare):
        raise RuleError(f"'{name}' is not a list name; use letters, digits and _, "
                        "e.g. suspicious_emails")
    return bare


class InMemoryLists:
    """Lists held in memory, for tests, backtests and a single process.

    >>> lists = InMemoryLists({"trusted_cards": ["c1", "c2"]})
    >>> lists.contains("trusted_cards", "c1"), lists.contains("trusted_cards", "c9")
    (True, False)
    >>> lists.add("trusted_cards", "c9")
    >>> sorted(lists.members("@trusted_cards"))
    ['c1', 'c2', 'c9']
    """

    def __init__(self, lists: Mapping[str, Iterable[Any]] | None = None) -> None:
        self._lists: dict[str, set[Any]] = {
            list_name(name): set(values) for name, values in (lists or {}).items()}

    @classmethod
    def from_files(cls, files: Mapping[str, str | Path]) -> InMemoryLists:
        """Read each list from a text file with one value per line (see :func:`read_list`)."""
        return cls({name: read_list(path) for name, path in files.items()})

    @property
    def names(self) -> list[str]:
        """The lists' names, sorted."""
        return sorted(self._lists)

    def _list(self, name: str) -> set[Any]:
        try:
            return self._lists[name]
        except KeyError:
            bare = name.lstrip("@")
            if bare in self._lists:
                return self._lists[bare]
            known = ", ".join(f"@{n}" for n in self.names) or "none"
            raise RuleError(f"unknown list '@{bare}' (known lists: {known})") from None

    def contains(self, list_name: str, value: Any) -> bool:
        """Whether ``value`` is on the list."""
        return value in self._list(list_name)

    def members(self, list_name: str) -> set[Any]:
        """A copy of the list's values."""
        return set(self._list(list_name))

    def add(self, name: str, *values: Any) -> None:
        """Put values on a list, creating it if needed."""
        self._lists.setdefault(list_name(name), set()).update(values)

    def discard(self, name: str, *values: Any) -> None:
        """Take values off a list (values not on it are ignored)."""
        self._list(name).difference_update(values)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lstrip("@") in self._lists

    def __repr__(self) -> str:
        sizes = ", ".join(f"@{n}: {len(self._lists[n])}" for n in self.names)
        return f"InMemoryLists({sizes})"


def read_list(path: str | Path) -> list[str]:
    """The values of a list file: one per line, surrounding spaces removed, blank lines and
    lines starting with ``#`` skipped."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataFileError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFileError(f"{p}: cannot read the list ({exc})") from exc
    values = (line.strip() for line in text.splitlines())
    return [v for v in values if v and not v.startswith("#")]
