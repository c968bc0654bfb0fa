"""What a GPU type can do (peak FLOP/s per number format, memory bandwidth) and what a vLLM server is assumed to
reach of it: the throughput table the cost estimate reads (conf/hardware/throughput.yaml). Pure apart from reading
the file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from evalkit.core.errors import ConfigError

DEFAULT_THROUGHPUT = Path(__file__).resolve().parents[2] / "conf" / "hardware" / "throughput.yaml"


@dataclass(frozen=True)
class GpuSpec:
    tflops: dict[str, float]
    """Dense tensor-core peak per compute type (bf16, fp8, int8), TFLOP/s."""
    memory_tb_s: float

    def peak_flops(self, compute: str) -> float:
        """FLOP/s in `compute`, or in bf16 where this GPU has no units for it (FP8 before Hopper)."""
        return 1e12 * self.tflops.get(compute, self.tflops["bf16"])


@dataclass(frozen=True)
class FormatCost:
    compute: str
    """The number format the GEMMs run in (bf16, fp8, int8)."""
    weight_bytes: float
    """Bytes per weight, scales included."""


@dataclass(frozen=True)
class ThroughputTable:
    gpus: dict[str, GpuSpec]
    formats: dict[str, FormatCost]
    prefill_utilization: float
    decode_bandwidth_utilization: float
    startup_min: float
    margin: float

    def gpu(self, gpu_type: str) -> GpuSpec:
        """The spec of a GPU type named as a job asks for it ("h100", "A100-80GB": matched by the family name)."""
        upper = gpu_type.upper()
        for name, spec in self.gpus.items():
            if name in upper:
                return spec
        raise ConfigError(
            f"no throughput figures for GPU type {gpu_type!r}",
            hint=f"known: {', '.join(self.gpus)} (conf/hardware/throughput.yaml); add its datasheet peaks there",
        )

    def format(self, name: str) -> FormatCost:
        if name not in self.formats:
            raise ConfigError(
                f"no throughput figures for format {name!r}",
                hint=f"known: {', '.join(self.formats)}; add it under formats in conf/hardware/throughput.yaml",
            )
        return self.formats[name]


def load_throughput(path: Path = DEFAULT_THROUGHPUT) -> ThroughputTable:
    try:
        doc = yaml.safe_load(path.read_text())
        return ThroughputTable(
            gpus={
                str(k): GpuSpec({str(c): float(f) for c, f in v["tflops"].items()}, float(v["memory_tb_s"]))
                for k, v in doc["gpus"].items()
            },
            formats={
                str(k): FormatCost(str(v["compute"]), float(v["weight_bytes"])) for k, v in doc["formats"].items()
            },
            prefill_utilization=float(doc["utilization"]["prefill"]),
            decode_bandwidth_utilization=float(doc["utilization"]["decode_bandwidth"]),
            startup_min=float(doc["startup_min"]),
            margin=float(doc["margin"]),
        )
    except (OSError, KeyError, TypeError, ValueError, AttributeError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"throughput table {path} is unreadable ({type(exc).__name__}: {exc})",
            hint="see conf/hardware/throughput.yaml for the fields it needs",
        ) from exc
