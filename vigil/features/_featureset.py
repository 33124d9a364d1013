"""A FeatureSet: a named list of feature definitions and the entity keys they group by.

A feature set is data, not code: it round-trips through JSON (which a model bundle stores)
and can be written by hand in TOML or JSON::

    name = "my_features"

    [entity_keys]
    card = "card_id"
    terminal = "terminal_id"

    [[features]]
    kind = "count"
    by = "card"
    window = "1h"
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from vigil._errors import DataFileError, DefinitionError, SchemaError
from vigil.features._definitions import (
    LABEL_OPS,
    Feature,
    Spec,
    _check_identifier,
    feature_from_dict,
)


@dataclass(frozen=True)
class FeatureSet:
    """A named, ordered list of features and the entities they aggregate by.

    ``entity_keys`` maps an entity name used in definitions (``"card"``) to the payment
    column holding its key (``"card_id"``). Feature names derive from definitions and must
    be unique within the set.

    >>> from vigil.features import Count, Sum
    >>> fs = FeatureSet("velocity", {"card": "card_id"},
    ...                 [Count(by="card", window="1h"), Sum("amount", by="card", window="24h")])
    >>> fs.names
    ['count_by_card_1h', 'amount_sum_by_card_24h']
    """

    name: str
    entity_keys: Mapping[str, str]
    features: tuple[Feature, ...] = field(default_factory=tuple)

    def __init__(self, name: str, entity_keys: Mapping[str, str],
                 features: Iterable[Feature]) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "entity_keys", dict(entity_keys))
        object.__setattr__(self, "features", tuple(features))
        self._validate()

    def _validate(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise DefinitionError("feature set: name must be a non-empty string")
        for entity, column in self.entity_keys.items():
            _check_identifier(entity, "entity", "set")
            if not isinstance(column, str) or not column:
                raise DefinitionError(f"feature set {self.name}: entity '{entity}' must map to "
                                      f"a column name, not {column!r}")
        if not self.features:
            raise DefinitionError(f"feature set {self.name}: it has no features")
        seen: dict[str, int] = {}
        for i, feature in enumerate(self.features, 1):
            if not isinstance(feature, Feature):
                raise DefinitionError(f"feature set {self.name}: item {i} is not a feature "
                                      f"definition ({feature!r})")
            feature.validate()
            feature.spec(self.entity_keys)  # checks that `by` names a known entity
            if feature.name in seen:
                raise DefinitionError(f"feature set {self.name}: features {seen[feature.name]} "
                                      f"and {i} are both named '{feature.name}'")
            seen[feature.name] = i

    @property
    def names(self) -> list[str]:
        """Feature names, in order: the columns of a feature table after ``payment_id, ts``."""
        return [f.name for f in self.features]

    def specs(self) -> list[Spec]:
        """The normal form of every feature (what executors implement)."""
        return [f.spec(self.entity_keys) for f in self.features]

    def needs_labels(self) -> bool:
        """Whether any feature reads labels (and so must respect their report times)."""
        return any(s.op in LABEL_OPS for s in self.specs())

    def input_columns(self) -> list[str]:
        """Payment columns the features read, besides ``payment_id`` and ``ts``."""
        cols: list[str] = []
        for s in _flat(self.specs()):
            for c in (s.key, s.column):
                if c and c not in cols:
                    cols.append(c)
        return cols

    def check_columns(self, schema: pa.Schema, source: str = "payments") -> None:
        """Raise :class:`~vigil.SchemaError` when a column a feature reads is missing or
        (for a value that is summed, averaged or read as a number) is not numeric."""
        for s in _flat(self.specs()):
            for col, numeric in ((s.key, False), (s.column, s.op in _NUMERIC_OPS)):
                if col is None:
                    continue
                if col not in schema.names:
                    raise SchemaError(f"feature '{s.name}' reads column '{col}', which the data "
                                      "does not have", source=source)
                typ = schema.field(col).type
                if numeric and not (pa.types.is_integer(typ) or pa.types.is_floating(typ)
                                    or pa.types.is_boolean(typ) or pa.types.is_decimal(typ)):
                    raise SchemaError(f"feature '{s.name}' needs a numeric column, but '{col}' "
                                      f"holds {typ}", source=source, column=col)

    # ----------------------------------------------------------------- serialisation

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "entity_keys": dict(self.entity_keys),
                "features": [f.to_dict() for f in self.features]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "feature set") -> FeatureSet:
        if not isinstance(data, Mapping):
            raise DefinitionError(f"{source}: expected a table with name, entity_keys and "
                                  "features")
        unknown = sorted(set(data) - {"name", "entity_keys", "features"})
        if unknown:
            raise DefinitionError(f"{source}: unknown field(s) {', '.join(unknown)}; expected "
                                  "name, entity_keys, features")
        for key in ("name", "entity_keys", "features"):
            if key not in data:
                raise DefinitionError(f"{source}: missing '{key}'")
        if not isinstance(data["entity_keys"], Mapping):
            raise DefinitionError(f"{source}: entity_keys must map entity names to columns")
        items = data["features"]
        if not isinstance(items, list):
            raise DefinitionError(f"{source}: features must be a list")
        features = [feature_from_dict(item, where=f"{source}, feature {i}")
                    for i, item in enumerate(items, 1)]
        try:
            return cls(data["name"], data["entity_keys"], features)
        except DefinitionError as exc:
            raise DefinitionError(f"{source}: {exc}") from exc

    @classmethod
    def from_file(cls, path: str | Path) -> FeatureSet:
        """Read a feature set from a ``.toml`` or ``.json`` file."""
        p = Path(path)
        if not p.is_file():
            raise DataFileError(f"{p}: no such feature set file")
        text = p.read_text(encoding="utf-8")
        try:
            if p.suffix.lower() == ".toml":
                data = tomllib.loads(text)
            elif p.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                raise DataFileError(f"{p}: feature sets are .toml or .json files")
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise DefinitionError(f"{p}: not valid {p.suffix[1:].upper()}: {exc}") from exc
        return cls.from_dict(data, source=str(p))


def _flat(specs: list[Spec]) -> list[Spec]:
    """Specs with the operands of ratios spelled out."""
    out: list[Spec] = []
    for s in specs:
        out.append(s)
        out.extend(_flat(list(s.operands)))
    return out


_NUMERIC_OPS = {"value", "sum", "mean", "min", "max", "relative"}
