# movierec: every target installs what it needs first, so each works on a fresh clone.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATASET ?= ml-100k
# eval: models and features from the training split (honest evaluation); full: all ratings.
MODE ?= eval
# Optional: a PyTorch wheel index for machines where PyPI's torch is the CUDA build,
# e.g. TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
TORCH_INDEX_URL ?=
TORCH_VERSION ?= 2.13.0
PYTEST_ARGS ?=
PROMETHEUS_PORT ?= 9090
# Root installs system packages directly, anyone else through sudo.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
# Extra arguments, e.g. BENCH_ARGS="--url http://127.0.0.1:8000 --duration 30".
BENCH_ARGS ?=
EVAL_SERVED_ARGS ?=
BENCH_EVENTS_ARGS ?=
BENCH_REPLAY_ARGS ?=
BENCH_HOP_ARGS ?=
# ScaNN lives in its own venv: next to TensorFlow 2.21 it breaks `import tensorflow_recommenders`
# (see benchmarks/scalebench/scann_worker.py). Only the scale benchmark uses it.
SCANN_VENV ?= .venv-scann
SCANN_VERSION ?= 1.4.2
SCANN_STAMP := $(SCANN_VENV)/.installed

export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export RAY_DASHBOARD_HOST := 127.0.0.1

.PHONY: help install data artifacts eval tune eval-served bench bench-hop bench-events bench-replay bench-scale scann-venv run serve \
        stop redis-start redis-stop s3-start s3-env s3-stop test test-unit lint format monitor \
        prometheus nftables clean

help: ## List the targets.
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip wheel
	@# torch first, pinned, in its own step: a loose range would pull the multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet "torch==$(TORCH_VERSION)" \
		$(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL),)
	@# constraints.txt: the exact versions the tests ran on (README "Regenerating constraints.txt").
	$(BIN)/python -m pip install --quiet -e ".[dev]" -c constraints.txt
	@touch $@

install: $(STAMP) ## Create .venv and install the project with its dev tools.

$(SCANN_STAMP):
	@test -x $(SCANN_VENV)/bin/python || $(PYTHON) -m venv $(SCANN_VENV)
	$(SCANN_VENV)/bin/python -m pip install --quiet "scann==$(SCANN_VERSION)"
	@touch $@

scann-venv: $(SCANN_STAMP) ## The separate venv holding ScaNN (numpy only, no TensorFlow) for bench-scale.

data: $(STAMP) ## Fetch and normalize the MovieLens variant (DATASET=ml-100k).
	$(BIN)/python -m models.data --variant $(DATASET)

artifacts: $(STAMP) ## Build all artifacts (MODE=eval|full) and load them into Redis; skips unchanged steps.
	$(BIN)/python -m models.pipeline --variant $(DATASET) --mode $(MODE)

eval: $(STAMP) ## Offline quality of every stage (eval artifacts, built if missing) -> benchmarks/results/quality.json + .png.
	$(BIN)/python -m models.evaluation --variant $(DATASET)

tune: $(STAMP) ## Choose the defaults on a validation split carved from the training split -> benchmarks/results/tuning.json (make eval embeds it).
	$(BIN)/python -m models.evaluation.tuning --variant $(DATASET)

bench: $(STAMP) nftables ## Load benchmark: Serve app vs single-process monolith, concurrency 1/4/16/32 -> benchmarks/results/load.json + .png, README tables.
	$(BIN)/python -m movierec.redis_server start
	$(BIN)/python -m models.pipeline --variant $(DATASET) --mode $(MODE)
	$(BIN)/python -m benchmarks.load --variant $(DATASET) --mode $(MODE) --readme README.md $(BENCH_ARGS)

bench-hop: $(STAMP) nftables ## The composition's own price: CPU and latency of one DeploymentHandle call and of HTTP into a Serve ingress, no work behind them -> benchmarks/results/hop.json, README table.
	$(BIN)/python -m benchmarks.hop --out benchmarks/results/hop.json --readme README.md $(BENCH_HOP_ARGS)

bench-events: $(STAMP) nftables ## Event ingestion (POST /events) at concurrency 1/4/16, 1 and 50 events/request, GET latency meanwhile -> benchmarks/results/events.json + .png, README table.
	$(BIN)/python -m movierec.redis_server start
	$(BIN)/python -m models.pipeline --variant $(DATASET) --mode $(MODE)
	$(BIN)/python -m benchmarks.events --variant $(DATASET) --mode $(MODE) --readme README.md $(BENCH_EVENTS_ARGS)

bench-replay: $(STAMP) nftables ## Does the feedback loop help? Session replay over HTTP on its own split's eval tree (built once, cached) and a private Redis -> benchmarks/results/replay.json, README table.
	$(BIN)/python -m benchmarks.replay --variant $(DATASET) --readme README.md $(BENCH_REPLAY_ARGS)

eval-served: $(STAMP) ## Offline protocol replayed through the HTTP API (eval artifacts), rules on/off -> benchmarks/results/served_quality.json.
	$(BIN)/python -m movierec.redis_server start
	$(BIN)/python -m models.pipeline --variant $(DATASET) --mode eval
	$(BIN)/python -m benchmarks.served_quality --variant $(DATASET) --readme README.md $(EVAL_SERVED_ARGS)

test: $(STAMP) $(SCANN_STAMP) prometheus nftables ## Run the whole test suite (unit + integration with real Redis/Ray/Prometheus).
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: $(STAMP) ## Only the tests that need no services and train nothing.
	$(BIN)/python -m pytest -m "not integration and not slow" $(PYTEST_ARGS)

bench-scale: $(STAMP) $(SCANN_STAMP) ## Scale curve (10k-1M movies) -> benchmarks/results/scale.json + .png, README tables.
	$(BIN)/python -m benchmarks.scale --readme README.md

lint: $(STAMP) ## ruff (lint + format check), mypy and the import layers (lint-imports).
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy movierec models deployments benchmarks monitoring
	$(BIN)/lint-imports --no-cache

format: $(STAMP) ## Apply ruff's fixes and formatting.
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

run: $(STAMP) ## Build missing artifacts, start Redis, Ray and the app on 127.0.0.1:8000.
	$(BIN)/python -m movierec.redis_server start
	$(BIN)/python -m models.pipeline --variant $(DATASET) --mode $(MODE)
	$(MAKE) --no-print-directory serve

serve: $(STAMP) nftables ## Deploy serve_config.yaml (Ray started if needed); user_config edits apply in place.
	@$(BIN)/ray get-auth-token --generate >/dev/null
	@# The Serve mode (HAProxy ingress, gRPC handles): see deployments/serve_env.py. This
	@# project's own Ray head, loopback-only (movierec/netguard.py), recorded in run/ray/ so
	@# that `make stop` stops it and nothing else (movierec/ray_instance.py).
	RAY_AUTH_MODE=token MOVIEREC_DATASET=$(DATASET) MOVIEREC_MODE=$(MODE) $(BIN)/python -m deployments.serve_env -- $(BIN)/python -m movierec.ray_instance start
	RAY_AUTH_MODE=token $(BIN)/python -m deployments.serve_env -- $(BIN)/python -m movierec.ray_instance exec -- $(BIN)/serve run --non-blocking serve_config.yaml
	RAY_AUTH_MODE=token $(BIN)/python -m movierec.ray_instance exec -- $(BIN)/python -m deployments.cli wait --url http://127.0.0.1:8000

stop: $(STAMP) ## Stop the app, this project's Ray head (only it: not `ray stop`) and the embedded Redis.
	$(BIN)/python -m movierec.ray_instance stop
	$(BIN)/python -m movierec.redis_server stop

nftables: ## As root: install Debian's nftables (for the loopback guard) if absent.
	@if [ "$$(id -u)" = 0 ] && [ "$${MOVIEREC_NETGUARD:-auto}" != off ] && ! command -v nft >/dev/null; then \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends nftables >/dev/null; } || echo "warning: nftables not installed"; fi

prometheus: ## Install Debian's prometheus package if absent (apt; ~30 s).
	@command -v prometheus >/dev/null || { \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
	@prometheus --version 2>&1 | head -1

monitor: $(STAMP) prometheus ## Prometheus (PROMETHEUS_PORT=9090) scraping the running app and Ray, in the foreground.
	$(BIN)/python -m monitoring.dashboards --check
	$(BIN)/python -m monitoring.prometheus_server run --port $(PROMETHEUS_PORT)

redis-start: $(STAMP) ## Start the embedded Redis (skipped when REDIS_URL is set).
	$(BIN)/python -m movierec.redis_server start

redis-stop: $(STAMP) ## Stop the embedded Redis.
	$(BIN)/python -m movierec.redis_server stop

s3-start: $(STAMP) ## Local S3-compatible server (moto, 127.0.0.1, generated key); then: eval "$$(make -s s3-env)".
	$(BIN)/python -m movierec.s3_server start

s3-env: $(STAMP) ## Print the exports that point the AWS chain and MOVIEREC_STORAGE_URI at the local S3 server.
	@$(BIN)/python -m movierec.s3_server env

s3-stop: $(STAMP) ## Stop the local S3 server (it forgets every build: moto keeps them in memory).
	$(BIN)/python -m movierec.s3_server stop

clean: ## Remove build caches (keeps .venv, data and artifacts).
	rm -rf .pytest_cache .mypy_cache .ruff_cache build *.egg-info
