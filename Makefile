# Two commands on a fresh machine:  make train   and   make test
# Both create the virtual environment (.venv) and install trainlab into it the first time.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# PyTorch is installed first and pinned, so pip takes the local/CPU-compatible wheels instead of resolving a
# different build; override e.g. `make TORCH="torch torchvision"` to take the newest release.
TORCH  ?= torch==2.14.1 torchvision==0.29.1
# extra arguments for trainlab-train / pytest, e.g. `make train ARGS="model=cnn"`
ARGS   ?=
# pytest workers; each uses one thread (two threads per process slow PyTorch down when the cores are shared)
WORKERS ?= 2

STAMP := $(VENV)/.installed-stamp

.PHONY: help install train eval test test-fast bench lint format clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --progress-bar off $(TORCH)
	$(BIN)/python -m pip install --quiet --progress-bar off -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install trainlab with its dev tools

train: $(STAMP)  ## train the default model (MLP on digits); pass overrides with ARGS="..."
	$(BIN)/trainlab-train $(ARGS)

test: $(STAMP)  ## the whole test suite (offline, about 10 minutes on 2 cores)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -n $(WORKERS) --durations=15 $(ARGS)

test-fast: $(STAMP)  ## the fast subset for the inner loop (no CLI subprocess or DDP runs)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -n $(WORKERS) -m "not slow" $(ARGS)

bench: $(STAMP)  ## benchmarks (results in benchmarks/results/); exits non-zero when a target is missed
	$(BIN)/python benchmarks/bench_augment.py

lint: $(STAMP)  ## ruff
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

format: $(STAMP)  ## ruff format + autofix
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

clean:  ## remove run outputs (logs/) and caches; keeps .venv
	find logs -mindepth 1 ! -name .gitkeep -exec rm -rf {} +
	rm -rf .pytest_cache .ruff_cache
