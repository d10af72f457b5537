# The two commands of the README: `make demo` and `make test`. Each makes the venv it needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch 2.13.0 CPU build (on disk here) for calibration; the simulator does not need it.
	$(BIN)/pip install -q -e '.[dev,calibrate]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/dcsim simulate examples/gpt3-175b-1024xh100.yaml

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b; done

clean:
	rm -rf $(VENV)
