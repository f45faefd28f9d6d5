# The two commands of the README: `make demo` and `make test`. Both set up everything on a fresh
# machine: a .venv with pinned dependencies (the CPU torch wheel where there is no GPU), then MNIST.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test setup data lint bench clean

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

setup: $(STAMP)

data: setup
	$(BIN)/copyscope data mnist
	$(BIN)/copyscope data shakespeare

# The demo study: the committed models/ checkpoints sampled, audited against all 60,000 training
# images with the held-out control, quality-checked, tabulated (configs/demo.toml), then reported.
demo: data
	$(BIN)/copyscope run configs/demo.toml
	$(BIN)/copyscope report runs/demo/*/ --out runs/demo/report.html
	@echo "Explore every copy in the web app: $(BIN)/copyscope app runs/demo/*/  then open http://127.0.0.1:7860"

test: data
	@test -x /usr/bin/chromium || (apt-get update && apt-get install -y chromium)
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check src tests benchmarks

bench: data
	$(BIN)/python benchmarks/search.py

clean:
	rm -rf $(VENV) runs .pytest_cache
