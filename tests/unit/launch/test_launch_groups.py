"""What a Slurm sweep submits: arrays by resources and by the quantize job they wait for; quantize jobs deduplicated."""

from __future__ import annotations

import dataclasses

from evalkit.core.resources import JobResources
from evalkit.launch.slurm.groups import EvalJobSpec, group_jobs, plan_submission, quantize_specs
from evalkit.launch.slurm.resources import AGGREGATE_RESOURCES

GPU1 = JobResources(1, 1, 8, 64, 240, 1, 1)
GPU4 = JobResources(4, 1, 32, 256, 720, 4, 1)
CPU = JobResources(0, 1, 2, 8, 60, 1, 1)


def spec(name: str, resources: JobResources, checkpoint: str = "", quantize: bool = False) -> EvalJobSpec:
    return EvalJobSpec(
        name=name,
        overrides=(f"job={name}",),
        config_hash=f"h-{name}",
        cells=(f"{name}__a", f"{name}__b"),
        job_dir=f"/jobs/s/{name}",
        resources=resources,
        checkpoint=checkpoint or f"hub:{name}",
        needs_quantization=quantize,
    )


def test_jobs_with_equal_resources_share_one_array_in_first_appearance_order() -> None:
    jobs = [spec("8b.bf16", GPU1), spec("70b.bf16", GPU4), spec("8b.fp8", GPU1), spec("70b.fp8", GPU4)]
    groups = group_jobs(jobs)
    assert [[j.name for j in g.jobs] for g in groups] == [["8b.bf16", "8b.fp8"], ["70b.bf16", "70b.fp8"]]
    assert [g.resources for g in groups] == [GPU1, GPU4]
    assert all(g.after is None for g in groups)


def test_a_job_waiting_for_a_quantize_job_gets_its_own_array() -> None:
    jobs = [
        spec("demo.bf16", CPU),
        spec("demo.fp8", CPU, "recipe:f", quantize=True),
        spec("demo.w8a8", CPU, "recipe:w", quantize=True),
        spec("demo.w4a16", CPU, "recipe:q"),  # cached already: no dependency
    ]
    groups = group_jobs(jobs)
    assert [([j.name for j in g.jobs], g.after) for g in groups] == [
        (["demo.bf16", "demo.w4a16"], None),
        (["demo.fp8"], "recipe:f"),
        (["demo.w8a8"], "recipe:w"),
    ]


def test_one_quantize_job_per_checkpoint_for_every_cell_waiting_for_it() -> None:
    a = spec("demo.fp8", CPU, "recipe:f", quantize=True)
    b = dataclasses.replace(a, name="demo.fp8", overrides=("seed=1",), cells=("demo.fp8__c",))
    other = spec("demo.w8a8", CPU, "recipe:w", quantize=True)
    specs = quantize_specs([a, spec("demo.bf16", CPU), b, other])
    assert [(q.checkpoint, q.overrides, q.cells) for q in specs] == [
        ("recipe:f", a.overrides, (*a.cells, "demo.fp8__c")),
        ("recipe:w", other.overrides, other.cells),
    ]
    # both jobs serving that checkpoint wait for the same quantize job, so they share an array
    assert [len(g.jobs) for g in group_jobs([a, b])] == [2]


def test_plan_submission_carries_the_resources_of_each_step() -> None:
    plan = plan_submission([spec("demo.fp8", CPU, "recipe:f", quantize=True)], CPU, AGGREGATE_RESOURCES)
    assert [q.name for q in plan.quantize] == ["demo.fp8"]
    assert plan.quantize_resources == CPU and plan.aggregate_resources.cpus_per_task == 1
    assert [j.name for j in plan.jobs] == ["demo.fp8"]
    assert plan_submission([spec("x", CPU)], CPU, AGGREGATE_RESOURCES).quantize == ()
