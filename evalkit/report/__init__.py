"""A self-contained HTML report of a results folder: recovery heatmap with verdicts, per-task forest plots and flips,
output divergence, performance and cost, the noise floor, failed cells and provenance. Figures are Vega-Lite
(Altair) rendered to inline SVG; the page needs no network.

`render_report(ReportInputs) -> str` is pure (tested on hand-made tables); `load_inputs(results)` reads a results
folder and runs `evalkit.compare` on it; `write_report` does both and writes the file."""

from evalkit.report.inputs import ReportInputs, load_inputs
from evalkit.report.page import SECTIONS, render_report, write_report, write_sweep_report

__all__ = ["SECTIONS", "ReportInputs", "load_inputs", "render_report", "write_report", "write_sweep_report"]
