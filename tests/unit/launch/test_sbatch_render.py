"""The sbatch scripts of the study's model sizes are pure renderings: golden files pin them, the rules are unit-tested.

The launcher config comes from conf/launcher/slurm.yaml itself (so a change there shows in the goldens), resolved
against fixed, machine-independent values; the resources from conf/model/*.yaml.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pytest
from golden import check_golden as _check
from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf
from omegaconf import OmegaConf
from paths import GOLDEN, REPO

from evalkit.core.config import ModelConfig
from evalkit.core.errors import ConfigError
from evalkit.core.resources import JobResources, job_resources
from evalkit.launch.slurm.resources import launcher_conf
from evalkit.launch.slurm.sbatch import render_sbatch, sbatch_parameters

ROOT = REPO

# Where the project would live on a cluster: fixed, so the goldens do not depend on this machine.
PROJECT = "/opt/evalkit"
PYTHON = f"{PROJECT}/.venv/bin/python"
# What a site sets on the command line (hydra.launcher.partition=... etc.)
SITE = {"partition": "gpu", "account": "llm-eval", "qos": "normal"}


def check_golden(name: str, text: str) -> None:
    _check(GOLDEN / name, text)


def load_model(name: str) -> ModelConfig:
    cfg = OmegaConf.merge(OmegaConf.structured(ModelConfig), OmegaConf.load(ROOT / "conf/model" / f"{name}.yaml"))
    model = OmegaConf.to_object(cfg)
    assert isinstance(model, ModelConfig)
    return model


def launcher_base(model: ModelConfig, **site: Any) -> SlurmQueueConf:
    """hydra.launcher of conf/launcher/slurm.yaml, resolved as Hydra would in a sweep of `model` named "study"."""
    root = OmegaConf.merge(
        {
            "sweep": "study",
            "paths": {"jobs": f"{PROJECT}/jobs"},
            "model": OmegaConf.structured(model),
            "hydra": {"runtime": {"cwd": PROJECT}},
        },
        OmegaConf.load(ROOT / "conf/launcher/slurm.yaml"),
    )
    OmegaConf.resolve(root)
    launcher = OmegaConf.merge(OmegaConf.structured(SlurmQueueConf), root.hydra.launcher, site)
    conf = OmegaConf.to_object(launcher)
    assert isinstance(conf, SlurmQueueConf)
    return conf


# (model, format, jobs in the submission): 8B's formats share resources, so its sweep is one array of four
CASES = [
    ("llama-3.1-8b-instruct", "bf16", 4),
    ("llama-3.1-70b-instruct", "bf16", 1),
    ("llama-3.1-70b-instruct", "w4a16", 1),
    ("llama-3.1-405b-instruct", "fp8", 1),
    ("llama-3.1-405b-instruct", "bf16", 1),
]


@pytest.mark.parametrize(("model_name", "fmt", "array_size"), CASES, ids=[f"{m}.{f}" for m, f, _ in CASES])
def test_sbatch_golden(model_name: str, fmt: str, array_size: int) -> None:
    model = load_model(model_name)
    conf = launcher_conf(launcher_base(model, **SITE), job_resources(model, fmt))
    script = render_sbatch(conf, python=PYTHON, array_size=array_size)
    check_golden(f"sbatch_{model_name}.{fmt}.sh", script)
    assert "/work/" not in script and os.getcwd() not in script


EXPECTED = {
    ("llama-3.1-8b-instruct", "bf16"): (1, 1, 1, 1),
    ("llama-3.1-70b-instruct", "bf16"): (4, 1, 4, 1),
    ("llama-3.1-70b-instruct", "w4a16"): (2, 1, 2, 1),
    ("llama-3.1-405b-instruct", "fp8"): (8, 1, 8, 1),
    ("llama-3.1-405b-instruct", "bf16"): (8, 2, 8, 2),
}


@pytest.mark.parametrize(("key", "expected"), EXPECTED.items(), ids=[f"{m}.{f}" for m, f in EXPECTED])
def test_job_resources_per_model_and_format(key: tuple[str, str], expected: tuple[int, int, int, int]) -> None:
    r = job_resources(load_model(key[0]), key[1])
    assert (r.gpus_per_node, r.nodes, r.tensor_parallel_size, r.pipeline_parallel_size) == expected


def test_cpu_model_requests_no_gpu() -> None:
    model = load_model("smollm2-135m-instruct")
    r = job_resources(model, "w4a16")
    assert (r.gpus_per_node, r.tensor_parallel_size) == (0, 1)
    script = render_sbatch(launcher_conf(launcher_base(model), r), python=PYTHON)
    assert "gpu" not in script and "--partition" not in script


def test_launcher_yaml_keys_are_the_launchers() -> None:
    """A misspelt key in conf/launcher/slurm.yaml fails here, not at submission time on a cluster."""
    model = load_model("llama-3.1-8b-instruct")
    conf = launcher_base(model)
    assert conf.submitit_folder == f"{PROJECT}/jobs/study/.submitit/%j"
    assert conf.setup == [f"source {PROJECT}/.venv/bin/activate"]
    assert conf.name == "evalkit.study"
    assert conf.max_num_timeout == 3


def test_mapping_follows_submitit_names() -> None:
    conf = SlurmQueueConf(
        submitit_folder="/x/%j", name="n", timeout_min=90, mem_gb=64, gpus_per_node=2, tasks_per_node=1, nodes=1
    )
    params = sbatch_parameters(conf, array_size=3)
    assert params["time"] == 90 and params["mem"] == "64GB" and params["job_name"] == "n"
    assert params["ntasks_per_node"] == 1 and params["map_count"] == 3
    assert "max_num_timeout" not in params and "submitit_folder" not in params


def test_array_line() -> None:
    conf = SlurmQueueConf(submitit_folder="/x/%j", name="n", array_parallelism=2)
    assert "#SBATCH --array=0-4%2" in render_sbatch(conf, python="python", array_size=5)
    assert "--array" not in render_sbatch(conf, python="python")


def test_relative_folder_is_refused() -> None:
    with pytest.raises(ConfigError, match="relative"):
        render_sbatch(SlurmQueueConf(submitit_folder="jobs/%j", name="n"), python="python")


def test_unresolved_interpolation_is_refused() -> None:
    # the schema's default name is "${hydra.job.name}"
    with pytest.raises(ConfigError, match="name"):
        render_sbatch(SlurmQueueConf(submitit_folder="/x/%j"), python="python")


def test_unknown_resource_field_lists_valid_ones() -> None:
    model = dataclasses.replace(load_model("llama-3.1-70b-instruct"), resources_by_format={"fp8": {"gpu": 2}})
    with pytest.raises(ConfigError, match="valid fields: gpus_per_node, nodes"):
        job_resources(model, "fp8")


def test_tensor_parallel_beyond_a_node_is_refused() -> None:
    model = dataclasses.replace(load_model("llama-3.1-70b-instruct"), tp_by_format={"bf16": 8})
    with pytest.raises(ConfigError, match="exceeds the 4 GPUs"):
        job_resources(model, "bf16")


def test_gpus_not_a_multiple_of_tp_are_refused() -> None:
    model = dataclasses.replace(
        load_model("llama-3.1-70b-instruct"), resources_by_format={"bf16": {"gpus_per_node": 6}}
    )
    with pytest.raises(ConfigError, match=r"= 4 GPUs, but the job has 6(.|\n)*a multiple of the tensor-parallel size"):
        job_resources(model, "bf16")


def test_tp_times_pp_must_use_exactly_the_jobs_gpus() -> None:
    """Two nodes without pipeline parallelism would serve on one node's GPUs (810 GB of BF16 405B on 640 GB)."""
    model = dataclasses.replace(load_model("llama-3.1-405b-instruct"), pp_by_format={})
    with pytest.raises(ConfigError) as err:
        job_resources(model, "bf16")
    msg = str(err.value)
    assert "model.tensor_parallel_size=8 x model.pp_by_format.bf16=1 = 8 GPUs, but the job has 16" in msg
    assert "gpus_per_node=8 x nodes=2" in msg and "model.pp_by_format.bf16=2" in msg  # the fix
    # and pipeline stages the GPUs do not have
    model = dataclasses.replace(load_model("llama-3.1-405b-instruct"), pp_by_format={"fp8": 2})
    with pytest.raises(ConfigError, match="= 16 GPUs, but the job has 8"):
        job_resources(model, "fp8")


@pytest.mark.parametrize("field", ["tensor_parallel_size", "pp_by_format"])
@pytest.mark.parametrize("value", [0, -1])
def test_parallel_sizes_below_one_are_refused(field: str, value: int) -> None:
    model = load_model("llama-3.1-405b-instruct")
    model = dataclasses.replace(
        model, **({field: value} if field == "tensor_parallel_size" else {field: {"bf16": value}})
    )
    key = "model.tensor_parallel_size" if field == "tensor_parallel_size" else "model.pp_by_format.bf16"
    with pytest.raises(ConfigError, match=f"{key}={value} must be >= 1"):
        job_resources(model, "bf16")


def test_multinode_job_runs_evalkit_once() -> None:
    """Two nodes stay allocated (#SBATCH --nodes=2), but submitit's srun starts one task: one evalkit process serves
    and writes cells; the second node is reached by the Ray bootstrap's own srun."""
    model = load_model("llama-3.1-405b-instruct")
    script = render_sbatch(launcher_conf(launcher_base(model, **SITE), job_resources(model, "bf16")), python=PYTHON)
    assert "#SBATCH --nodes=2" in script and "#SBATCH --ntasks=" not in script  # sbatch -N2 -n1 shrinks to 1 node
    srun = next(line for line in script.splitlines() if line.startswith("srun "))
    assert "--nodes=1 --ntasks=1" in srun and srun.endswith(
        "submitit.core._submit /opt/evalkit/jobs/study/.submitit/%j"
    )
    single = render_sbatch(launcher_conf(launcher_base(model, **SITE), job_resources(model, "fp8")), python=PYTHON)
    assert "--ntasks=1" not in single  # single-node jobs as before


def test_job_resources_is_frozen() -> None:
    r = JobResources(1, 1, 8, 64, 240, 1, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.nodes = 2  # type: ignore[misc]
    assert r.gpus == 1


def test_dependency_line_and_kill_on_invalid_dependency() -> None:
    conf = SlurmQueueConf(submitit_folder="/x/%j", name="n", additional_parameters={"comment": "c"})
    script = render_sbatch(conf, python="python", dependency="afterok:12_0")
    assert "#SBATCH --dependency=afterok:12_0" in script
    # a job whose dependency failed is removed instead of pending forever
    assert "#SBATCH --kill-on-invalid-dep=yes" in script and "#SBATCH --comment=c" in script
    assert "dependency" not in render_sbatch(conf, python="python")


def test_validate_refuses_parallelism_that_does_not_fit_before_anything_runs() -> None:
    """The check runs in `validate` (the plan, --dry-run, local and Slurm alike), not first at submission."""
    from evalkit.core.config import to_object
    from evalkit.core.validate import validate
    from evalkit.pipeline.compose import compose_job

    job = ["model=llama-3.1-405b-instruct", "format=bf16", "benchmark=[leaderboard_v1]", "server=gpu"]
    validate(to_object(compose_job(job)))  # the shipped config: TP 8 x PP 2 on 2 x 8 GPUs
    with pytest.raises(ConfigError, match=r"model.pp_by_format.bf16=1 = 8 GPUs, but the job has 16"):
        validate(to_object(compose_job([*job, "model.pp_by_format.bf16=1"])))


def test_gpu_type_is_asked_as_typed_gres_or_as_a_node_feature() -> None:
    model = load_model("llama-3.1-70b-instruct")  # gpu_type: H100; W4A16 on 2 GPUs
    gres = render_sbatch(launcher_conf(launcher_base(model, **SITE), job_resources(model, "w4a16")), python=PYTHON)
    assert "#SBATCH --gres=gpu:h100:2\n" in gres and "--gpus-per-node" not in gres  # one GPU request, typed
    # per format: W4A16 on A100s, asked as a node feature joined to the site's own constraint
    typed = dataclasses.replace(
        model, resources_by_format={**model.resources_by_format, "w4a16": {"gpus_per_node": 2, "gpu_type": "A100",
                                                                          "gpu_request": "constraint"}}
    )  # fmt: skip
    conf = launcher_conf(launcher_base(typed, **SITE, constraint="ib"), job_resources(typed, "w4a16"))
    script = render_sbatch(conf, python=PYTHON)
    # submitit shell-quotes the value; sbatch removes the quotes when it reads #SBATCH lines
    assert "#SBATCH --constraint='(ib)&a100'\n" in script and "#SBATCH --gpus-per-node=2\n" in script
    assert "--gres" not in script
    cpu = load_model("smollm2-135m-instruct")
    assert "gpu" not in render_sbatch(launcher_conf(launcher_base(cpu), job_resources(cpu, "bf16")), python=PYTHON)


def test_an_unknown_gpu_request_is_refused_with_the_valid_ones() -> None:
    model = load_model("llama-3.1-8b-instruct")
    bad = dataclasses.replace(model, resources_by_format={"bf16": {"gpu_request": "features"}})
    with pytest.raises(ConfigError, match="gpu_request='features'") as err:
        job_resources(bad, "bf16")
    assert "gres, constraint" in (err.value.hint or "")


def test_every_format_on_the_same_gpus_when_asked() -> None:
    """The study's async 70B figures: 4x H100 for every format; clearing the per-format changes gives that."""
    model = dataclasses.replace(load_model("llama-3.1-70b-instruct"), resources_by_format={}, tp_by_format={})
    for fmt in ("bf16", "fp8", "w8a8", "w4a16"):
        r = job_resources(model, fmt)
        assert (r.gpus, r.tensor_parallel_size, r.gpu_type) == (4, 4, "H100")
