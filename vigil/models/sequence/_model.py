"""The sequence encoder: a small causal transformer over an entity's payments.

Each payment is a token (see ``_tokens.py``): the sum of one embedding per categorical field
and a projection of the two numbers. Pre-LayerNorm transformer blocks follow, each attending
only to the event itself and to strictly earlier events at most ``reach`` positions back, with
a learned bias per distance (no absolute positions: an event's embedding must not depend on
where a batch window happens to start). The output at each position is that payment's
embedding.

Shapes: B windows, T positions, F categorical fields, C = ``config.dim``, H heads,
D = C / H.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from vigil.models.sequence._config import SequenceConfig
from vigil.models.sequence._tokens import NUMERIC, cardinalities, field_values, resolved_fields

# next-event prediction covers the small fields only: a 1,000-way softmax per position for
# hashed ids would cost more than the encoder itself
NEXT_EVENT_MAX_VALUES = 64


class CausalSelfAttention(nn.Module):
    def __init__(self, config: SequenceConfig, reach: int) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.reach = reach
        self.qkv = nn.Linear(config.dim, 3 * config.dim)
        self.proj = nn.Linear(config.dim, config.dim)
        self.distance_bias = nn.Embedding(reach + 1, config.n_heads)  # distance 0..reach
        self.dropout_p = config.dropout

    def forward(self, x: torch.Tensor, earlier: torch.Tensor,
                distance: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        H = self.n_heads
        q, k, v = self.qkv(x).split(C, dim=2)
        q = q.view(B, T, H, C // H).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, H, C // H).transpose(1, 2)  # (B, H, T, D)
        v = v.view(B, T, H, C // H).transpose(1, 2)  # (B, H, T, D)
        bias = self.distance_bias(distance.clamp(0, self.reach)).permute(2, 0, 1)  # (H, T, T)
        # query i sees key j if j is i, or strictly earlier in time and within reach
        allowed = (earlier & (distance <= self.reach)) | (distance == 0)  # (B, T, T)
        bias = bias[None].masked_fill(~allowed[:, None], float("-inf"))  # (B, H, T, T)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype),
                                           dropout_p=self.dropout_p if self.training else 0.0)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C)
        return self.proj(y)


class Block(nn.Module):
    def __init__(self, config: SequenceConfig, reach: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.dim)
        self.attn = CausalSelfAttention(config, reach)
        self.ln_2 = nn.LayerNorm(config.dim)
        self.mlp = nn.Sequential(
            nn.Linear(config.dim, config.ffn_mult * config.dim),
            nn.GELU(),
            nn.Linear(config.ffn_mult * config.dim, config.dim),
            nn.Dropout(config.dropout),
        )

    def forward(self, x: torch.Tensor, earlier: torch.Tensor,
                distance: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), earlier, distance)
        return x + self.mlp(self.ln_2(x))


class SequenceEncoder(nn.Module):
    """Token fields of windows of payments → one embedding per payment.

    ``forward(cat, num, order)``: ``cat`` (B, T, F) int64 field ids, ``num`` (B, T, 2)
    float32, ``order`` (B, T) int64 tie groups (-1: padding); returns (B, T, C).
    """

    def __init__(self, config: SequenceConfig) -> None:
        super().__init__()
        self.config = config
        self.fields = resolved_fields(config)
        self.embed = nn.ModuleList(nn.Embedding(n, config.dim) for n in cardinalities(config))
        self.numeric = nn.Linear(len(NUMERIC), config.dim)
        self.blocks = nn.ModuleList(Block(config, config.reach(i))
                                    for i in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.dim)
        self.apply(_init_weights)

    def forward(self, cat: torch.Tensor, num: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
        T = cat.shape[1]
        x = self.numeric(num)  # (B, T, C)
        for f, table in enumerate(self.embed):
            x = x + table(cat[:, :, f])  # (B, T, C)
        pos = torch.arange(T, device=cat.device)
        distance = pos[:, None] - pos[None, :]  # (T, T): query minus key
        valid = order >= 0  # (B, T)
        earlier = (order[:, None, :] < order[:, :, None]) & valid[:, None, :]  # (B, T, T)
        for block in self.blocks:
            x = block(x, earlier, distance)
        return self.ln_f(x)  # (B, T, C)


class PretrainHeads(nn.Module):
    """Self-supervised targets: a masked field's value from its own position, and the next
    event's small fields from the position before it."""

    def __init__(self, config: SequenceConfig) -> None:
        super().__init__()
        sizes = cardinalities(config)
        self.masked = nn.ModuleList(nn.Linear(config.dim, n) for n in sizes)
        self.next_fields = [i for i, f in enumerate(resolved_fields(config))
                            if config.next_event and field_values(f, config)
                            <= NEXT_EVENT_MAX_VALUES]
        self.next = nn.ModuleList(nn.Linear(config.dim, sizes[i]) for i in self.next_fields)
        self.apply(_init_weights)


class SequenceClassifier(nn.Module):
    """The encoder with a fraud logit per position, for fine-tuning on labels."""

    def __init__(self, encoder: SequenceEncoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.dim, 1)

    def forward(self, cat: torch.Tensor, num: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(cat, num, order)).squeeze(-1)  # (B, T)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
