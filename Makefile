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

.PHONY: help install data train eval test test-fast bench bench-gpu lint format clean recipe-demo

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --progress-bar off $(TORCH)
	$(BIN)/python -m pip install --quiet --progress-bar off -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install trainlab with its dev tools

# The real data set the tests use: Fashion-MNIST from Debian's package dataset-fashion-mnist (the original IDX files
# in /usr/share/datasets/fashion-mnist). Installed where this machine can (apt-get as root, or passwordless sudo);
# elsewhere the tests that need it are skipped with the install command (under CI=1 they fail instead).
FASHION_MNIST := /usr/share/datasets/fashion-mnist
data:  ## install the real data sets the tests use (Fashion-MNIST, Debian package), where this machine can
	@if [ -d $(FASHION_MNIST) ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else sudo=none; fi; \
	if [ "$$sudo" = none ] || ! command -v apt-get >/dev/null; then \
		echo "note: $(FASHION_MNIST) is missing and this user cannot install it; the tests that need it are skipped." \
			"Install it with: sudo apt-get install dataset-fashion-mnist"; exit 0; fi; \
	echo "installing Fashion-MNIST (apt-get install dataset-fashion-mnist)"; \
	$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq dataset-fashion-mnist \
		>/dev/null || echo "note: apt-get could not install dataset-fashion-mnist; the tests that need it are skipped"

train: $(STAMP)  ## train the default model (MLP on digits); pass overrides with ARGS="..."
	$(BIN)/trainlab-train $(ARGS)

# the lecture's recipe, steps 1-6, one after the other, each feeding the next; ARGS="data=fashion_mnist" for another
# data set. Everything lands in logs/recipe_demo/<time>/ (1_initial_loss ... 6_final).
DEMO = logs/recipe_demo/$(shell date +%Y-%m-%d_%H-%M-%S)
recipe-demo: $(STAMP)  ## walk through the hyperparameter recipe (steps 1-6) on digits; ARGS="..." for overrides
	@d=$(DEMO); set -e; \
	$(BIN)/trainlab-train recipe=initial_loss $(ARGS) hydra.run.dir=$$d/1_initial_loss; \
	$(BIN)/trainlab-train recipe=overfit $(ARGS) hydra.run.dir=$$d/2_overfit; \
	$(BIN)/trainlab-train recipe=lr_find $(ARGS) hydra.run.dir=$$d/3_lr_find; \
	$(BIN)/trainlab-train -m hparams_search=coarse hparams_search.lr=$$d/3_lr_find/lr_find.json $(ARGS) \
		hydra.sweep.dir=$$d/4_coarse; \
	$(BIN)/trainlab-train -m hparams_search=fine hparams_search.around=$$d/4_coarse $(ARGS) hydra.sweep.dir=$$d/5_fine; \
	$(BIN)/trainlab-train $$($(BIN)/python -m trainlab.sweep best $$d/5_fine) scheduler=none $(ARGS) \
		hydra.run.dir=$$d/6_final; \
	echo "recipe: $$d (sweep.md in 4_coarse and 5_fine; curves.png and metrics.json's diagnosis in 6_final)"

test: $(STAMP) data  ## the whole test suite (offline; about 1150 tests, about 17 minutes on 2 cores)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -n $(WORKERS) --durations=15 $(ARGS)

test-fast: $(STAMP)  ## the fast subset for the inner loop (no CLI subprocess or DDP runs)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -n $(WORKERS) -m "not slow" $(ARGS)

bench: $(STAMP)  ## benchmarks (results in benchmarks/results/); exits non-zero when a target is missed
	@cd benchmarks && status=0; \
	for b in bench_augment.py bench_loop.py bench_startup.py; do \
		echo "== $$b"; $(abspath $(BIN))/python $$b || status=1; \
	done; exit $$status

bench-gpu: $(STAMP)  ## the GPU speed recipe (experiment=fashion_mnist_speed), on a machine with a GPU
	cd benchmarks && $(abspath $(BIN))/python gpu_no_sync.py && $(abspath $(BIN))/python bench_fashion_speed.py $(ARGS)

lint: $(STAMP)  ## ruff
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

format: $(STAMP)  ## ruff format + autofix
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

clean:  ## remove run outputs (logs/) and caches; keeps .venv
	find logs -mindepth 1 ! -name .gitkeep -exec rm -rf {} +
	rm -rf .pytest_cache .ruff_cache
