# lrpilot: `make demo` sets up and runs the demo; `make test` sets up and runs the tests.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The tests exercise the optional parts for real (Optuna and PostgreSQL, TensorBoard, Lightning, HF).
TEST_EXTRAS := dev,demo,search,tensorboard,lightning,transformers

.PHONY: setup demo test lint bench bench-quick bench-overhead bench-horizon bench-data clean

setup: $(STAMP)

# torch==2.13.0 first: that CPU wheel is on the machine's disk; a bare `torch` pulls a CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[$(TEST_EXTRAS)]'
	touch $(STAMP)

# fastai is a peer but requires torchvision, whose wheel pulls a CUDA torch and breaks
# pytorch_lightning: install it against the CPU torch, then drop torchvision (lr_find needs none).
$(VENV)/.bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[$(TEST_EXTRAS),bench]' -c benchmarks/constraints.txt
	$(BIN)/python -m pip install --quiet fastai==2.8.12 -c benchmarks/constraints.txt
	$(BIN)/python -m pip uninstall --quiet -y torchvision
	touch $(VENV)/.bench

demo: $(STAMP)
	MPLCONFIGDIR=$(CURDIR)/.mplconfig $(BIN)/lrpilot demo --out demo-output

test: $(STAMP)
	MPLCONFIGDIR=$(CURDIR)/.mplconfig $(BIN)/python -m pytest -q

# What CI enforces besides the tests: lint, formatting and types.
LINTED := src tests benchmarks examples docs
lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/python -m mypy src/lrpilot

# The benchmark's Debian data (Fashion-MNIST, WordNet, fortunes): installed when missing and
# we are root, else a clear message with the command to run.
BENCH_DEBS := dataset-fashion-mnist wordnet-base fortunes
bench-data:
	@missing=""; for p in $(BENCH_DEBS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" \
	    || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing the benchmark's Debian data:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else \
	  echo "the benchmark needs the Debian packages$$missing; install them with:" >&2; \
	  echo "  sudo apt-get install -y$$missing" >&2; \
	  exit 1; \
	fi

bench: $(VENV)/.bench bench-data
	MPLCONFIGDIR=$(CURDIR)/.mplconfig $(BIN)/python -m benchmarks.suggestion

bench-quick: $(VENV)/.bench bench-data
	MPLCONFIGDIR=$(CURDIR)/.mplconfig $(BIN)/python -m benchmarks.suggestion --quick

bench-overhead: $(VENV)/.bench bench-data
	MPLCONFIGDIR=$(CURDIR)/.mplconfig $(BIN)/python -m benchmarks.overhead

bench-horizon: $(VENV)/.bench
	MPLCONFIGDIR=$(CURDIR)/.mplconfig $(BIN)/python -m benchmarks.horizon

clean:
	rm -rf $(VENV) demo-output .mplconfig .pytest_cache
