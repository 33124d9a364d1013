"""Snapshots of the online feature state, so that a restart replays minutes, not months.

The online state serialises itself (JSON, perhaps compressed); the store keeps the bytes with
the last payment and label sequence numbers they include. On start the service loads the
latest snapshot and replays ``payments_since(payments_seq)`` and ``labels_since(labels_seq)``.
Without a snapshot it replays everything, which gives the same state, only slower.
"""

from __future__ import annotations

import sqlalchemy as sa

from vigil._errors import SchemaError
from vigil.store._base import StoreBase
from vigil.store._records import Snapshot
from vigil.store._tables import state_snapshots


class SnapshotsMixin(StoreBase):
    """Online state snapshots."""

    def save_snapshot(self, payload: bytes, payments_seq: int, labels_seq: int, *,
                      keep: int = 3) -> int:
        """Save a serialised state that holds every payment up to ``payments_seq`` and every
        label up to ``labels_seq``; keep only the latest ``keep`` snapshots. Returns its id.

        .. warning:: the sequence numbers must be those of the last events the state had
           applied when it was serialised; a higher number would skip events on restart.
        """
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise SchemaError(f"a snapshot payload must be bytes, not {type(payload).__name__}"
                              "; serialise the state first, e.g. json.dumps(...).encode()")
        if keep < 1:
            raise SchemaError(f"keep={keep}: keep at least the snapshot being saved (keep >= 1)")
        with self._write() as conn:
            new = conn.execute(state_snapshots.insert().values(
                taken_at=self._now(), payments_seq=int(payments_seq),
                labels_seq=int(labels_seq), payload=bytes(payload),
            ).returning(state_snapshots.c.id)).scalar_one()
            oldest_kept = conn.execute(sa.select(state_snapshots.c.id).order_by(
                state_snapshots.c.id.desc()).limit(keep)).scalars().all()[-1]
            conn.execute(state_snapshots.delete().where(state_snapshots.c.id < oldest_kept))
        return new

    def latest_snapshot(self) -> Snapshot | None:
        """The most recent snapshot, or None."""
        with self._read() as conn:
            row = conn.execute(sa.select(state_snapshots).order_by(
                state_snapshots.c.id.desc()).limit(1)).mappings().first()
        return Snapshot(**{**row, "payload": bytes(row["payload"])}) if row is not None else None
