"""jobs/<sweep>/slurm_jobs.json: round trip, history of submissions, atomic appends, a clear error when unreadable."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from evalkit.core.cell import CellKey
from evalkit.core.errors import SlurmError
from evalkit.launch import record
from evalkit.launch.record import Submission, SubmittedJob, SweepRecord


def job(
    job_id: str, kind: str = "eval", cells: list[str] | None = None, after: list[str] | None = None
) -> SubmittedJob:
    return SubmittedJob(
        job_id=job_id,
        kind=kind,  # type: ignore[arg-type]
        name="m.f",
        cells=cells or [],
        depends_on=after or [],
        resources={"cpus_per_task": 2, "mem_gb": 12},
        job_dir="/jobs/s/m.f",
        stdout=f"/jobs/s/m.f/slurm-{job_id}.out",
        stderr=f"/jobs/s/m.f/slurm-{job_id}.err",
    )


FIRST = Submission(
    "2026-11-23T18:00:00+00:00",
    ["launcher=slurm", "format=bf16,fp8"],
    [
        job("7", "quantize", ["m__fp8__b"]),
        job("8_0", cells=["m__bf16__b"]),
        job("8_1", cells=["m__fp8__b"], after=["7"]),
    ],
)
SECOND = Submission("2026-11-23T19:00:00+00:00", ["launcher=slurm"], [job("12", cells=["m__fp8__b"])])


def test_round_trip() -> None:
    rec = SweepRecord("s", [FIRST, SECOND])
    assert record.from_json(record.to_json(rec)) == rec
    assert json.loads(record.to_json(rec))["version"] == record.FORMAT_VERSION


def test_a_cells_job_is_the_latest_submitted() -> None:
    rec = SweepRecord("s", [FIRST, SECOND])
    found = rec.job_for_cell(CellKey("m", "fp8", "b"))
    assert found is not None and found[0] is SECOND and found[1].job_id == "12"
    assert rec.job_for_cell(CellKey("m", "bf16", "b"))[1].job_id == "8_0"  # type: ignore[index]
    assert rec.job_for_cell(CellKey("m", "int4", "b")) is None
    assert rec.job("7") is not None and rec.job("7").kind == "quantize"  # type: ignore[union-attr]


def test_jobs_for_cells_selects_evals_and_their_own_quantize_jobs() -> None:
    rec = SweepRecord("s", [FIRST])
    assert [j.job_id for j in rec.jobs_for(None)] == ["7", "8_0", "8_1"]
    assert [j.job_id for j in rec.jobs_for({CellKey("m", "fp8", "b")})] == ["7", "8_1"]
    assert [j.job_id for j in rec.jobs_for({CellKey("m", "bf16", "b")})] == ["8_0"]
    # all of the sweep's cells: the whole sweep, aggregate job included
    whole = SweepRecord("s", [Submission("t", [], [*FIRST.jobs, job("9", "aggregate", after=["7", "8"])])])
    assert [j.job_id for j in whole.jobs_for({CellKey("m", f, "b") for f in ("bf16", "fp8", "w4a16")})] == [
        "7",
        "8_0",
        "8_1",
        "9",
    ]


def test_append_keeps_history_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    assert record.read(tmp_path) is None
    record.append(tmp_path, "s", FIRST)
    rec = record.append(tmp_path, "s", SECOND)
    assert record.read(tmp_path) == rec == SweepRecord("s", [FIRST, SECOND])
    assert sorted(p.name for p in tmp_path.iterdir()) == [".slurm_jobs.json.lock", "slurm_jobs.json"]


def test_concurrent_appends_lose_nothing(tmp_path: Path) -> None:
    subs = [Submission(f"t{i}", [], [job(str(i))]) for i in range(8)]
    threads = [threading.Thread(target=record.append, args=(tmp_path, "s", s)) for s in subs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rec = record.read(tmp_path)
    assert rec is not None and sorted(rec.job_ids(), key=int) == [str(i) for i in range(8)]


@pytest.mark.parametrize("text", ["{", '{"version": 99, "sweep": "s", "submissions": []}', '{"version": 1}'])
def test_unreadable_record_says_what_to_do(tmp_path: Path, text: str) -> None:
    record.path_of(tmp_path).write_text(text)
    with pytest.raises(SlurmError, match="is not a record of submitted jobs") as err:
        record.read(tmp_path)
    assert "next:" in err.value.message
