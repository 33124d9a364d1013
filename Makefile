# vigil — two commands set everything up: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
HANDBOOK ?= ../shared/data/fraud-handbook/transactions.parquet

SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint bench bench-handbook bench-serving bench-sequence browser fonts clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[serve,spark,deep,identity,test]'
	@touch $(STAMP)

demo: $(STAMP) fonts
	$(VENV)/bin/vigil demo --out runs/demo

# Debian's Chromium, which the report test drives through Playwright (no browser download);
# where it cannot be installed, the browser test skips (CI sets VIGIL_REQUIRE_BROWSER=1).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { echo "installing Debian's chromium for the report browser test"; \
	    $(SUDO) apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 || \
	    { $(SUDO) apt-get update -qq && \
	      $(SUDO) apt-get install -y -qq --no-install-recommends chromium >/dev/null; } || \
	    echo "could not install chromium: the browser test will skip"; }

# Debian's OCR-B font draws the machine-readable zone of the generated identity documents;
# without it the document tests skip with a reason (CI sets VIGIL_REQUIRE_IDENTITY=1).
fonts:
	@test -f /usr/share/fonts/opentype/ocr-b/OCRB.otf || \
	  { echo "installing Debian's fonts-ocr-b for the generated identity documents"; \
	    $(SUDO) apt-get install -y -qq --no-install-recommends fonts-ocr-b >/dev/null 2>&1 || \
	    { $(SUDO) apt-get update -qq && \
	      $(SUDO) apt-get install -y -qq --no-install-recommends fonts-ocr-b >/dev/null; } || \
	    echo "could not install fonts-ocr-b: the document tests will skip"; }

test: $(STAMP) browser fonts
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

bench-sequence: $(STAMP)
	$(VENV)/bin/vigil bench sequence --data $(HANDBOOK)

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache vigil.db vigil.db-*
