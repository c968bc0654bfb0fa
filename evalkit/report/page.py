"""The report page: its sections in order, inline CSS, one HTML document with no external resource."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from evalkit.report import sections
from evalkit.report.html import esc
from evalkit.report.inputs import ReportInputs, load_inputs
from evalkit.util.files import write_text_atomic


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    render: Callable[[ReportInputs], str]


SECTIONS = (
    Section("recovery", "Recovery and verdicts", sections.recovery),
    Section("tasks", "Per task: difference vs baseline and flips", sections.tasks),
    Section("divergence", "Output divergence and text similarity", sections.divergence),
    Section("performance", "Latency, throughput, cost and recommendation", sections.performance),
    Section("noise", "Noise floor", sections.noise_floor),
    Section("failures", "Failed and stale cells", sections.failures),
    Section("provenance", "Provenance", sections.provenance),
)
"""The page's sections, in order; the browser test checks each id is on the page."""

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1180px;padding:0 24px 48px;
color:#222}
header{border-bottom:2px solid #333;margin-bottom:8px}h1{margin:18px 0 4px}
h2{margin-top:34px;border-bottom:1px solid #ccc}
nav a{margin-right:14px}table{border-collapse:collapse;margin:8px 0 14px;font-size:12.5px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f3f3f3}
td{max-width:460px;overflow-wrap:anywhere}.na{color:#aaa}.absent{color:#8a5a00;background:#fff7e0;padding:6px 10px;
border-left:3px solid #e0b341}.note{color:#555;font-size:12.5px}figure.plot{margin:10px 0;overflow-x:auto}
figcaption{color:#555;font-size:12.5px}.summary{color:#444}
"""


def render_report(inp: ReportInputs) -> str:
    """The whole page as one string (pure: everything it shows comes from `inp`)."""
    s = inp.scores
    n_cells = len(s.drop_duplicates(["model", "format", "benchmark"])) if not s.empty else 0
    n_failed = int((s.drop_duplicates(["model", "format", "benchmark"])["status"] == "failed").sum()) if n_cells else 0
    nav = "".join(f'<a href="#{x.id}">{esc(x.title)}</a>' for x in SECTIONS)
    body = "".join(f'<section id="{x.id}"><h2>{esc(x.title)}</h2>{x.render(inp)}</section>' for x in SECTIONS)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>evalkit report: {esc(inp.results)}</title><style>{CSS}</style></head><body>"
        f'<header><h1>evalkit report</h1><p class="summary">results <code>{esc(inp.results)}</code>: {n_cells} '
        f"cell(s), {n_failed} failed; baseline {esc(inp.settings.baseline)}, margin {esc(inp.settings.margin)}; "
        f"written {esc(inp.generated_at)}.</p><nav>{nav}</nav></header>{body}</body></html>"
    )


def write_report(results: Path, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    # atomic, with a temp name of its own: a reader (a browser reloading) never sees half a page, and two sweeps
    # ending at once do not write into one temp file
    write_text_atomic(out, render_report(load_inputs(results)))
    return out


def write_sweep_report(results: Path) -> str:
    """The report a sweep writes at its end, beside its results; the line to print. A report that cannot be written
    never fails the sweep: the line says why and how to retry."""
    from evalkit.core.errors import EvalkitError

    if not (results / "scores").is_dir():
        return f"report: not written ({results / 'scores'} holds no results yet)"
    try:
        return f"report: {write_report(results, results / 'report.html').resolve()}"
    except (EvalkitError, OSError, ValueError) as err:
        return f"report: not written ({err}); retry with `evalkit report --results {results}`"
