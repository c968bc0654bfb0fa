"""The CPU facts are pure functions of /proc/cpuinfo: both kinds of machine are tested here from their flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit.serve.cpu_support import (
    CPU_NATIVE,
    FP8_ENV,
    W4A16_ENV,
    CpuInfo,
    format_support,
    parse_cpuinfo,
    read_cpuinfo,
    serving_dtype,
    vllm_op_library,
)

# The flags lines of the two kinds this project runs on (abridged to what matters plus neighbours).
EPYC_AVX2 = (
    "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\n"
    "flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi1 bmi2 sha_ni vaes vpclmulqdq\n\n"
    "processor\t: 1\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2\n"
)
XEON_AMX = (
    "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz\n"
    "flags\t\t: fpu avx avx2 fma avx512f avx512dq avx512bw avx512vl avx512_vnni avx512_bf16 amx_bf16 amx_tile\n\n"
)
SKYLAKE_AVX512 = "model name\t: Intel(R) Xeon(R) Gold 6148\nflags\t\t: avx2 fma avx512f avx512dq avx512bw avx512vl\n"

EPYC, XEON, SKYLAKE = parse_cpuinfo(EPYC_AVX2), parse_cpuinfo(XEON_AMX), parse_cpuinfo(SKYLAKE_AVX512)
PLUGINS = {FP8_ENV, W4A16_ENV}


def test_parse_reads_the_first_processor() -> None:
    assert EPYC.model == "AMD EPYC"
    assert "avx2" in EPYC.flags and "sha_ni" in EPYC.flags and "avx512f" not in EPYC.flags
    assert XEON.model.startswith("Intel(R) Xeon(R) Platinum 8481C")
    assert parse_cpuinfo("").model == "unknown CPU" and not parse_cpuinfo("").flags


def test_this_machine_is_read(tmp_path: Path) -> None:
    assert read_cpuinfo().model != "unknown CPU"  # /proc/cpuinfo exists on the Linux machines we test on
    assert read_cpuinfo(tmp_path / "missing").flags == frozenset()  # unreadable: every choice is the safe one


def test_bf16_only_where_native() -> None:
    assert serving_dtype(CPU_NATIVE, XEON).dtype == "bfloat16"
    epyc = serving_dtype(CPU_NATIVE, EPYC)
    assert epyc.dtype == "float32"
    assert "AMD EPYC" in epyc.reason and "no native bf16" in epyc.reason
    assert serving_dtype(CPU_NATIVE, SKYLAKE).dtype == "float32"  # AVX-512 without its bf16 extension


@pytest.mark.parametrize("explicit", ["bfloat16", "float32", "auto"])
def test_an_explicit_dtype_wins(explicit: str) -> None:
    for cpu in (EPYC, XEON):
        assert serving_dtype(explicit, cpu).dtype == explicit


def test_op_library_as_vllm_picks_it() -> None:
    assert vllm_op_library(EPYC) == "_C_AVX2"
    assert vllm_op_library(XEON) == "_C"
    assert vllm_op_library(SKYLAKE) == "_C_AVX512"
    assert vllm_op_library(CpuInfo("Graviton", frozenset(), arch="aarch64")) == "other"


def test_w4a16_on_each_kind() -> None:
    native = format_support("W4A16", XEON, "bfloat16", PLUGINS)
    assert native.how == "native" and "cpu_gemm_wna16" in native.detail
    avx2 = format_support("W4A16", EPYC, "float32", PLUGINS)
    assert avx2.how == "plugin" and "_C_AVX2 has no cpu_gemm_wna16" in avx2.detail
    # AVX-512 has the kernel, but float32 activations (no native bf16 there) are not what it takes
    assert format_support("W4A16", SKYLAKE, "float32", PLUGINS).how == "plugin"
    refused = format_support("W4A16", EPYC, "float32", {FP8_ENV})
    assert not refused.servable and W4A16_ENV in refused.fix


def test_other_formats() -> None:
    assert format_support(None, EPYC, "float32", PLUGINS).how == "native"
    slow = format_support("bf16", EPYC, "bfloat16", PLUGINS)
    assert slow.how == "emulated" and CPU_NATIVE in slow.fix
    assert format_support("FP8_DYNAMIC", EPYC, "float32", PLUGINS).how == "plugin"
    assert format_support("FP8_DYNAMIC", XEON, "bfloat16", set()).how == "emulated"
    assert format_support("W8A8", EPYC, "float32", set()).how == "native"
