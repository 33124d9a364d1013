"""vigil: real-time fraud and identity risk.

The public surface is organised by layer; each sub-package lists its names in ``__all__``:

- :mod:`vigil.events` — payment and label schemas, validation, Parquet/CSV I/O, adapters
- :mod:`vigil.simulate` — synthetic worlds of payments and delayed labels
- :mod:`vigil.features` — declarative feature definitions and the offline (DuckDB) engine
- :mod:`vigil.models` — XGBoost training, calibration, risk scores, model bundles
- :mod:`vigil.evaluation` — prequential splits and fraud metrics
"""

from vigil._errors import (
    ConfigError,
    DataError,
    DataFileError,
    DefinitionError,
    ModelError,
    SchemaError,
    VigilError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataError",
    "DataFileError",
    "DefinitionError",
    "ModelError",
    "SchemaError",
    "VigilError",
    "__version__",
]
