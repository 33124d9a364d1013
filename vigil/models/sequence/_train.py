"""Pre-training, embedding and fine-tuning the sequence encoder.

The pre-training loop reads top to bottom: for each epoch, for each batch of windows, mask
some fields, predict them (and the next event), step; at the end of an epoch, measure the
held-out loss and write a checkpoint. A time budget stops it mid-epoch with a checkpoint
that ``resume=True`` continues exactly (batch order and masks derive from the seed, the
epoch and the batch number).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch.nn import functional as F

from vigil._errors import ConfigError, ModelError
from vigil.models.sequence._checkpoint import load_checkpoint, load_optimizer, save_checkpoint
from vigil.models.sequence._config import SequenceConfig
from vigil.models.sequence._files import PCA, read_doc, record_file
from vigil.models.sequence._model import PretrainHeads, SequenceClassifier, SequenceEncoder
from vigil.models.sequence._pca import EmbeddingPCA
from vigil.models.sequence._tokens import (
    MASK,
    NUMERIC_OF_FIELD,
    Tokens,
    chunk_index,
    gather,
    resolve_fields,
    resolved_fields,
    tokenize,
    trim,
)

Progress = Callable[[dict[str, Any]], None]
WARMUP_STEPS = 100


def torch_device(name: str) -> torch.device:
    """``cpu`` or ``cuda``; a clear error when CUDA is asked for and absent."""
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda: PyTorch sees no CUDA GPU here "
                              "(torch.cuda.is_available() is False); use --device cpu")
        return torch.device("cuda")
    if name != "cpu":
        raise ConfigError(f"device '{name}' is not supported; use cpu or cuda")
    return torch.device("cpu")


def _autocast(device: torch.device) -> Any:
    # bf16 on a GPU; on CPU float32 is as fast for models this small, and exact
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def _to(batch: dict[str, np.ndarray], device: torch.device) -> tuple[torch.Tensor, ...]:
    return (torch.from_numpy(batch["cat"]).to(device), torch.from_numpy(batch["num"]).to(device),
            torch.from_numpy(batch["order"]).to(device))


def _generator(*parts: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int(np.random.SeedSequence(list(parts)).generate_state(1)[0]))
    return g


def pretrain_loss(encoder: SequenceEncoder, heads: PretrainHeads, batch: dict[str, np.ndarray],
                  own: np.ndarray, generator: torch.Generator,
                  device: torch.device) -> torch.Tensor:
    """Masked-field loss plus next-event loss (mean cross-entropy each) on owned positions."""
    config = encoder.config
    cat, num, order = _to(batch, device)
    owned = torch.from_numpy(own).to(device)
    target = cat
    maskable = owned[..., None] & (cat >= 2)  # (B, T, F)
    draw = torch.rand(cat.shape, generator=generator).to(device)
    masked = (draw < config.mask_prob) & maskable
    fields = resolved_fields(config)
    num_in = num.clone()
    for f, name in enumerate(fields):
        if name in NUMERIC_OF_FIELD:
            j = NUMERIC_OF_FIELD[name]
            num_in[..., j] = num_in[..., j].masked_fill(masked[..., f], 0.0)
    with _autocast(device):
        h = encoder(cat.masked_fill(masked, MASK), num_in, order)  # (B, T, C)
        total, count = h.new_zeros(()), 0
        for f, head in enumerate(heads.masked):
            sel = masked[..., f]
            n = int(sel.sum())
            if n:
                total = total + F.cross_entropy(head(h[sel]).float(), target[..., f][sel],
                                                reduction="sum")
                count += n
        loss = total / max(count, 1)
        if heads.next_fields:
            # position i predicts event i + 1 (a real event of the same entity)
            nxt = owned[:, :-1] & (order[:, 1:] >= 0)
            h_prev = h[:, :-1]
            total, count = h.new_zeros(()), 0
            for head, f in zip(heads.next, heads.next_fields, strict=True):
                sel = nxt & (target[:, 1:, f] >= 2)
                n = int(sel.sum())
                if n:
                    total = total + F.cross_entropy(head(h_prev[sel]).float(),
                                                    target[:, 1:, f][sel], reduction="sum")
                    count += n
            loss = loss + total / max(count, 1)
    return loss


def _lr_at(step: int, total: int, peak: float) -> float:
    if step < WARMUP_STEPS:
        return peak * (step + 1) / WARMUP_STEPS
    progress = min(1.0, (step - WARMUP_STEPS) / max(1, total - WARMUP_STEPS))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def pretrain(payments: pa.Table, out: str | Path, *, config: SequenceConfig | None = None,
             epochs: int = 4, max_minutes: float | None = None, batch_size: int = 64,
             lr: float = 2e-3, weight_decay: float = 0.01, device: str = "cpu", seed: int = 0,
             resume: bool = False, valid_share: float = 0.02, data_info: dict | None = None,
             progress: Progress | None = None) -> dict[str, Any]:
    """Pre-train an encoder on ``payments`` without labels; checkpoints go to ``out``.

    Every epoch ends with a checkpoint; ``max_minutes`` stops earlier, mid-epoch, with a
    checkpoint too. ``resume=True`` continues the checkpoint in ``out`` (its config and
    settings win; the data must be the same). Returns the checkpoint's record.
    """
    say = progress or (lambda _e: None)
    out = Path(out)
    dev = torch_device(device)
    doc: dict[str, Any] = {}
    if resume:
        doc = read_doc(out)
        saved = SequenceConfig.from_dict(doc["config"])
        if config is not None and resolve_fields(payments, config) != saved:
            raise ConfigError(f"{out}: the checkpoint's config differs from the one given; "
                              "resume without model options, or start in a new --out folder")
        config = saved
        t = doc["training"]
        epochs, batch_size, lr, weight_decay, seed, valid_share = (
            max(epochs, t["epochs"]), t["batch_size"], t["lr"], t["weight_decay"], t["seed"],
            t["valid_share"])
    else:
        if (out / "sequence.json").exists():
            raise ConfigError(f"{out}: already holds a checkpoint; pass --resume to continue "
                              "it, or choose another --out")
        config = resolve_fields(payments, config or SequenceConfig())
    if epochs < 1:
        raise ConfigError(f"epochs={epochs}: at least 1")

    say({"event": "tokenize", "payments": payments.num_rows})
    tokens = tokenize(payments, config)
    index, own = chunk_index(tokens)
    if not len(index):
        raise ModelError(f"no payments with a '{config.entity}' to pre-train on")
    rng = np.random.default_rng(seed)
    is_valid = rng.random(len(index)) < valid_share
    if is_valid.all():
        is_valid[:] = False
    train_ids, valid_ids = np.flatnonzero(~is_valid), np.flatnonzero(is_valid)
    per_epoch = -(-len(train_ids) // batch_size)
    total_steps = epochs * per_epoch
    data = {"payments": payments.num_rows, "tokens": len(tokens), "windows": len(index),
            **(data_info or {})}

    torch.manual_seed(seed)
    if resume:
        encoder, heads, _ = load_checkpoint(out, heads=True)
        assert heads is not None
        if doc["training"]["data"].get("tokens") != len(tokens):
            raise ConfigError(f"{out}: the checkpoint was trained on "
                              f"{doc['training']['data'].get('tokens'):,} payments' tokens, "
                              f"this data has {len(tokens):,}; resume with the same data")
    else:
        encoder, heads = SequenceEncoder(config), PretrainHeads(config)
    encoder.to(dev)
    heads.to(dev)
    params = [*encoder.parameters(), *heads.parameters()]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    state = {"epoch": 0, "batch": 0, "step": 0, "seconds": 0.0, "events": 0}
    history: list[dict[str, Any]] = []
    if resume:
        load_optimizer(out, doc, optimizer)
        state.update(doc["training"]["state"])
        history = list(doc.get("metrics", {}).get("epochs", []))
    say({"event": "start", "tokens": len(tokens), "windows": len(index),
         "train_windows": len(train_ids), "batches_per_epoch": per_epoch, "epochs": epochs,
         "resumed_at": dict(state) if resume else None, "config": config.to_dict(),
         "parameters": sum(p.numel() for p in encoder.parameters())})

    def record() -> dict[str, Any]:
        scored = [e for e in history if e["valid_loss"] is not None]
        best = min(scored, key=lambda e: e["valid_loss"]) if scored else None
        return {
            "training": {"epochs": epochs, "batch_size": batch_size, "lr": lr,
                         "weight_decay": weight_decay, "seed": seed, "valid_share": valid_share,
                         "device": dev.type, "data": data, "state": dict(state),
                         "done": state["epoch"] >= epochs,
                         "events_per_s": state["events"] / max(state["seconds"], 1e-9)},
            "metrics": {"epochs": history,
                        "best_valid_loss": best["valid_loss"] if best else None,
                        "best_epoch": best["epoch"] if best else None},
        }

    started = time.perf_counter()
    base_seconds = state["seconds"]
    stopped = False
    while state["epoch"] < epochs and not stopped:
        epoch = state["epoch"]
        order_ = np.random.default_rng([seed, epoch]).permutation(train_ids)
        encoder.train()
        heads.train()
        t_epoch, events_epoch, loss_sum = time.perf_counter(), 0, 0.0
        for b in range(state["batch"], per_epoch):
            ids = order_[b * batch_size:(b + 1) * batch_size]
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(state["step"], total_steps, lr)
            idx, o = trim(index[ids], own[ids])
            loss = pretrain_loss(encoder, heads, gather(tokens, idx), o,
                                 _generator(seed, epoch, b), dev)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            n_events = int(own[ids].sum())
            events_epoch += n_events
            loss_sum += float(loss.detach())
            state["step"] += 1
            state["batch"] = b + 1
            state["events"] += n_events
            state["seconds"] = base_seconds + time.perf_counter() - started
            say({"event": "batch", "epoch": epoch + 1, "batch": b + 1,
                 "batches": per_epoch, "loss": float(loss.detach()),
                 "events_per_s": events_epoch / max(time.perf_counter() - t_epoch, 1e-9)})
            if max_minutes is not None and time.perf_counter() - started > 60 * max_minutes:
                stopped = state["batch"] < per_epoch
                break
        if stopped:
            save_checkpoint(out, encoder, heads, optimizer, record())
            say({"event": "stopped", "epoch": epoch + 1, "batch": state["batch"],
                 "batches": per_epoch, "seconds": state["seconds"]})
            break
        valid_loss = evaluate_loss(encoder, heads, tokens, index[valid_ids], own[valid_ids],
                                   seed=seed, batch_size=batch_size, device=dev)
        seconds = time.perf_counter() - t_epoch
        history.append({"epoch": epoch + 1, "train_loss": loss_sum / max(1, per_epoch),
                        "valid_loss": valid_loss, "seconds": round(seconds, 1),
                        "events_per_s": round(events_epoch / max(seconds, 1e-9))})
        state.update(epoch=epoch + 1, batch=0)
        save_checkpoint(out, encoder, heads, optimizer, record())
        say({"event": "epoch", **history[-1], "epochs": epochs})
        if max_minutes is not None and time.perf_counter() - started > 60 * max_minutes:
            stopped = state["epoch"] < epochs
            if stopped:
                say({"event": "stopped", "epoch": state["epoch"], "batch": 0,
                     "batches": per_epoch, "seconds": state["seconds"]})
    return read_doc(out)


@torch.no_grad()
def evaluate_loss(encoder: SequenceEncoder, heads: PretrainHeads, tokens: Tokens,
                  index: np.ndarray, own: np.ndarray, *, seed: int, batch_size: int,
                  device: torch.device) -> float | None:
    """The pre-training loss on held-out windows, with fixed masks."""
    if not len(index):
        return None
    encoder.eval()
    heads.eval()
    losses, weights = [], []
    for b in range(0, len(index), batch_size):
        sl = slice(b, b + batch_size)
        idx, o = trim(index[sl], own[sl])
        loss = pretrain_loss(encoder, heads, gather(tokens, idx), o,
                             _generator(seed, 1 << 30, b), device)  # held-out masks: fixed
        losses.append(float(loss))
        weights.append(int(own[sl].sum()))
    return float(np.average(losses, weights=weights))


# --------------------------------------------------------------------------- inference


@torch.no_grad()
def _per_token(model: torch.nn.Module, tokens: Tokens, width: int, *,
               select: np.ndarray | None, batch_size: int, device: torch.device) -> np.ndarray:
    """Run ``model`` over windows owning the selected tokens; its output per token position
    (NaN where not selected)."""
    model.eval()
    index, own = chunk_index(tokens, select=select)
    out = np.full((len(tokens), width), np.nan, dtype=np.float32)
    for b in range(0, len(index), batch_size):
        idx, o = trim(index[b:b + batch_size], own[b:b + batch_size])
        with _autocast(device):
            y = model(*_to(gather(tokens, idx), device)).float()
        y = y.reshape(*y.shape[:2], width).cpu().numpy()
        out[idx[o]] = y[o]
    return out


def embed_tokens(encoder: SequenceEncoder, tokens: Tokens, *, select: np.ndarray | None = None,
                 batch_size: int = 256, device: str = "cpu") -> np.ndarray:
    """Embeddings (N, C) per token position (NaN rows where ``select`` is False)."""
    dev = torch_device(device)
    return _per_token(encoder.to(dev), tokens, encoder.config.dim, select=select,
                      batch_size=batch_size, device=dev)


def embed_payments(encoder: SequenceEncoder, payments: pa.Table, *, batch_size: int = 256,
                   device: str = "cpu") -> np.ndarray:
    """Embeddings (n_rows, C) in the table's row order; NaN where the entity is missing.

    .. warning::
       Point in time by construction: a payment's embedding reads only payments of its
       entity at or before it (ties excluded). Pre-training on later payments than the ones
       you evaluate on is a leak of a milder kind (no labels, but their distribution):
       pre-train on data before your test period.
    """
    tokens = tokenize(payments, encoder.config)
    per_token = embed_tokens(encoder, tokens, batch_size=batch_size, device=device)
    out = np.full((payments.num_rows, encoder.config.dim), np.nan, dtype=np.float32)
    out[tokens.rows] = per_token
    return out


# --------------------------------------------------------------------------- fine-tuning


def finetune(encoder: SequenceEncoder, tokens: Tokens, select: np.ndarray, labels: np.ndarray,
             *, epochs: int = 3, lr: float = 1e-3, encoder_lr: float = 3e-4,
             batch_size: int = 64, owned: int = 32, seed: int = 0, device: str = "cpu",
             progress: Progress | None = None) -> SequenceClassifier:
    """A classifier: a copy of ``encoder`` with a fraud logit head, trained on the token
    positions in ``select`` with ``labels`` (both per token position).

    .. warning::
       ``labels`` must be those known at the training cutoff (``labels_known_at``), never
       every label in the data: a fraud reported after the cutoff must count as legitimate.
    """
    say = progress or (lambda _e: None)
    dev = torch_device(device)
    torch.manual_seed(seed)
    model = SequenceClassifier(copy.deepcopy(encoder)).to(dev)
    y_all = torch.from_numpy(np.asarray(labels, dtype=np.float32))
    index, own = chunk_index(tokens, owned=owned, select=select)
    if not len(index):
        raise ModelError("no payments to fine-tune on")
    optimizer = torch.optim.AdamW([
        {"params": model.encoder.parameters(), "lr": encoder_lr},
        {"params": model.head.parameters(), "lr": lr},
    ], weight_decay=0.01)
    for epoch in range(epochs):
        model.train()
        perm = np.random.default_rng([seed, epoch]).permutation(len(index))
        total, t0 = 0.0, time.perf_counter()
        for b in range(0, len(perm), batch_size):
            ids = perm[b:b + batch_size]
            idx, o = trim(index[ids], own[ids])
            o = torch.from_numpy(o).to(dev)
            target = y_all[np.where(idx < 0, 0, idx)].to(dev)
            with _autocast(dev):
                logits = model(*_to(gather(tokens, idx), dev)).float()
            loss = F.binary_cross_entropy_with_logits(logits[o], target[o])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            total += float(loss.detach()) * len(ids)
        say({"event": "finetune_epoch", "epoch": epoch + 1, "epochs": epochs,
             "loss": total / len(perm), "seconds": time.perf_counter() - t0})
    return model


def predict_logits(model: SequenceClassifier, tokens: Tokens, select: np.ndarray, *,
                   batch_size: int = 256, device: str = "cpu") -> np.ndarray:
    """Fraud logits per token position (NaN where ``select`` is False)."""
    dev = torch_device(device)
    return _per_token(model.to(dev), tokens, 1, select=select, batch_size=batch_size,
                      device=dev)[:, 0]


def load_encoder(folder: str | Path) -> SequenceEncoder:
    """The encoder of a checkpoint folder (weights only; see ``load_checkpoint``)."""
    return load_checkpoint(folder)[0]


def fit_checkpoint_pca(folder: str | Path, payments: pa.Table, *, n_components: int = 8,
                       max_tokens: int = 200_000, seed: int = 0,
                       device: str = "cpu") -> EmbeddingPCA:
    """Fit principal components of a checkpoint's embeddings on ``payments`` (whole
    histories of random entities, about ``max_tokens`` payments) and save them beside it."""
    folder = Path(folder)
    encoder = load_encoder(folder)
    tokens = tokenize(payments, encoder.config)
    starts, sizes = np.unique(tokens.first, return_counts=True)
    pick = np.random.default_rng(seed).permutation(len(starts))
    keep = pick[: int(np.searchsorted(np.cumsum(sizes[pick]), max_tokens)) + 1]
    select = np.isin(tokens.first, starts[keep])
    embeddings = embed_tokens(encoder, tokens, select=select, device=device)[select]
    pca = EmbeddingPCA(n_components, seed=seed).fit(embeddings)
    pca.save(folder / PCA)
    record_file(folder, "pca", PCA, n_components=n_components, fitted_on=int(select.sum()),
                explained_variance_ratio=[round(float(v), 4)
                                          for v in pca.explained_variance_ratio_])
    return pca
