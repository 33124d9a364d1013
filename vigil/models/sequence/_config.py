"""The sequence model's configuration: one dataclass, saved as JSON beside the weights.

Plain Python (no torch): the scoring path reads it to build a model's input arrays.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from vigil._errors import ModelError


@dataclass(frozen=True)
class SequenceConfig:
    """What the encoder reads and how big it is.

    An event's embedding depends on exactly the entity's last ``seq_len`` events (itself and
    up to ``seq_len - 1`` before it): each of the ``n_layers`` causal attention layers looks
    back at most ``reach(layer)`` events, and the reaches add up to ``seq_len - 1``. So the
    same embedding comes out however a history is cut into batches. With the token fields
    that look back too (gap, novelty), the service needs an entity's last ``history_rows``
    payments to embed the next one.

    >>> c = SequenceConfig()
    >>> c.seq_len, [c.reach(i) for i in range(c.n_layers)]
    (32, [16, 15])
    """

    entity: str = "card_id"          # whose history a sequence is
    seq_len: int = 32                # L: events an embedding depends on, itself included
    dim: int = 32                    # C: embedding width
    n_layers: int = 2
    n_heads: int = 2
    ffn_mult: int = 4                # feed-forward width = ffn_mult * dim
    dropout: float = 0.0
    hash_buckets: int = 1024         # per hashed id field (merchant, terminal)
    amount_bins: int = 48            # floor(4 * log1p(amount)), clipped
    gap_bins: int = 32               # floor(2 * log1p(seconds since the previous event))
    fields: tuple[str, ...] | None = None  # token fields; None: all the data offers
    mask_prob: float = 0.15          # pre-training: share of fields masked per event
    next_event: bool = True          # pre-training: also predict the next event's fields
    chunk_len: int = 128             # offline batching: positions per window, context included

    def __post_init__(self) -> None:
        problems = []
        if self.seq_len < 2:
            problems.append(f"seq_len={self.seq_len}: at least 2")
        if self.n_layers < 1 or self.n_layers > self.seq_len - 1:
            problems.append(f"n_layers={self.n_layers}: between 1 and seq_len - 1")
        if self.dim < 1 or self.n_heads < 1 or self.dim % self.n_heads:
            problems.append(f"dim={self.dim} must be a positive multiple of "
                            f"n_heads={self.n_heads}")
        if self.chunk_len < self.seq_len:
            problems.append(f"chunk_len={self.chunk_len}: at least seq_len={self.seq_len}")
        if not 0 <= self.mask_prob < 1:
            problems.append(f"mask_prob={self.mask_prob}: in [0, 1)")
        if self.hash_buckets < 1 or self.amount_bins < 1 or self.gap_bins < 1:
            problems.append("hash_buckets, amount_bins and gap_bins must be >= 1")
        if problems:
            raise ModelError("sequence config: " + "; ".join(problems))

    @property
    def context(self) -> int:
        """Earlier events an embedding can see."""
        return self.seq_len - 1

    @property
    def history_rows(self) -> int:
        """Earlier payments one embedding depends on: ``seq_len - 1`` tokens, each of whose
        gap and novelty fields read ``seq_len - 1`` payments before it."""
        return 2 * (self.seq_len - 1)

    def reach(self, layer: int) -> int:
        """How many events back layer ``layer`` attends; the reaches sum to ``seq_len - 1``."""
        base, extra = divmod(self.seq_len - 1, self.n_layers)
        return base + (1 if layer < extra else 0)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["fields"] = list(self.fields) if self.fields is not None else None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SequenceConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelError(f"sequence config: unknown key(s) {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(known))}")
        values = dict(data)
        if values.get("fields") is not None:
            values["fields"] = tuple(values["fields"])
        return cls(**values)

    def replace(self, **changes: Any) -> SequenceConfig:
        return SequenceConfig.from_dict({**self.to_dict(), **changes})
