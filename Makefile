# causalmine — one command each: make install | make train | make test
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The exact torch build. On this project's CPU machines pip takes it from a local file; on a
# GPU machine the same pin pulls the CUDA build from PyPI. Pick another build with e.g.
#   make install TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
# A folder that already holds the corpora (linked as ./data, never copied)
DATA_SOURCE ?= ../shared/data
PYTEST_ARGS ?=

.PHONY: install lock train test test-all lint format bench bench-speed bench-quality clean

install:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[dev,sweeps,ray,bench,demo]" -c constraints.txt
	@if [ ! -e data ] && [ -d "$(DATA_SOURCE)" ]; then ln -s "$(DATA_SOURCE)" data && echo "linked ./data -> $(DATA_SOURCE)"; fi
	@$(PY) -c "import torch, lightning, transformers; print('torch', torch.__version__, '| lightning', lightning.__version__, '| transformers', transformers.__version__, '| cuda', torch.cuda.is_available())"

# constraints.txt: the versions the tests passed with (torch excepted: TORCH_SPEC picks its build)
lock:
	$(PY) -m pip freeze --exclude-editable | grep -v -i -E '^(torch|triton|nvidia-[^=]*|causalmine)==' > constraints.txt

train:
	$(PY) train.py $(ARGS)

# The fast suite (what CI runs); pytest's exit code 5 ("no tests collected") counts as failure.
test:
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-all:
	$(PY) -m pytest $(PYTEST_ARGS)

# Benchmarks (never part of the tests); results and the commands in experiments/RESULTS.md
bench: bench-speed bench-quality

bench-speed:
	$(PY) experiments/bench_speed.py $(ARGS)

bench-quality:
	$(PY) experiments/bench_quality.py $(ARGS)

lint:
	$(VENV)/bin/ruff check src tests experiments train.py eval.py predict.py mine.py
	$(VENV)/bin/ruff format --check src tests experiments train.py eval.py predict.py mine.py

format:
	$(VENV)/bin/ruff check --fix src tests experiments train.py eval.py predict.py
	$(VENV)/bin/ruff format src tests experiments train.py eval.py predict.py

clean:
	rm -rf logs outputs multirun wandb .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -prune -not -path "./$(VENV)/*" -exec rm -rf {} +
