# Thin wrapper: a virtual environment at .venv, the project installed into it (editable).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build that lies on this machine's disk; override for a CUDA build, e.g. TORCH_SPEC=torch.
TORCH_SPEC ?= torch==2.13.0
# Offline on this project's machines: use the shared MovieLens copy when it sits beside the checkout.
ifneq ($(wildcard ../shared/data/ml-100k/u.data),)
export MFREC_DATA ?= $(abspath ../shared/data)
endif

.PHONY: install run test bench bench-speed accuracy scale lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

run: install
	$(BIN)/mfrec train

test: install
	$(BIN)/python -m pytest

# Time to accuracy (ML-100k and a 1M-rating synthetic problem: the 25M one runs in
# benchmarks/gpu_session.sh), timings (pytest-benchmark), then tables, results.json and
# bench.png under benchmarks/out/; then the end-to-end run: `mfrec train` on 2.5M generated
# ml-25m-like ratings beside cmfrec (E2E_RATINGS=25000000 for the full size; E2E_FLAGS adds
# rows, e.g. --mfrec='--model als').
E2E_RATINGS ?= 2500000
E2E_FLAGS ?=
bench: install
	$(MAKE) bench-speed
	$(BIN)/python benchmarks/bench_distributed.py
	$(BIN)/python benchmarks/bench_parse.py
	$(BIN)/python -m benchmarks.end_to_end --ratings $(E2E_RATINGS) $(E2E_FLAGS)

# The speed tables alone, with any Python that has the dependencies: `make bench-speed
# PY=python3` (a lent GPU machine runs benchmarks/gpu_session.sh, the same rows GPU-first).
PY ?= $(BIN)/python
bench-speed:
	mkdir -p benchmarks/out
	$(PY) benchmarks/time_to_accuracy.py --problem ml100k
	$(PY) benchmarks/time_to_accuracy.py --problem synthetic --n 1000000
	$(PY) -m pytest benchmarks --benchmark-enable --benchmark-only -p no:randomly \
		--benchmark-json=benchmarks/out/bench.json
	$(PY) benchmarks/report.py benchmarks/out/bench.json

# 5-fold CV table of every model on ML-100k (+ scikit-surprise and cmfrec when installed: .[peers]),
# the canonical splits u1..u5 with the default and Bayesian FM beside myFM (skipped when absent;
# benchmarks/myfm_canonical.py), then the dot product against the book's networks, tuned with one
# budget (benchmarks/dot_vs_mlp.py).
accuracy: install
	$(BIN)/python -m benchmarks.accuracy
	$(BIN)/python -m benchmarks.myfm_canonical
	$(BIN)/python -m benchmarks.dot_vs_mlp

# The default at scale on generated ml-25m-like ratings with genres (movies.csv), user attributes
# (users.csv) and dates, all shaping the truth (benchmarks/synthetic.py): wall time and peak RSS
# from /usr/bin/time -v, test RMSE in the JSON. SCALE_RATINGS=2500000 for the 2.5M job.
SCALE_RATINGS ?= 25000000
SCALE_DIR ?= benchmarks/out/synthetic-$(SCALE_RATINGS)
scale: install
	$(BIN)/python -m benchmarks.synthetic --ratings $(SCALE_RATINGS) --out $(SCALE_DIR) > /dev/null
	/usr/bin/time -v $(BIN)/mfrec train --ratings $(SCALE_DIR)/ml-25m/ratings.csv \
		--item-features $(SCALE_DIR)/ml-25m/movies.csv \
		--user-features $(SCALE_DIR)/ml-25m/users.csv --json

# ruff (lint, then formatting) and pyright (basic mode, [tool.pyright] in pyproject.toml).
lint: install
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .
	$(BIN)/python -m pyright

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks benchmarks/out
