"""The lm-eval adapter's own checks before any lm-eval process starts. No lm-eval import, no network."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from lm_eval_conf import CATALOG, ENDPOINT, settings_of

from evalkit.benchmarks.base import RunContext
from evalkit.benchmarks.lm_eval.adapter import LmEvalSuite
from evalkit.core.errors import ConfigError


def test_ruler_lengths_beyond_the_servers_context_fail_before_lm_eval_starts(tmp_path: Path) -> None:
    small = replace(ENDPOINT, max_model_len=8192)
    ctx = RunContext(endpoint=small, work_dir=tmp_path, settings=LmEvalSuite().parse_settings(settings_of("ruler")))
    with pytest.raises(ConfigError) as err:
        LmEvalSuite(catalog=lambda: CATALOG, python="/nonexistent").generate(ctx)
    assert "RULER lengths [16384, 32768, 65536, 131072] exceed the server's max_model_len 8192" in err.value.message
    assert not (tmp_path / "lm_eval").exists()


def test_a_run_that_lost_its_server_is_one_line() -> None:
    from evalkit.benchmarks.lm_eval.adapter import lost_server

    log = (Path(__file__).with_name("data") / "lost_server.log").read_text()  # a run whose server died
    assert lost_server(log) == "Cannot connect to host 127.0.0.1:45999"
    assert lost_server("Traceback (most recent call last):\nValueError: no task named x\n") is None


def test_generate_and_data_sources_check_what_parsing_leaves_to_validation(tmp_path: Path) -> None:
    """The job's record is parsed, not validated (`parse_settings` accepts a suite without runs): the phases that
    run or list the runs check the rest themselves, as `validate` would."""
    suite = LmEvalSuite(catalog=lambda: CATALOG, python="/nonexistent")
    settings = suite.parse_settings({"runs": []})
    for phase, endpoint in ((suite.generate, ENDPOINT), (suite.data_sources, None)):
        with pytest.raises(ConfigError, match=r"settings\.runs is empty"):
            phase(RunContext(endpoint=endpoint, work_dir=tmp_path, settings=settings))
    assert not (tmp_path / "lm_eval").exists()
