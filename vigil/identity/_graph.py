"""The identity graph: accounts linked through the devices, IPs, e-mails, addresses,
documents and faces they share, and its point-in-time features for every payment.

**Nodes** are accounts (``account_id``); a payment without an account (a guest checkout, a
payment in a shop) belongs to its card, which stands in for an account (key ``card:<id>``).
**Attributes** link them: a device, an IP or an e-mail used at sign-up, at a login or
account change, in a verification session or a payment; the postal address claimed at
sign-up; a verification session's document number (its hash) and its face. Faces are
linked when two selfies are near-duplicates (:func:`face_ids`).

**Components** are kept by a union-find over the time-ordered stream of updates. Which
attributes join components is a choice (``kinds``): by default those that say who an
account *claims to be* (:data:`LINKING`: address, document, face); devices, IPs and
e-mails are then counted (``graph_accounts_per_device``, the component's devices) but do
not link, because the fraudsters' shared pools chain nearly everyone into one component.
A popular attribute (a carrier's NAT address, a datacenter IP, a building's address) would
merge everything too, so an attribute links only the first ``max_links`` distinct accounts
that use it; later users are counted but not joined to its component. The rule is causal:
whether a use links depends only on earlier uses.

.. warning::
   **Point in time.** A payment at ``t`` sees the graph built from the updates strictly
   before ``t``: updates at the same microsecond do not see each other (as every vigil
   feature), the payment's own device, IP and e-mail join the graph only after it is
   scored, and a fraud label counts only once it was *reported* (``reported_at < t``),
   never when the fraud happened. Never build these features from ``truth`` or
   ``identity_truth``.

>>> import numpy as np
>>> stream = GraphStream(
...     ts=np.array([1, 2, 3]), node=np.array([0, 1, 1]), kind=np.array([0, 0, LABEL]),
...     attr=np.array([7, 7, -1]), q_ts=np.array([2, 4]), q_node=np.array([1, 0]),
...     q_attr=np.array([[7, -1, -1], [7, -1, -1]]), n_nodes=2, n_attrs=8)
>>> out = graph_features(stream)
>>> out["graph_component_accounts"].tolist(), out["graph_component_fraud_labels"].tolist()
([1.0, 2.0], [0.0, 1.0])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vigil._errors import ConfigError

KINDS = ("device", "ip", "email", "address", "document", "face")
"""The attributes that link accounts, in the order of their kind codes."""
DEVICE, IP, EMAIL, ADDRESS, DOCUMENT, FACE = range(len(KINDS))
TOUCH = -1
"""Kind code of an update that only says an account was seen (a payment in a shop)."""
LABEL = -2
"""Kind code of an update that is a fraud label reported on one of the account's payments."""

LINKING = ("address", "document", "face")
"""The attributes that join components by default: who the accounts *claim to be*. Devices,
IPs and e-mails are counted per attribute but do not link: in the realistic world the
fraudsters' shared pools of devices, proxies and e-mails (and carriers' NAT addresses) chain
most accounts into one component even when each links at most :data:`MAX_LINKS` accounts
(medium preset: a component of 6,339 accounts with e-mails linking, of most accounts with
devices and IPs too; see docs/benchmarks.md)."""

FACE_THRESHOLD = 0.85
"""Cosine above which two selfies are one face: the same person's agree to about 0.97, two
people's rarely exceed 0.6 in the realistic world."""
MAX_LINKS = 8
"""An attribute links at most this many distinct accounts (a household shares a router and
a few devices; a ring reuses each of its devices and IPs for a handful of accounts)."""

FEATURES = (
    "graph_component_accounts", "graph_component_devices", "graph_component_ips",
    "graph_component_fraud_labels", "graph_component_fraud_accounts",
    "graph_component_age_days", "graph_account_age_days",
    "graph_accounts_per_device", "graph_accounts_per_ip", "graph_accounts_per_email",
    "graph_accounts_per_document", "graph_accounts_per_face",
)
"""The feature columns, in order, after ``payment_id`` and ``ts``.

- ``graph_component_accounts``: accounts in the payment's account's component (1 alone);
- ``graph_component_devices``, ``_ips``: distinct devices and IPs its accounts used
  (whether or not those link accounts);
- ``graph_component_fraud_labels``: its payments with a fraud label reported before ``t``;
  ``_fraud_accounts``: its accounts with one;
- ``graph_component_age_days``: days since its first account was first seen;
  ``graph_account_age_days``: the same for the payment's own account;
- ``graph_accounts_per_device``, ``_ip``, ``_email``: accounts that used the payment's
  device, IP, e-mail before (NaN where the payment has none);
- ``graph_accounts_per_document``, ``_face``: the most accounts that showed one of this
  account's documents, faces (NaN for an account never verified).
"""

_US_PER_DAY = 86_400 * 1_000_000


@dataclass
class GraphStream:
    """The graph's input as integer arrays: updates, and the payments to compute features for.

    Updates (``ts``, ``node``, ``kind``, ``attr``): account ``node`` used attribute ``attr``
    (a global id; ``kind`` one of :data:`KINDS`' codes), or was only seen (:data:`TOUCH`),
    or had a fraud label reported on one of its payments (:data:`LABEL`), at ``ts``
    (microseconds). Queries (``q_ts``, ``q_node``, ``q_attr``): a payment at ``q_ts`` by
    ``q_node`` with its device, IP and e-mail attribute ids (-1 for none) in ``q_attr``
    (shape ``(n, 3)``). Build one from tables with :func:`graph_stream`.
    """

    ts: np.ndarray
    node: np.ndarray
    kind: np.ndarray
    attr: np.ndarray
    q_ts: np.ndarray
    q_node: np.ndarray
    q_attr: np.ndarray
    n_nodes: int
    n_attrs: int
    links: frozenset[int] = frozenset(range(len(KINDS)))

    def update_order(self) -> np.ndarray:
        """The order updates are applied in: by time, then account, kind and attribute (a
        total order, so that which accounts an attribute links never depends on row order)."""
        return np.lexsort((self.attr, self.kind, self.node, self.ts))


def face_ids(embeddings: np.ndarray, *, threshold: float = FACE_THRESHOLD) -> np.ndarray:
    """One id per selfie, in the given (time) order: the id of the most similar earlier selfie
    if their cosine is at least ``threshold``, else a new one.

    Exact search: each selfie is compared with every earlier one (a matrix-vector product), so
    n selfies cost O(n²·d); at the presets' sizes (a few thousand to tens of thousands of
    sessions, d = 32) that is well under a second to seconds. An id depends only on earlier
    selfies, so it never leaks the future. Embeddings are taken as unit vectors.
    """
    E = np.asarray(embeddings, dtype=np.float32)
    if E.ndim != 2:
        raise ConfigError(f"face embeddings must be a 2-d array (sessions x dims), not shape "
                          f"{E.shape}")
    ids = np.empty(len(E), dtype=np.int64)
    next_id = 0
    for i in range(len(E)):
        if i:
            sims = E[:i] @ E[i]
            j = int(np.argmax(sims))
            if sims[j] >= threshold:
                ids[i] = ids[j]
                continue
        ids[i] = next_id
        next_id += 1
    return ids


def _us(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(pc.cast(column, pa.timestamp("us", tz="UTC")).cast(pa.int64())
                      .to_numpy(zero_copy_only=False), dtype=np.int64)


def _codes(parts: list[pa.ChunkedArray | pa.Array]) -> tuple[list[np.ndarray], int]:
    """Codes of strings across ``parts`` (-1 for null), and how many distinct.

    Codes follow the strings' sort order, so that the order of updates at one instant (by
    account, then attribute) does not depend on which rows a dataset holds.
    """
    if not parts:
        return [], 0
    chunks = []
    for p in parts:
        p = p.cast(pa.string())
        chunks.extend(p.chunks if isinstance(p, pa.ChunkedArray) else [p])
    values = pa.chunked_array(chunks, pa.string())
    distinct = pc.unique(values.drop_null()).sort()
    codes = np.asarray(pc.fill_null(pc.index_in(values, distinct), -1)
                       .to_numpy(zero_copy_only=False), dtype=np.int64)
    out, start = [], 0
    for p in parts:
        out.append(codes[start:start + len(p)])
        start += len(p)
    return out, len(distinct)


def _sorted_payments(payments: pa.Table) -> pa.Table:
    return payments.sort_by([("ts", "ascending"), ("payment_id", "ascending")])


def graph_stream(data: object, *, kinds: tuple[str, ...] = LINKING,
                 face_threshold: float = FACE_THRESHOLD) -> GraphStream:
    """The update stream and payment queries of a dataset (an :class:`~vigil.events.EventData`:
    ``payments``, ``labels`` and, where it has them, ``accounts``, ``account_events`` and
    ``verification_sessions``). Queries are the payments in (ts, payment_id) order, as
    :func:`vigil.pipeline.prepare` orders its feature rows.

    ``kinds``: which attributes link accounts into components (a subset of :data:`KINDS`);
    the others are still counted per attribute.
    """
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ConfigError(f"unknown identity graph kind(s) {', '.join(unknown)}; use some of "
                          f"{', '.join(KINDS)}")
    payments = _sorted_payments(data.payments)
    tables = {"payments": payments}
    for name in ("accounts", "account_events", "verification_sessions"):
        table = getattr(data, name, None)
        if table is not None and table.num_rows:
            tables[name] = table
    ts_col = {"payments": "ts", "accounts": "created_at", "account_events": "ts",
              "verification_sessions": "created_at"}
    # (table, column) per kind: which columns carry which attribute
    sources: dict[int, list[tuple[str, str]]] = {
        DEVICE: [(t, "device_id") for t in tables],
        IP: [(t, "ip") for t in tables],
        EMAIL: [(t, "email") for t in ("payments", "accounts", "account_events")
                if t in tables],
        ADDRESS: [("accounts", "address_hash")] if "accounts" in tables else [],
        DOCUMENT: ([("verification_sessions", "document_number_hash")]
                   if "verification_sessions" in tables else []),
    }

    # accounts: account ids, and a card for payments without one
    has_account = "account_id" in payments.column_names
    pay_key = pc.binary_join_element_wise("card:", payments.column("card_id"), "")
    if has_account:
        pay_key = pc.coalesce(payments.column("account_id"), pay_key)
    node_parts = [pay_key] + [tables[t].column("account_id") for t in tables if t != "payments"]
    node_codes, n_nodes = _codes(node_parts)
    node_of = dict(zip(tables, node_codes, strict=True))
    ts_of = {t: _us(tables[t].column(ts_col[t])) for t in tables}

    ts, node, kind, attr = [], [], [], []
    for t in tables:  # every record says its account was seen
        ts.append(ts_of[t])
        node.append(node_of[t])
        kind.append(np.full(len(ts_of[t]), TOUCH))
        attr.append(np.full(len(ts_of[t]), -1))
    offset = 0
    pay_attr = np.full((payments.num_rows, 3), -1, dtype=np.int64)
    for k, cols in sources.items():
        codes, n = _codes([tables[t].column(c) for t, c in cols])
        for (t, _col), code in zip(cols, codes, strict=True):
            if t == "payments" and k in (DEVICE, IP, EMAIL):
                pay_attr[:, k] = np.where(code >= 0, code + offset, -1)
            keep = code >= 0
            ts.append(ts_of[t][keep])
            node.append(node_of[t][keep])
            kind.append(np.full(int(keep.sum()), k))
            attr.append(code[keep] + offset)
        offset += n
    if "verification_sessions" in tables:
        sessions = tables["verification_sessions"]
        order = np.lexsort((np.arange(sessions.num_rows), ts_of["verification_sessions"]))
        emb = sessions.column("face_embedding").combine_chunks()
        E = np.asarray(emb.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
        E = E.reshape(sessions.num_rows, -1)
        valid = np.asarray(emb.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        ids = np.full(sessions.num_rows, -1, dtype=np.int64)
        keep = order[valid[order]]
        ids[keep] = face_ids(E[keep], threshold=face_threshold)
        ok = ids >= 0
        ts.append(ts_of["verification_sessions"][ok])
        node.append(node_of["verification_sessions"][ok])
        kind.append(np.full(int(ok.sum()), FACE))
        attr.append(ids[ok] + offset)
        offset += int(ids.max()) + 1 if ok.any() else 0

    # fraud labels, at their first report, on the account of the payment
    labels = data.labels.filter(data.labels.column("is_fraud"))
    if labels.num_rows:
        first = labels.group_by("payment_id").aggregate([("reported_at", "min")])
        row = np.asarray(pc.index_in(first.column("payment_id"), payments.column("payment_id"))
                         .fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
        ok = row >= 0
        ts.append(_us(first.column("reported_at_min"))[ok])
        node.append(node_of["payments"][row[ok]])
        kind.append(np.full(int(ok.sum()), LABEL))
        attr.append(np.full(int(ok.sum()), -1))
    return GraphStream(ts=np.concatenate(ts), node=np.concatenate(node),
                       kind=np.concatenate(kind), attr=np.concatenate(attr),
                       q_ts=ts_of["payments"], q_node=node_of["payments"], q_attr=pay_attr,
                       n_nodes=n_nodes, n_attrs=offset,
                       links=frozenset(KINDS.index(k) for k in kinds))


class _UnionFind:
    """Components of accounts with their counts (size, labels, first seen) and the devices
    and IPs their accounts used (sets merged smaller into larger)."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))
        self.size = [1] * n
        self.devices: list[set[int]] = [set() for _ in range(n)]
        self.ips: list[set[int]] = [set() for _ in range(n)]
        self.labels = [0] * n
        self.fraud_accounts = [0] * n
        self.first = [0] * n

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        a, b = self.find(a), self.find(b)
        if a == b:
            return
        if self.size[a] < self.size[b]:
            a, b = b, a
        self.parent[b] = a
        self.size[a] += self.size[b]
        for sets in (self.devices, self.ips):
            big, small = sets[a], sets[b]
            if len(big) < len(small):
                big, small = small, big
            big |= small
            sets[a], sets[b] = big, set()
        self.labels[a] += self.labels[b]
        self.fraud_accounts[a] += self.fraud_accounts[b]
        self.first[a] = min(self.first[a], self.first[b])


def graph_features(stream: GraphStream, *, max_links: int = MAX_LINKS) -> dict[str, np.ndarray]:
    """:data:`FEATURES` for every query of ``stream``, from the updates strictly before it
    (incremental union-find, one pass over the time-ordered stream)."""
    if max_links < 1:
        raise ConfigError(f"max_links={max_links}: an attribute must be allowed to link at "
                          "least one account (use e.g. 8)")
    order = stream.update_order()
    u_ts = stream.ts[order].tolist()
    u_node = stream.node[order].tolist()
    u_kind = stream.kind[order].tolist()
    u_attr = stream.attr[order].tolist()
    q_order = np.argsort(stream.q_ts, kind="stable")
    q_ts = stream.q_ts.tolist()
    q_node = stream.q_node.tolist()
    q_attr = stream.q_attr.tolist()

    uf = _UnionFind(stream.n_nodes)
    seen = [False] * stream.n_nodes  # the account has been seen
    first = [0] * stream.n_nodes  # when
    labelled = [False] * stream.n_nodes
    users: dict[int, set[int]] = {}  # attribute -> accounts that used it
    anchor: dict[int, int] = {}  # attribute -> the first account that used it
    verified: dict[int, list[list[int]]] = {}  # account -> [documents, faces]

    links = stream.links
    n = len(q_ts)
    out = np.full((n, len(FEATURES)), np.nan)
    i, n_updates = 0, len(u_ts)
    for q in q_order.tolist():
        t = q_ts[q]
        while i < n_updates and u_ts[i] < t:
            a, k, x, when = u_node[i], u_kind[i], u_attr[i], u_ts[i]
            i += 1
            if not seen[a]:
                seen[a] = True
                first[a] = uf.first[a] = when  # a is its own root: nothing links to it yet
            if k == TOUCH:
                continue
            if k == LABEL:
                r = uf.find(a)
                uf.labels[r] += 1
                if not labelled[a]:
                    labelled[a] = True
                    uf.fraud_accounts[r] += 1
                continue
            who = users.get(x)
            if who is None:
                users[x] = {a}
                anchor[x] = a
            elif a not in who:
                who.add(a)
                if k in links and len(who) <= max_links:  # a popular one stops linking
                    uf.union(a, anchor[x])
            else:
                continue
            if k == DEVICE:
                uf.devices[uf.find(a)].add(x)
            elif k == IP:
                uf.ips[uf.find(a)].add(x)
            if k in (DOCUMENT, FACE):
                verified.setdefault(a, [[], []])[k == FACE].append(x)
        a = q_node[q]
        row = out[q]
        if seen[a]:
            r = uf.find(a)
            row[0:5] = (uf.size[r], len(uf.devices[r]), len(uf.ips[r]), uf.labels[r],
                        uf.fraud_accounts[r])
            row[5] = (t - uf.first[r]) / _US_PER_DAY
            row[6] = (t - first[a]) / _US_PER_DAY
        else:
            row[0:7] = (1, 0, 0, 0, 0, 0, 0)
        for j, x in enumerate(q_attr[q]):
            if x >= 0:
                who = users.get(x)
                row[7 + j] = len(who) if who is not None else 0
        docs = verified.get(a)
        if docs is not None:
            for j in (0, 1):
                if docs[j]:
                    row[10 + j] = max(len(users[x]) for x in docs[j])
    return {name: out[:, j] for j, name in enumerate(FEATURES)}


def identity_graph_features(data: object, *, max_links: int = MAX_LINKS,
                            kinds: tuple[str, ...] = LINKING,
                            face_threshold: float = FACE_THRESHOLD) -> pa.Table:
    """The identity graph's point-in-time features of every payment of ``data`` (an
    :class:`~vigil.events.EventData`), as a table ``payment_id, ts,`` :data:`FEATURES`, in
    (ts, payment_id) order: row for row the feature table of
    :func:`vigil.pipeline.prepare`, or joined to it on ``payment_id``.

    .. warning::
       Labels count from their ``reported_at`` on; ``data.labels`` may hold labels reported
       after the last payment (they never reach a payment before them).
    """
    stream = graph_stream(data, kinds=kinds, face_threshold=face_threshold)
    values = graph_features(stream, max_links=max_links)
    payments = _sorted_payments(data.payments)
    columns = {"payment_id": payments.column("payment_id"), "ts": payments.column("ts")}
    columns.update({name: pa.array(v, pa.float64()) for name, v in values.items()})
    return pa.table(columns)
