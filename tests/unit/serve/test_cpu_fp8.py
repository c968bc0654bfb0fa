"""The CPU FP8 GEMM substitute computes what torch._scaled_mm computes, and is installed only when asked for."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from evalkit.serve.cpu_fp8 import ENV, WidenedWeights, scaled_mm_fp32

FP8 = [torch.float8_e4m3fn, torch.float8_e5m2]


@pytest.mark.parametrize("dtype", FP8)
@pytest.mark.parametrize("out_dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("per_row", [False, True])
def test_equals_torch_scaled_mm(dtype: torch.dtype, out_dtype: torch.dtype, per_row: bool) -> None:
    g = torch.Generator().manual_seed(0)
    a = (torch.randn(9, 96, generator=g) * 4).to(dtype)
    b = torch.randn(40, 96, generator=g).to(dtype).t()  # vLLM passes the weight transposed, as here
    if per_row:  # vLLM's channel-wise FP8: per-token activation scales, per-channel weight scales
        sa, sb = torch.rand(9, 1, generator=g) + 0.5, torch.rand(1, 40, generator=g) + 0.5
    else:
        sa, sb = torch.tensor([0.7]), torch.tensor([1.3])
    bias = torch.randn(40, generator=g).to(out_dtype) if out_dtype == torch.bfloat16 and per_row else None
    want = torch._scaled_mm(a, b, scale_a=sa, scale_b=sb, bias=bias, out_dtype=out_dtype)
    got = scaled_mm_fp32(a, b, sa, sb, bias, out_dtype)
    assert got.dtype == want.dtype and got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)  # fp32 rounding of the scaling order only


PROBE = """
import torch
from evalkit.serve.cpu_fp8 import register
register(); register()  # vLLM may load plugins more than once per process
a = torch.randn(4, 32).to(torch.float8_e4m3fn); b = torch.randn(8, 32).to(torch.float8_e4m3fn).t()
one = torch.ones(1)
torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.float32)
print(getattr(torch._scaled_mm, "__evalkit_cpu_fp8__", False))
"""


@pytest.mark.parametrize(("value", "installed"), [("fp32", "True"), (None, "False")])
def test_installed_only_when_the_server_environment_asks(value: str | None, installed: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != ENV} | ({ENV: value} if value else {})
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == installed


def test_vllm_finds_the_plugin() -> None:
    from importlib.metadata import entry_points

    plugins = {ep.name: ep.value for ep in entry_points(group="vllm.general_plugins")}
    assert plugins.get("evalkit_cpu_fp8") == "evalkit.serve.cpu_fp8:register"


def test_weights_are_widened_once_and_only_parameters_are_kept() -> None:
    weight = torch.nn.Parameter(torch.randn(40, 96).to(torch.float8_e4m3fn), requires_grad=False)
    cache = WidenedWeights(budget_bytes=1 << 20)
    first = cache.get(weight.t())  # vLLM passes a transposed view of the parameter
    assert first is cache.get(weight.t()) and cache.used_bytes == first.nbytes
    assert torch.equal(first, weight.t().to(torch.float32))
    assert cache.get(torch.randn(96, 40).to(torch.float8_e4m3fn)) is None  # activations: never kept

    with torch.no_grad():  # a weight changed in place is widened again, not served stale
        weight.copy_(torch.randn(40, 96).to(torch.float8_e4m3fn))
    assert torch.equal(cache.get(weight.t()), weight.t().to(torch.float32))


def test_budget_bounds_the_copies() -> None:
    small = WidenedWeights(budget_bytes=40 * 96 * 4)  # room for one fp32 copy
    w1, w2 = (torch.nn.Parameter(torch.randn(40, 96).to(torch.float8_e5m2), requires_grad=False) for _ in range(2))
    small.get(w1)
    assert torch.equal(small.get(w2), w2.to(torch.float32))  # still correct, just not kept
    assert small.used_bytes == 40 * 96 * 4
