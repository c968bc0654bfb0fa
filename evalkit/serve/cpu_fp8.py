"""A vLLM plugin that makes FP8 (W8A8-FP) checkpoints servable on CPU, with the same arithmetic as on a GPU.

vLLM serves compressed-tensors FP8 on CPU through `torch._scaled_mm`, whose CPU implementation in PyTorch 2.13 is a
reference loop: one 576x1536 product of the demo model took 12.8 s for 512 rows here, against 14 ms for the same product
in fp32 (`python -m evalkit.serve.cpu_fp8` prints the comparison). Serving the demo model's FP8 checkpoint then ran at
well under one prompt token per second, so no FP8 cell finished.

What this changes, and only when the server's environment sets EVALKIT_CPU_FP8_MATMUL=fp32 (conf/server/cpu.yaml
does; nothing on a GPU does): `torch._scaled_mm` on CPU FP8 operands multiplies the *same* FP8 operands after an
exact widening to fp32 (every e4m3/e5m2 value, and every product of two, is exact in fp32) with fp32 accumulation,
then applies the scales, the bias and the output dtype as `_scaled_mm` does. The checkpoint, vLLM's dynamic per-token
activation quantization and the weight scales are untouched, so the numbers are those of an FP8 W8A8 GEMM up to the
order of summation. Any other call (GPU tensors, non-FP8 dtypes, `scale_result`) goes to PyTorch's own function.
Weights are widened once and kept (`WidenedWeights`, bounded by EVALKIT_CPU_FP8_CACHE_MB), since widening a weight
per call would cost more than the product when decoding.

vLLM loads it in every server process through the `vllm.general_plugins` entry point (pyproject.toml); it is inert
unless the variable is set, so installing evalkit beside a GPU vLLM changes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

ENV = "EVALKIT_CPU_FP8_MATMUL"
"""Set to "fp32" in the vLLM server's environment to enable the substitute."""
CACHE_ENV = "EVALKIT_CPU_FP8_CACHE_MB"
"""MiB of fp32 weight copies kept per server process (default 4096: the demo model needs ~420)."""


def scaled_mm_fp32(
    a: Any,
    b: Any,
    scale_a: Any,
    scale_b: Any,
    bias: Any = None,
    out_dtype: Any = None,
    b_fp32: Any = None,
) -> Any:
    """`torch._scaled_mm(a, b, scale_a, scale_b, bias, out_dtype=...)` for CPU FP8 operands: (a @ b) in fp32 with
    exact FP8 -> fp32 widening, times scale_a (per tensor or per row) and scale_b (per tensor or per column).
    `b_fp32`: `b` already widened (a weight, widened once and reused)."""
    import torch

    out = torch.mm(a.to(torch.float32), b.to(torch.float32) if b_fp32 is None else b_fp32)
    out = out * scale_a.to(torch.float32) * scale_b.to(torch.float32)
    if bias is not None:
        out = out + bias.to(torch.float32)
    return out.to(out_dtype if out_dtype is not None else a.dtype)


class DerivedWeights:
    """fp32 weights derived once from a layer's stored weights (widened FP8 here, dequantized int4 in `cpu_w4a16`):
    widening a 576x1536 weight costs 3.2 ms, nine times the product itself at 16 decode rows. Only parameters (vLLM's
    weights) are kept, each with references to its source tensors so their memory cannot be freed and reused under
    the same key; a byte budget bounds the copies (beyond it, derive per call)."""

    def __init__(self, budget_bytes: int) -> None:
        import torch

        self._torch = torch  # get() runs for every linear layer of every step: no import on that path
        self.budget_bytes = budget_bytes
        self.used_bytes = 0
        self._entries: dict[tuple[Any, ...], tuple[tuple[Any, ...], Any]] = {}

    def get(self, b: Any, derive: Callable[[], Any], *also: Any) -> Any:
        """`derive()`, computed once per parameter `b` (and the tensors `also` it reads besides), None when `b` is
        not a parameter (an activation: nothing to keep)."""
        torch = self._torch
        if not isinstance(b, torch.nn.Parameter) and not isinstance(b._base, torch.nn.Parameter):
            return None
        key = tuple(
            (t.data_ptr(), tuple(t.shape), tuple(t.stride()), t.dtype, t._version) for t in (b, *also) if t is not None
        )
        entry = self._entries.get(key)
        if entry is not None:
            return entry[1]
        derived = derive()
        if self.used_bytes + derived.nbytes <= self.budget_bytes:
            self._entries[key] = ((b, *also), derived)
            self.used_bytes += derived.nbytes
        return derived


class WidenedWeights(DerivedWeights):
    """fp32 copies of FP8 weights, made once (see `DerivedWeights`)."""

    def get(self, b: Any, derive: Callable[[], Any] | None = None, *also: Any) -> Any:
        return super().get(b, derive or (lambda: b.to(self._torch.float32)), *also)


def register() -> None:
    """vLLM general-plugin hook: install the substitute if the environment asks for it (idempotent)."""
    if os.environ.get(ENV, "").lower() != "fp32":
        return
    import torch

    original = torch._scaled_mm
    if getattr(original, "__evalkit_cpu_fp8__", False):
        return
    fp8 = {torch.float8_e4m3fn, torch.float8_e5m2}
    weights = WidenedWeights(int(os.environ.get(CACHE_ENV, "4096")) << 20)

    def _scaled_mm(
        a: Any,
        b: Any,
        scale_a: Any,
        scale_b: Any,
        bias: Any = None,
        scale_result: Any = None,
        out_dtype: Any = None,
        use_fast_accum: bool = False,
    ) -> Any:
        if a.device.type == "cpu" and a.dtype in fp8 and b.dtype in fp8 and scale_result is None:
            return scaled_mm_fp32(a, b, scale_a, scale_b, bias, out_dtype, b_fp32=weights.get(b))
        return original(
            a,
            b,
            scale_a=scale_a,
            scale_b=scale_b,
            bias=bias,
            scale_result=scale_result,
            out_dtype=out_dtype,
            use_fast_accum=use_fast_accum,
        )

    _scaled_mm.__evalkit_cpu_fp8__ = True  # type: ignore[attr-defined]  # marks the function as installed
    torch._scaled_mm = _scaled_mm  # type: ignore[assignment]  # torch declares a keyword `out=` the substitute lacks


if __name__ == "__main__":  # the measurement quoted above
    import time

    import torch

    torch.set_num_threads(1)
    for rows in (1, 32, 512):
        a = torch.randn(rows, 576).to(torch.float8_e4m3fn)
        b = torch.randn(1536, 576).to(torch.float8_e4m3fn).t()
        one = torch.ones(1)
        t0 = time.perf_counter()
        torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.float32)
        t1 = time.perf_counter()
        scaled_mm_fp32(a, b, one, one, out_dtype=torch.float32)
        t2 = time.perf_counter()
        shape = f"{rows:4d} rows x 576 @ 576 x 1536"
        print(f"{shape}: torch._scaled_mm {1e3 * (t1 - t0):9.1f} ms, fp32 {1e3 * (t2 - t1):6.1f} ms")
