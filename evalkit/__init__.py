"""evalkit: evaluation-harness orchestrator for quantized LLMs.

Declare models x quantization formats x benchmarks in Hydra configs (`conf/`), run the grid
locally or on Slurm (one vLLM server per model x format), and get Parquet tables of scores,
per-sample records and recovery tables (quantized / baseline).
"""

__version__ = "0.1.0"
