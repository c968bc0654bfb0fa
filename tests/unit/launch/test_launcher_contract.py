"""Every registered launcher keeps the `Launcher` contract in what can run without a cluster (as Hydra's
`LauncherTestSuite` holds every launcher plugin to one suite): it is found by its config's name, renders a sweep
without submitting, asks nothing of a cluster for nothing, refuses garbage job ids before they reach a command line.
And a third launcher is one package and one config file: registered, selected and rendered with nothing else edited.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from paths import REPO

import evalkit.launch
from evalkit.core.checks import Check
from evalkit.core.errors import ConfigError, EvalkitError
from evalkit.launch import registry
from evalkit.launch.base import JobState, Launcher, Request, SweepJobs

NAMES = registry.names()
SMOKE = ["benchmark=smoke_generate", "format=bf16"]


def test_the_launchers_are_the_packages_and_the_configs() -> None:
    assert {"local", "slurm"} <= set(NAMES)
    configs = {p.stem for p in (REPO / "conf" / "launcher").glob("*.yaml")}
    assert set(NAMES) == configs  # one package per config file, one config file per package


def test_an_unknown_launcher_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as err:
        registry.get("slrum")
    assert "launcher=local" in err.value.message and "launcher=slurm" in err.value.message


def _sweep(tmp_path: Path, name: str, *extra: str) -> SweepJobs:
    """The smoke job of `launcher=<name>`, planned as the sweeper plans it (all its cells pending)."""
    from evalkit.pipeline.compose import compose_grid
    from evalkit.pipeline.plan import plan_job

    overrides = [*SMOKE, f"launcher={name}", f"paths.results={tmp_path}/results", f"paths.jobs={tmp_path}/jobs", *extra]
    (config,) = compose_grid(overrides, with_hydra=True)
    assert registry.name_of(config) == name
    plan = plan_job(config, check_adapters=False)
    return SweepJobs(
        config,
        [plan],
        [(overrides, plan.narrowed(plan.pending))],
        lambda job: compose_grid(job, with_hydra=True)[0],
    )


@pytest.fixture(params=NAMES)
def launcher(request: pytest.FixtureRequest) -> Launcher:
    found = registry.get(request.param)
    assert found.name == request.param and found.title
    return found


@pytest.fixture
def no_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """What runs here must not start a process (no sbatch, squeue, scancel): there is no cluster."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"started a process: {args[0] if args else kwargs}")

    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)


def test_render_shows_what_would_be_submitted_without_a_cluster(
    launcher: Launcher, tmp_path: Path, no_process: None
) -> None:
    sweep = _sweep(tmp_path, launcher.name)
    requests = launcher.render(sweep)
    assert requests is None or all(isinstance(r, Request) and r.script and r.resources for r in requests)
    if requests is not None:  # a launcher that submits submits every pending job, each once
        evals = [name for r in requests if r.kind == "eval" for name in r.names]
        assert evals == [plan.name for _, plan in sweep.todo]
    assert launcher.render(SweepJobs(sweep.config, sweep.plans, [], sweep.compose)) in (None, [])
    assert not (tmp_path / "jobs").exists()  # rendering writes nothing


def test_nothing_asked_of_nothing(launcher: Launcher, tmp_path: Path, no_process: None) -> None:
    launcher.checks([])
    assert launcher.states([]) == {}
    launcher.cancel([])
    assert launcher.submitted(tmp_path) is None  # a sweep folder without a record: nothing submitted


def test_garbage_job_ids_never_reach_a_command_line(launcher: Launcher, no_process: None) -> None:
    for bad in (["12; rm -rf /"], ["$(reboot)"]):
        try:
            states = launcher.states(bad)
        except EvalkitError:
            pass  # refused, with evalkit's message
        else:
            assert states == {bad[0]: JobState.NOT_FOUND}
        with contextlib.suppress(EvalkitError):
            launcher.cancel(bad)


def test_node_checks_are_rows(launcher: Launcher) -> None:
    if launcher.name == "slurm":
        pytest.skip("asks sinfo: tests/slurm/test_sweep_checks.py runs it against the real cluster")
    assert all(isinstance(c, Check) for c in launcher.node_checks())


def test_slurm_render_refuses_an_unresolvable_site_setting(tmp_path: Path, no_process: None) -> None:
    sweep = _sweep(tmp_path, "slurm", "hydra.launcher.submitit_folder=${oops}")
    with pytest.raises(Exception, match="oops"):
        registry.get("slurm").render(sweep)


# --------------------------------------------------------------------------------------- a third launcher


ECHO = '''
    """A launcher for the test: it "submits" by printing each job's name."""

    from evalkit.core.checks import Check
    from evalkit.launch.base import JobState, Request


    class EchoLauncher:
        name = "echo"
        title = "Echo"
        gpus_from_allocation = False

        def render(self, sweep):
            return [Request("eval", [plan.name], "1 echo", f"echo {plan.name}\\n") for _, plan in sweep.todo]

        def checks(self, requests):
            pass

        def submit(self, sweep, *, dry_run, wait):
            for request in self.render(sweep):
                print(request.script, end="")
            return []

        def submitted(self, sweep_dir):
            return None

        def states(self, job_ids):
            return {j: JobState.NOT_FOUND for j in job_ids}

        def cancel(self, job_ids):
            pass

        def node_checks(self):
            return [Check("echo", True, "always")]


    LAUNCHER = EchoLauncher()
'''


def test_a_third_launcher_is_one_package_and_one_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The package goes where Python looks for evalkit.launch's subpackages (here a temporary folder added to
    `evalkit.launch.__path__`; in a checkout, evalkit/launch/echo/), the config where Hydra looks for
    conf/launcher/*.yaml (here a search path): `evalkit sweep launcher=echo --dry-run --json` then renders its
    submissions, with no other file edited."""
    (tmp_path / "pkg" / "echo").mkdir(parents=True)
    (tmp_path / "pkg" / "echo" / "__init__.py").write_text(textwrap.dedent(ECHO))
    (tmp_path / "conf" / "launcher").mkdir(parents=True)
    (tmp_path / "conf" / "launcher" / "echo.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /hydra/launcher: basic\n"
    )
    monkeypatch.setattr(evalkit.launch, "__path__", [*evalkit.launch.__path__, str(tmp_path / "pkg")])
    monkeypatch.delitem(sys.modules, "evalkit.launch.echo", raising=False)
    registry.get.cache_clear()
    try:
        assert "echo" in registry.names() and registry.get("echo").name == "echo"
        from evalkit.cli import main

        out = io.StringIO()
        argv = [
            "sweep",
            "--dry-run",
            "--json",
            *SMOKE,
            "launcher=echo",
            f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
            f"paths.results={tmp_path}/results",
            f"paths.jobs={tmp_path}/jobs",
        ]
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            main(argv)
    finally:
        registry.get.cache_clear()
    doc = json.loads(out.getvalue())
    assert doc["launcher"] == "echo"
    (job,) = doc["jobs"]
    assert doc["submissions"] == [
        {"sbatch": 1, "kind": "eval", "jobs": [job["name"]], "after": None, "resources": "1 echo"}
    ]
    assert job["slurm"]["script"] == f"echo {job['name']}\n"
