"""The `perf` table: one row per (model, format, use case, mode, rate), derived from the perf cells' committed
samples rows (so it is exactly as complete and as fresh as those cells), written to `results/perf/perf.parquet`.

The columns are defined once here (`PerfRow`, `PERF_SCHEMA`); an assertion keeps the two in step.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from evalkit.benchmarks.perf.names import LATENCIES, PERCENTILES, Hardware
from evalkit.results.store import ResultsStore
from evalkit.util.files import write_atomic

SUITE = "perf"
"""`suite` of every perf benchmark (conf/benchmarks/perf*.yaml)."""


@dataclass(frozen=True)
class PerfRow:
    """One load-generator run. Latencies in milliseconds over successful requests, warm-up excluded."""

    model: str
    format: str
    benchmark: str
    use_case: str
    prompt_tokens: int
    output_tokens: int
    mode: str
    """sync (concurrency 1), throughput (all requests at once), constant (a fixed request rate)."""
    rate: float | None
    """Target requests/s of a constant-rate run; null otherwise."""
    repeat: int
    """1, 2, ...: repeated runs of one (mode, rate), for the spread."""
    requests: int
    errors: int
    requests_per_s: float
    output_tokens_per_s: float
    ttft_p50_ms: float
    ttft_p90_ms: float
    ttft_p99_ms: float
    itl_p50_ms: float
    itl_p90_ms: float
    itl_p99_ms: float
    e2el_p50_ms: float
    e2el_p90_ms: float
    e2el_p99_ms: float
    hardware: str
    """Where it was measured: "1x NVIDIA H100 80GB HBM3", or "CPU <model> (<n> cores)"."""
    hardware_kind: str
    """gpu or cpu."""
    hardware_name: str
    """GPU name or CPU model alone ("NVIDIA H100 80GB HBM3"): its type is what a price table lists."""
    hardware_count: int
    """GPUs the server held (or cores the CPU run used): what cost per query is priced on."""
    vllm_command: str | None
    """The server's command line (its vLLM arguments)."""
    cell_id: str
    run_id: str


PERF_SCHEMA = pa.schema(
    [
        ("model", pa.string()),
        ("format", pa.string()),
        ("benchmark", pa.string()),
        ("use_case", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("mode", pa.string()),
        ("rate", pa.float64()),
        ("repeat", pa.int64()),
        ("requests", pa.int64()),
        ("errors", pa.int64()),
        ("requests_per_s", pa.float64()),
        ("output_tokens_per_s", pa.float64()),
        *[(f"{m}_p{p}_ms", pa.float64()) for m in LATENCIES for p in PERCENTILES],
        ("hardware", pa.string()),
        ("hardware_kind", pa.string()),
        ("hardware_name", pa.string()),
        ("hardware_count", pa.int64()),
        ("vllm_command", pa.string()),
        ("cell_id", pa.string()),
        ("run_id", pa.string()),
    ]
)
assert [f.name for f in fields(PerfRow)] == PERF_SCHEMA.names


def perf_rows(samples: pd.DataFrame, perf_benchmarks: set[str]) -> list[PerfRow]:
    """The perf rows of the samples of these benchmarks (pure)."""
    rows = []
    for rec in samples[samples["benchmark"].isin(perf_benchmarks)].to_dict("records"):
        d = json.loads(rec["response"])
        m = dict(rec["metrics"])
        hw = Hardware(**d["hardware"])
        rows.append(
            PerfRow(
                model=rec["model"],
                format=rec["format"],
                benchmark=rec["benchmark"],
                use_case=d["use_case"]["name"],
                prompt_tokens=int(d["use_case"]["prompt_tokens"]),
                output_tokens=int(d["use_case"]["output_tokens"]),
                mode=d["mode"],
                rate=d["rate"],
                repeat=int(d.get("repeat", 1)),
                requests=int(m["requests"]),
                errors=int(m["errors"]),
                requests_per_s=m["requests_per_s"],
                output_tokens_per_s=m["output_tokens_per_s"],
                **{f"{n}_p{p}_ms": m[f"{n}_p{p}_ms"] for n in LATENCIES for p in PERCENTILES},
                hardware=hw.label,
                hardware_kind=hw.kind,
                hardware_name=hw.name,
                hardware_count=hw.count,
                vllm_command=d.get("vllm_command"),
                cell_id=rec["cell_id"],
                run_id=rec["run_id"],
            )
        )
    return rows


def to_frame(rows: list[PerfRow]) -> pd.DataFrame:
    table = pa.Table.from_pylist([asdict(r) for r in rows], schema=PERF_SCHEMA)
    return table.to_pandas()


def read_perf(results: Path) -> pd.DataFrame:
    """The perf table of a results folder, from its committed perf cells."""
    store = ResultsStore(results)
    scores = store.read_scores(["model", "format", "benchmark", "suite", "status"])
    benchmarks = set(scores.loc[(scores["suite"] == SUITE) & (scores["status"] == "ok"), "benchmark"])
    samples = store.read_samples() if benchmarks else pd.DataFrame(columns=["benchmark"])
    return to_frame(perf_rows(samples, benchmarks))


def write_perf(frame: pd.DataFrame, results: Path) -> Path:
    out = results / "perf" / "perf.parquet"
    table = pa.Table.from_pandas(frame, schema=PERF_SCHEMA, preserve_index=False)
    return write_atomic(out, lambda tmp: pq.write_table(table, tmp))


def render_curves(perf: pd.DataFrame) -> str:
    """The latency-throughput table per (model, format, use case): one line per run, in sweep order."""
    order = {"sync": 0, "throughput": 2, "constant": 1}
    lines = []
    for (model, hw), grp in perf.groupby(["model", "hardware"], sort=True):
        lines.append(f"{model} on {hw} (latencies p50 / p99, ms)")
        lines.append(
            f"  {'format':<7} {'use case':<22} {'run':<16} {'req/s':>7} {'out tok/s':>9} {'TTFT':>15} {'ITL':>13} "
            f"{'E2E':>15} {'err':>4}"
        )
        grp = grp.assign(_o=grp["mode"].map(order), _r=grp["rate"].fillna(0.0))
        for r in grp.sort_values(["format", "use_case", "_o", "_r", "repeat"]).to_dict("records"):
            run = r["mode"] if pd.isna(r["rate"]) else f"{r['mode']}@{r['rate']:.3g}"
            run += f" #{r['repeat']}" if r["repeat"] > 1 else ""
            lines.append(
                f"  {r['format']:<7} {r['use_case'][:22]:<22} {run:<16} {r['requests_per_s']:7.2f} "
                f"{r['output_tokens_per_s']:9.1f} {r['ttft_p50_ms']:7.0f}/{r['ttft_p99_ms']:<7.0f} "
                f"{r['itl_p50_ms']:6.1f}/{r['itl_p99_ms']:<6.1f} {r['e2el_p50_ms']:7.0f}/{r['e2el_p99_ms']:<7.0f} "
                f"{r['errors']:4d}"
            )
    return "\n".join(lines)
