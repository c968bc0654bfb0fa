"""A dying server's cause is read from its log: the first exception, not the shutdown noise after it."""

from __future__ import annotations

from pathlib import Path

from evalkit.serve.crash import first_exception

DATA = Path(__file__).with_name("data")


def test_w4a16_on_avx2_names_the_missing_kernel() -> None:
    """An excerpt of the log of the W4A16 server that died on an AVX2-only CPU (issue 16): the cause is 15 lines
    above the end, under an EngineDeadError and shutdown noise."""
    crash = first_exception((DATA / "w4a16_avx2_crash.log").read_text())
    assert crash is not None
    assert crash.type == "AttributeError"
    assert crash.message == "'_OpNamespace' '_C' object has no attribute 'cpu_gemm_wna16'"
    assert crash.frame == "vllm/_custom_ops.py:4453 in cpu_gemm_wna16"  # the innermost frame in vLLM, not torch's
    assert str(crash).startswith("AttributeError: '_OpNamespace' '_C' object has no attribute 'cpu_gemm_wna16'")


def test_plain_python_traceback_and_chained_cause() -> None:
    log = (
        "INFO starting\n"
        "Traceback (most recent call last):\n"
        '  File "/x/site-packages/vllm/config/model.py", line 12, in validate\n'
        "    raise ValueError('bad dtype')\n"
        "ValueError: bad dtype\n"
        "\n"
        "The above exception was the direct cause of the following exception:\n"
        "\n"
        "Traceback (most recent call last):\n"
        '  File "/x/main.py", line 3, in <module>\n'
        "pydantic_core._pydantic_core.ValidationError: 1 validation error\n"
    )
    crash = first_exception(log)
    assert crash is not None and (crash.type, crash.message) == ("ValueError", "bad dtype")
    assert crash.frame == "vllm/config/model.py:12 in validate"


def test_no_traceback_no_cause() -> None:
    assert first_exception("INFO a\nKilled\n") is None
    only_noise = 'Traceback (most recent call last):\n  File "/a.py", line 1, in f\nKeyboardInterrupt\n'
    assert first_exception(only_noise) is None
