"""What a rule can read: payment fields, features and the model's score, with their types."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from vigil.events import OUTCOME_COLUMNS, PAYMENT_SCHEMA
from vigil.rules._nodes import BOOL, NUMBER, STRING

if TYPE_CHECKING:
    from vigil.features import FeatureSet

SCORE_ATTRIBUTES = {"risk_score": NUMBER, "risk_level": STRING}
"""What the model adds to every payment: the 0–100 score and its level."""


def arrow_type(data_type: pa.DataType) -> str | None:
    """The rule type of an Arrow type: ``number``, ``string``, ``bool``, or ``None`` for types
    rules cannot compare (timestamps, lists, ...)."""
    if pa.types.is_boolean(data_type):
        return BOOL
    if pa.types.is_integer(data_type) or pa.types.is_floating(data_type) or pa.types.is_decimal(
            data_type):
        return NUMBER
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type) or (
            pa.types.is_dictionary(data_type) and pa.types.is_string(data_type.value_type)):
        return STRING
    return None


def schema_attributes(schema: pa.Schema) -> dict[str, str]:
    """The attribute types of a table's columns; columns of other types are left out.

    >>> schema_attributes(pa.schema([("amount", pa.float64()), ("ts", pa.timestamp("us")),
    ...                              ("card_id", pa.string()), ("is_3ds", pa.bool_())]))
    {'amount': 'number', 'card_id': 'string', 'is_3ds': 'bool'}
    """
    types = ((f.name, arrow_type(f.type)) for f in schema)
    return {name: kind for name, kind in types if kind is not None}


def payment_attributes(feature_set: FeatureSet | None = None) -> dict[str, str]:
    """Every attribute a rule may read for a payment scored with this feature set.

    Payment fields with their types (``ts`` is left out: rules compare numbers, strings and
    booleans; use a feature such as ``is_night`` for time; so is ``status``, the issuer's
    answer, which comes only after the decision), every feature as a number, and
    ``risk_score`` (number) and ``risk_level`` (string).

    >>> from vigil.features import handbook_baseline
    >>> attrs = payment_attributes(handbook_baseline())
    >>> attrs["card_country"], attrs["amount"], attrs["count_by_card_1d"], attrs["risk_level"]
    ('string', 'number', 'number', 'string')
    """
    attributes = {name: kind for name, kind in schema_attributes(PAYMENT_SCHEMA).items()
                  if name not in OUTCOME_COLUMNS}
    if feature_set is not None:
        attributes.update(dict.fromkeys(feature_set.names, NUMBER))
    attributes.update(SCORE_ATTRIBUTES)
    return attributes
