"""Shared by the lm-eval unit tests: the shipped suites' settings, a served endpoint, a small task index."""

from __future__ import annotations

import yaml
from paths import REPO

from evalkit.benchmarks.base import Endpoint
from evalkit.benchmarks.lm_eval.offline import TaskEntry

SUITES = ["leaderboard_v1", "leaderboard_v2", "demo_leaderboard_v1", "demo_leaderboard_v2", "ruler", "demo_ruler"]
ENDPOINT = Endpoint(
    base_url="http://127.0.0.1:8000/v1", model="served-model", tokenizer="/models/ckpt", max_model_len=4096
)


def settings_of(suite: str) -> dict:
    return yaml.safe_load((REPO / "conf" / "benchmarks" / f"{suite}.yaml").read_text())["settings"]


CATALOG = {
    "hellaswag": TaskEntry("hellaswag", "task", None, output_type="multiple_choice"),
    "gsm8k_llama": TaskEntry("gsm8k_llama", "task", None, output_type="generate_until"),
    "grp": TaskEntry("grp", "group", None, members=("hellaswag", "gsm8k_llama")),
    "niah_single_1": TaskEntry("niah_single_1", "task", None, output_type="generate_until"),
    "ruler_vt": TaskEntry("ruler_vt", "task", None, output_type="generate_until"),
    "ruler": TaskEntry("ruler", "group", None, members=("niah_single_1", "ruler_vt")),
}
