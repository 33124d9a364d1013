# vigil — two commands set everything up: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
HANDBOOK ?= ../shared/data/fraud-handbook/transactions.parquet

.PHONY: demo test lint bench bench-handbook bench-serving clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[serve,test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/vigil demo --out runs/demo

test: $(STAMP)
	$(PY) -m ruff check vigil tests bench
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check vigil tests bench

bench: $(STAMP)
	$(VENV)/bin/vigil bench speed --data $(HANDBOOK)
	$(VENV)/bin/vigil bench serving

bench-serving: $(STAMP)
	$(VENV)/bin/vigil bench serving

bench-handbook: $(STAMP)
	$(VENV)/bin/vigil bench handbook --data $(HANDBOOK)

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache vigil.db vigil.db-*
