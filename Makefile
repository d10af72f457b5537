# The README's commands. Each makes the part of the venv it needs:
#   make demo           the simulator only (no torch): a fresh clone runs its first scenario
#   make calibrate-env  + torch (the `calibrate` extra), for `dcsim calibrate run|check`
#   make test           + the test tools and the calibrate extra, then the whole test suite
#   make fuzz           the fuzz campaign, FUZZ_EXAMPLES examples per campaign
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SIM := $(VENV)/.installed-sim
CAL := $(VENV)/.installed-calibrate
DEV := $(VENV)/.installed-dev
FUZZ_EXAMPLES ?= 5000

.PHONY: demo calibrate-env test fuzz bench readme-figures clean

# --no-compile: Python compiles each module when first imported instead of pip compiling every
# file of scipy, pandas and pyarrow up front (most of the install time on a 2-core machine).
$(SIM): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --no-compile -e .
	touch $@

# torch 2.13.0, the CPU build (on disk on the development machines); the simulator never
# imports it.
$(CAL): $(SIM)
	$(BIN)/pip install -q --no-compile -e '.[calibrate]'
	touch $@

$(DEV): $(SIM)
	$(BIN)/pip install -q --no-compile -e '.[dev,calibrate]'
	touch $(CAL) $@

demo: $(SIM)
	$(BIN)/dcsim simulate examples/gpt3-175b-1024xh100.yaml

calibrate-env: $(CAL)

test: $(DEV)
	$(BIN)/python -m pytest

fuzz: $(DEV)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest tests/test_fuzz.py -p no:cacheprovider

bench: $(SIM)
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b; done

# Rewrite the README's figure blocks from the commands beside them (tests/test_readme.py
# checks they still agree).
readme-figures: $(SIM)
	$(BIN)/python -m tests.readme_figures --write

clean:
	rm -rf $(VENV)
