"""One self-contained HTML page: styles, charts (inline SVG), data and script all inside the
file, so it opens offline, from an e-mail attachment or a CI artifact, with no request out.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

Format = Callable[[Any], str]


def fmt_int(v: Any) -> str:
    return "–" if _missing(v) else f"{round(float(v)):,}"


def fmt_pct(v: Any) -> str:
    return "–" if _missing(v) else f"{100 * float(v):.1f} %"


def fmt_pct2(v: Any) -> str:
    return "–" if _missing(v) else f"{100 * float(v):.2f} %"


def fmt_3(v: Any) -> str:
    return "–" if _missing(v) else f"{float(v):.3f}"


def fmt_money(v: Any) -> str:
    return "–" if _missing(v) else f"{float(v):,.0f}"


def fmt_signed(v: Any) -> str:
    return "–" if _missing(v) else f"{float(v):+.3f}"


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def esc(v: Any) -> str:
    return html.escape(str(v))


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    format: Format = esc
    numeric: bool = True


def table(rows: Sequence[dict[str, Any]], columns: Sequence[Column], *,
          cls: str = "", highlight: Callable[[dict[str, Any]], bool] | None = None) -> str:
    head = "".join(f'<th class="{"num" if c.numeric else ""}">{esc(c.title)}</th>'
                   for c in columns)
    body = []
    for r in rows:
        mark = ' class="hl"' if highlight is not None and highlight(r) else ""
        cells = "".join(f'<td class="{"num" if c.numeric else ""}">{c.format(r.get(c.key))}</td>'
                        for c in columns)
        body.append(f"<tr{mark}>{cells}</tr>")
    return (f'<div class="scroll"><table class="{cls}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def figure(svg: str, caption: str, name: str) -> str:
    return (f'<figure class="chart" data-chart="{esc(name)}">{svg}'
            f"<figcaption>{caption} <a href=\"figures/{esc(name)}.png\">PNG</a></figcaption>"
            "</figure>")


def tiles(items: Sequence[tuple[str, str, str]]) -> str:
    """Headline numbers: (label, value, note)."""
    cells = "".join(f'<div class="tile"><div class="label">{esc(label)}</div>'
                    f'<div class="value">{value}</div><div class="note">{note}</div></div>'
                    for label, value, note in items)
    return f'<div class="tiles">{cells}</div>'


def definition_list(items: Sequence[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def page(title: str, subtitle: str, sections: Sequence[tuple[str, str, str]],
         data: dict[str, Any] | None = None) -> str:
    """The page: ``sections`` are (anchor, heading, inner HTML); ``data`` goes in as JSON for
    the page's script."""
    nav = "".join(f'<a href="#{esc(a)}">{esc(h)}</a>' for a, h, _ in sections)
    body = "".join(f'<section id="{esc(a)}"><h2>{esc(h)}</h2>{inner}</section>'
                   for a, h, inner in sections)
    payload = json.dumps(data or {}, allow_nan=False, default=str).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline';
               img-src data:">
<title>{esc(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<header><h1>{esc(title)}</h1><p class="sub">{subtitle}</p><nav>{nav}</nav></header>
<main>{body}</main>
<footer>Written by vigil. Every figure on this page comes from the data and model named above.
</footer>
<script type="application/json" id="report-data">{payload}</script>
<script>{_JS}</script>
</body>
</html>
"""


def clean_json(value: Any) -> Any:
    """NaN and infinity become null, so the page's JSON is valid JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    return value


_CSS = """
:root { --ink:#1d2230; --mute:#5f6677; --line:#e3e6ee; --accent:#3558d6; --bg:#fafbfd; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif;
       color:var(--ink); background:var(--bg); }
header { background:#fff; border-bottom:1px solid var(--line); padding:18px 32px 8px;
         position:sticky; top:0; z-index:2; }
h1 { margin:0; font-size:22px; } .sub { margin:2px 0 8px; color:var(--mute); }
nav a { margin-right:14px; color:var(--accent); text-decoration:none; font-size:13px; }
main { padding:8px 32px 32px; max-width:1280px; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:16px 20px;
          margin:18px 0; }
h2 { margin:0 0 10px; font-size:18px; } h3 { font-size:15px; margin:16px 0 6px; }
.grid { display:grid; grid-template-columns:repeat(auto-fit, minmax(440px, 1fr)); gap:16px; }
figure.chart { margin:0; max-width:900px; }
figure.chart svg { width:100%; height:auto; display:block; }
figcaption { color:var(--mute); font-size:12px; }
.tiles { display:grid; grid-template-columns:repeat(auto-fit, minmax(170px, 1fr)); gap:10px; }
.tile { border:1px solid var(--line); border-radius:6px; padding:8px 12px; }
.tile .label { color:var(--mute); font-size:12px; } .tile .value { font-size:22px; }
.tile .note { color:var(--mute); font-size:11px; }
.scroll { overflow-x:auto; max-height:520px; overflow-y:auto; }
table { border-collapse:collapse; font-size:12.5px; margin:6px 0 10px; }
th, td { padding:3px 10px; border-bottom:1px solid var(--line); text-align:left;
         white-space:nowrap; }
th { position:sticky; top:0; background:#f3f5fa; } .num { text-align:right; }
tr.hl td { background:#fff4d6; font-weight:600; }
dl { display:grid; grid-template-columns:max-content 1fr; gap:2px 16px; margin:4px 0; }
dt { color:var(--mute); } dd { margin:0; }
code, pre { background:#f3f5fa; border-radius:4px; padding:1px 5px; font-size:12.5px; }
pre { padding:8px 12px; }
.explorer { display:flex; gap:24px; flex-wrap:wrap; align-items:flex-start; }
.explorer label { display:block; margin:6px 0; }
.explorer input[type=range] { width:260px; vertical-align:middle; }
.warn { color:#9a3b00; } .good { color:#1d7a45; } .bad { color:#b3261e; }
.example { border-left:3px solid var(--line); padding:4px 12px; margin:8px 0; }
.example.fraud-caught { border-color:#2a9d5b; } .example.fraud-missed { border-color:#d1373b; }
.example.good-payment-flagged { border-color:#e0a21b; }
footer { color:var(--mute); font-size:12px; padding:0 32px 24px; }
"""

_JS = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  function pct(v) { return v === null ? "–" : (100 * v).toFixed(1) + " %"; }
  function num(v) { return v === null ? "–" : Math.round(v).toLocaleString("en"); }
  var box = document.getElementById("explorer");
  if (box && data.thresholds) {
    var rows = data.thresholds, costs = data.costs;
    var block = document.getElementById("block-threshold");
    var review = document.getElementById("review-threshold");
    var out = document.getElementById("explorer-out");
    var rule = document.getElementById("explorer-rules");
    var update = function () {
      var b = +block.value, r = Math.min(+review.value, b);
      var rb = rows[b], rr = rows[r];
      var reviewed = rr.flagged - rb.flagged;
      var caught = (rr.frauds_caught - rb.frauds_caught) * costs.review_catch_rate;
      var money = (rr.fraud_money_caught - rb.fraud_money_caught) * costs.review_catch_rate;
      var net = rb.net_benefit + money + costs.chargeback_fee * caught
                - costs.review_cost * reviewed;
      var perDay = reviewed / data.days;
      document.getElementById("block-value").textContent = b;
      document.getElementById("review-value").textContent = r;
      var fits = perDay <= costs.review_capacity_per_day + 1e-9;
      out.innerHTML =
        "<dl><dt>payments blocked</dt><dd>" + num(rb.flagged) + " (" + pct(rb.block_rate) +
        ")</dd><dt>frauds blocked</dt><dd>" + num(rb.frauds_caught) + " of " +
        num(data.frauds) + " (" + pct(rb.fraud_recall) + ")</dd>" +
        "<dt>good payments blocked</dt><dd>" + num(rb.good_blocked) + "</dd>" +
        "<dt>reviews per day</dt><dd class='" + (fits ? "good" : "bad") + "'>" +
        perDay.toFixed(1) + " (capacity " + costs.review_capacity_per_day + ")</dd>" +
        "<dt>frauds stopped in review</dt><dd>" + caught.toFixed(0) + "</dd>" +
        "<dt>net benefit</dt><dd>" + num(net) + " " + data.currency + "</dd></dl>";
      rule.textContent = "block if :risk_score: > " + b +
        (r < b ? "\nreview if :risk_score: > " + r : "");
    };
    block.addEventListener("input", update);
    review.addEventListener("input", update);
    update();
  }
  document.documentElement.setAttribute("data-ready", "1");
})();
"""
