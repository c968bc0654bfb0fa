"""Derived tables (aggregate's recovery, compare's comparisons, the perf table, the report) are replaced whole: real
processes write them at once while another reads them in a loop, through the functions the commands call. And the
one JSON-lines reader."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import evalkit
from evalkit.util.files import JsonLineError, read_jsonl

ENV = {"PYTHONPATH": str(Path(evalkit.__file__).resolve().parent.parent)}

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import pandas as pd
    import pyarrow as pa
    from evalkit.perf.table import PERF_SCHEMA, write_perf
    from evalkit.report.page import write_text_atomic
    from evalkit.results.aggregate import write_recovery
    root, n = Path(sys.argv[1]), int(sys.argv[2])
    for i in range(n):
        rows = 200 + 150 * (i % 5)  # sizes differ, so an in-place write shows as a short or mixed file
        write_recovery(pd.DataFrame({"model": ["m"] * rows, "score": [float(i)] * rows}), root)
        perf = pa.Table.from_pylist([{"model": "m", "repeat": i}] * rows, schema=PERF_SCHEMA).to_pandas()
        write_perf(perf, root)
        write_text_atomic(root / "report.html", "<html>" + "x" * 1000 * rows + "</html>")
    print("ok", flush=True)
    """
)

READER = textwrap.dedent(
    """
    import json, sys, traceback
    from pathlib import Path
    import pandas as pd
    root, stop = Path(sys.argv[1]), Path(sys.argv[2])
    reads, torn = 0, []
    while not stop.exists():
        for path in (root / "aggregate" / "recovery.parquet", root / "perf" / "perf.parquet"):
            try:
                pd.read_parquet(path)
            except FileNotFoundError:
                continue
            except Exception as exc:
                torn.append(f"{path.name}: {type(exc).__name__}: {str(exc)[:100]}")
            reads += 1
        for path, check in ((root / "aggregate" / "recovery.csv", lambda t: t.endswith("\\n") and t.count(",") > 0),
                            (root / "report.html", lambda t: t.startswith("<html>") and t.endswith("</html>"))):
            try:
                text = path.read_text()
            except FileNotFoundError:
                continue
            if not check(text):
                torn.append(f"{path.name}: {len(text)} chars")
            reads += 1
    print(json.dumps({"reads": reads, "torn": len(torn), "first": torn[:3]}), flush=True)
    """
)


def _spawn(script: str, *args: object) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-c", script, *map(str, args)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def test_concurrent_writers_of_derived_tables_never_show_a_torn_file(tmp_path: Path) -> None:
    """Before: 2 x 3 concurrent `aggregate` runs let a reader see 11 torn recovery.parquet ("file size is 4
    bytes"): the tables were written in place. Three writers x 40 rewrites of each table, one reader."""
    root, stop = tmp_path / "results", tmp_path / "stop"
    reader = _spawn(READER, root, stop)
    writers = [_spawn(WRITER, root, 40) for _ in range(3)]
    try:
        outs = [w.communicate(timeout=300) for w in writers]
        assert all(w.returncode == 0 for w in writers), [err[-2000:] for _, err in outs]
        stop.touch()
        out, err = reader.communicate(timeout=60)
    finally:
        stop.touch()
        for p in [reader, *writers]:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert reader.returncode == 0, err[-2000:]
    report = json.loads(out.strip().splitlines()[-1])
    assert report["reads"] > 50, report
    assert report["torn"] == 0, report
    # nothing of the temporary files is left beside the tables
    left = [p.name for p in root.rglob("*") if p.is_file()]
    assert sorted(left) == ["perf.parquet", "recovery.csv", "recovery.parquet", "report.html"]


def test_a_write_that_fails_leaves_the_old_table(tmp_path: Path) -> None:
    from evalkit.util.files import write_atomic

    table = tmp_path / "t.csv"
    table.write_text("old\n")

    def broken(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_atomic(table, broken)
    assert table.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]


def test_read_jsonl_names_the_bad_line_or_hands_it_over_and_cuts_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2\n{"a": 3}\n{"a"', encoding="utf-8")
    with pytest.raises(JsonLineError, match=r"rows\.jsonl line 3 is not JSON") as err:
        list(read_jsonl(path))
    assert err.value.lineno == 3
    bad: list[JsonLineError] = []
    assert list(read_jsonl(path, on_bad_line=bad.append)) == [(1, {"a": 1}), (4, {"a": 3})]
    assert [e.lineno for e in bad] == [3, 5]
    # a torn tail is cut off the file itself, so the next append starts on its own line
    assert [n for n, _ in read_jsonl(path, cut_torn_tail=True, on_bad_line=bad.append)] == [1, 4]
    assert path.read_text(encoding="utf-8").endswith('{"a": 3}\n')
    gz = tmp_path / "rows.jsonl.gz"
    gz.write_bytes(gzip.compress(b'{"b": 1}\n'))
    assert list(read_jsonl(gz)) == [(1, {"b": 1})]
