"""The one error the rule language raises on purpose.

:class:`RuleError` sits under :class:`~vigil._errors.DefinitionError` in vigil's exception
tree (a rule is a definition, like a feature): a caller that catches ``VigilError`` or
``DefinitionError`` catches it too.
"""

from __future__ import annotations

from vigil._errors import DefinitionError


class RuleError(DefinitionError):
    """A rule does not parse, names an unknown attribute or list, or compares what cannot be
    compared.

    ``source`` names the file (or ``"rules"``), ``line`` is the 1-based line in it and
    ``column`` the 1-based column of the problem, where known; ``reason`` is the bare
    explanation. The message holds them all:

    >>> str(RuleError("unknown attribute ':ammount:'", source="rules.txt", line=3, column=18))
    "rules.txt line 3, column 18: unknown attribute ':ammount:'"
    """

    def __init__(
        self,
        reason: str,
        *,
        source: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        where = source or ""
        if line is not None:
            where = f"{where} line {line}" if where else f"line {line}"
        if column is not None:
            where = f"{where}, column {column}" if where else f"column {column}"
        super().__init__(f"{where}: {reason}" if where else reason)
        self.reason = reason
        self.source = source
        self.line = line
        self.column = column
