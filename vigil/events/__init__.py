"""Events: typed schemas, validation with precise errors, Parquet/CSV I/O, dataset adapters."""

from vigil.events._dataset import (
    EventData,
    empty_labels,
    load_dataset,
    open_dataset,
    write_dataset,
)
from vigil.events._handbook import HANDBOOK_SCENARIOS, read_handbook
from vigil.events._io import (
    check_labels_refer,
    data_files,
    read_labels,
    read_payments,
    read_truth,
    validate_labels,
    validate_payments,
    validate_truth,
    write_payments_by_day,
)
from vigil.events._schema import (
    CHANNELS,
    LABEL_COLUMNS,
    LABEL_KINDS,
    LABEL_SCHEMA,
    PAYMENT_COLUMNS,
    PAYMENT_SCHEMA,
    TIMESTAMP,
    TRUTH_COLUMNS,
    TRUTH_SCHEMA,
)

__all__ = [
    "CHANNELS",
    "HANDBOOK_SCENARIOS",
    "LABEL_COLUMNS",
    "LABEL_KINDS",
    "LABEL_SCHEMA",
    "PAYMENT_COLUMNS",
    "PAYMENT_SCHEMA",
    "TIMESTAMP",
    "TRUTH_COLUMNS",
    "TRUTH_SCHEMA",
    "EventData",
    "check_labels_refer",
    "data_files",
    "empty_labels",
    "load_dataset",
    "open_dataset",
    "read_handbook",
    "read_labels",
    "read_payments",
    "read_truth",
    "validate_labels",
    "validate_payments",
    "validate_truth",
    "write_dataset",
    "write_payments_by_day",
]
