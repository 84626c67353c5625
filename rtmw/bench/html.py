"""One self-contained HTML page per run (``index.html``): the compact table, the gate with
each failing check in words, the plots, the drawn skeletons, the full table and the CPU
fingerprint. Images are embedded (base64), nothing is fetched: it opens from disk, without
a server, and can be mailed or attached to a CI run as one file."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from rtmw.bench.entry import ResultsDocument, as_document
from rtmw.bench.gate import GateResult, explain_check
from rtmw.bench.summary import (
    COMPACT_HEADER,
    DETECTOR_HEADER,
    DETECTOR_NOTE,
    compact_note,
    compact_rows,
    detector_rows,
)
from rtmw.host import describe

PLOTS = (
    ("latency_vs_ap.png", "Speed against whole-body AP"),
    ("part_ap.png", "AP per body part"),
    ("throughput.png", "Throughput per batch"),
)
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1400px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f0f0f0; }
tr.fail td { background: #fde8e8; }
.pass { color: #176b21; font-weight: bold; }
.fail { color: #b00020; font-weight: bold; }
figure { display: inline-block; margin: 0 1em 1em 0; vertical-align: top; }
figure img { max-width: 560px; border: 1px solid #ddd; }
.skeletons img { max-width: 260px; }
code, .mono { font-family: ui-monospace, monospace; font-size: 0.9em; }
"""
# marks the page rendered when every embedded image decoded; the report test reads it
CHECK_SCRIPT = """
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var decoded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.setAttribute('data-images', decoded.length + '/' + images.length);
  document.body.setAttribute('data-rendered',
    decoded.length === images.length && document.querySelector('table') ? 'ok' : 'broken');
});
"""


def _table(header: list[str], rows: list[list[str]], failed: set[int] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for index, row in enumerate(rows):
        css = ' class="fail"' if failed and index in failed else ""
        body.append(f"<tr{css}>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row)
                    + "</tr>")  # fmt: skip
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _embedded(path: Path, alt: str) -> str:
    mime = "image/png" if path.suffix == ".png" else "image/jpeg"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:{mime};base64,{data}">'


def _gate_section(gate: GateResult | None) -> str:
    if gate is None:
        return (
            "<h2>Gate</h2><p>Not run for this results file: "
            "<code>rtmw-bench gate</code> judges it against its FP32 reference.</p>"
        )
    failed = [c for c in gate.checks if not c.passed]
    if not failed:
        verdict = (f'<p class="pass">PASS: all {len(gate.checks)} checks within their '
                   "budgets.</p>")  # fmt: skip
    else:
        items = "".join(f"<li>{html.escape(explain_check(c))}</li>" for c in failed)
        verdict = (
            f'<p class="fail">FAIL: {len(failed)} of {len(gate.checks)} checks over budget. '
            "The gate is doing its job: these artifacts lose more than their budget against "
            f"FP32 and should not ship under these budgets.</p><ul>{items}</ul>"
        )
    rows = [[c.candidate, c.part, c.metric, "–" if c.value is None else f"{c.value:.2f}",
             "–" if c.budget is None else f"{c.budget:.2f}", "pass" if c.passed else "FAIL",
             c.detail] for c in gate.checks]  # fmt: skip
    failed_rows = {i for i, c in enumerate(gate.checks) if not c.passed}
    hosts = "".join(f"<li>{html.escape(h)}</li>" for h in gate.hosts)
    header = ["Candidate", "Part", "Metric", "Value", "Budget", "Result", "Detail"]
    every = _table(header, rows, failed_rows)
    return (
        f"<h2>Gate</h2>{verdict}<ul>{hosts}</ul><details><summary>every check "
        f"({len(gate.checks)})</summary>{every}</details>"
    )


def _skeletons(results: ResultsDocument, out_dir: Path) -> str:
    figures = []
    for entry in results.entries:
        for relative in (entry.get("images") or [])[:1]:
            path = out_dir / relative
            if path.is_file():
                label = f"{entry.route} ({entry.get('precision', '')})"
                figures.append(f"<figure>{_embedded(path, label)}<figcaption>"
                               f"{html.escape(label)}</figcaption></figure>")  # fmt: skip
    if not figures:
        return ""
    return ('<h2>Drawn skeletons</h2><p>The first held-out image through each artifact.</p>'
            f'<div class="skeletons">{"".join(figures)}</div>')  # fmt: skip


def _detector_section(results: ResultsDocument) -> str:
    rows = detector_rows([results])
    if not rows:
        return ""
    return (f"<h2>Person detector</h2>{_table(DETECTOR_HEADER, rows)}"
            f"<p>{html.escape(DETECTOR_NOTE)}</p>")  # fmt: skip


def render_html(
    results: ResultsDocument,
    out_dir: Path,
    gate: GateResult | None = None,
    full_table: tuple[list[str], list[list[str]]] | None = None,
) -> str:
    results = as_document(results)
    cpu = results.environment.get("cpu") or {}
    title = f"rtmw results: {results.get('name', out_dir.name)}"
    notes = compact_note(results)
    plots = "".join(
        f"<figure>{_embedded(out_dir / name, caption)}<figcaption>{caption}</figcaption></figure>"
        for name, caption in PLOTS if (out_dir / name).is_file()
    )  # fmt: skip
    fingerprint = "".join(
        f"<tr><th>{html.escape(key)}</th><td class='mono'>{html.escape(str(value))}</td></tr>"
        for key, value in cpu.items() if key != "flags"
    )  # fmt: skip
    flags = " ".join(cpu.get("flags") or [])
    data = results.settings.get("data") or {}
    where = (f"{data.get('num_images')} images, {data.get('num_instances')} persons, "
             f"{data.get('box_source')} boxes" if data else "no accuracy data")  # fmt: skip
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style><script>{CHECK_SCRIPT}</script></head>
<body>
<h1>{html.escape(title)}</h1>
<p>Measured on {html.escape(describe(cpu) if cpu else "an unrecorded CPU")};
{html.escape(str(results.get("created", "")))}; accuracy on {html.escape(where)}.</p>
<h2>At a glance</h2>
{_table(COMPACT_HEADER, compact_rows(results, gate))}
<p>{html.escape(notes)}</p>
{_gate_section(gate)}
{_detector_section(results)}
<h2>Plots</h2>{plots or "<p>No plots (matplotlib not installed: rtmw[plot]).</p>"}
{_skeletons(results, out_dir)}
<h2>Every figure</h2>
{_table(*full_table) if full_table else "<p>(not given)</p>"}
<h2>CPU fingerprint</h2>
<table>{fingerprint}<tr><th>flags</th><td class="mono">{html.escape(flags)}</td></tr></table>
<p>Threads {html.escape(str(results.settings.get("threads")))};
every speed figure was measured on this CPU, and is not a figure for another.</p>
</body></html>
"""


def write_html_report(
    out_dir: Path,
    results: ResultsDocument,
    gate: GateResult | None = None,
    full_table: tuple[list[str], list[list[str]]] | None = None,
) -> Path:
    """``full_table``: (header, rows) of every figure (rtmw.bench.report renders them)."""
    path = out_dir / "index.html"
    path.write_text(render_html(results, out_dir, gate, full_table), encoding="utf-8")
    return path
