# Two commands for a newcomer: `make demo` and `make test`. Everything else is here too.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean system-deps check-inbox

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,fast]'
	touch $(STAMP)

## demo: set up, then import the sample articles and subscribers, build an edition,
## write the preview files and send the digest through a local sink into a Maildir
demo: $(STAMP)
	$(BIN)/python scripts/demo.py

system-deps:
	./scripts/system-deps.sh

## test: set up (venv, dev dependencies, chromium and postgresql when root) and run the suite
test: $(STAMP) system-deps
	$(BIN)/pytest -q

## check-inbox: the real messages through checkers no one here wrote: SpamAssassin
## (local rules), the Nu HTML checker (vnu.jar) and axe-core in Chromium
check-inbox: $(STAMP)
	./scripts/system-deps.sh --inbox
	$(BIN)/pytest -q tests/content/test_deliverability.py tests/web/test_inbox_checks.py tests/web/test_browser.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	./scripts/system-deps.sh --bench
	$(BIN)/python bench/render.py
	$(BIN)/python bench/import.py
	$(BIN)/python bench/send.py
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/console.py

clean:
	rm -rf $(VENV) demo build dist .pytest_cache .mypy_cache .ruff_cache
