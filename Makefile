# Each target builds its own virtual environment in .venv: only Python 3.11+ is needed on the machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# `make install` puts the command in $(PREFIX)/bin (~/.local/bin is on most users' PATH already).
PREFIX ?= $(HOME)/.local
APP := $(PREFIX)/share/crisis-playbook

.PHONY: demo test lint bench clean install uninstall

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## demo: validate the example home, dry-run the whatsapp-outage trigger in both languages, then run it as a
## drill in a scratch copy (build/demo): the status page is really written, X and email go to sandbox files
demo: $(STAMP)
	$(BIN)/playbook --home examples/home validate
	$(BIN)/playbook --home examples/home trigger whatsapp-outage --dry-run
	rm -rf build/demo && mkdir -p build && cp -r examples/home build/demo
	rm -rf build/demo/.playbook build/demo/outbox build/demo/public
	$(BIN)/playbook --home build/demo trigger whatsapp-outage --drill --yes
	@echo "Drill status page: build/demo/public/status-drill/index.html (X and email: build/demo/outbox/)"

## test: lint, type-check and run the whole test suite (installs headless Chromium if it is missing)
# The tests start `playbook` in a subprocess over a thousand times. Under PYTHONDONTWRITEBYTECODE (set on some
# CI machines) each start would compile every module of the package again, a third of a trigger's CPU: they
# are compiled once here, as pip does for an installed package, and a changed file is compiled again.
test: $(STAMP)
	./scripts/install-test-deps
	$(BIN)/ruff check playbook tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m compileall -q playbook
	$(BIN)/pytest -n 3 --dist loadgroup

## install: `playbook` on the PATH, from a virtual environment of its own in $(APP) (as `pipx install .` does):
## it keeps working when this clone is moved or deleted
install:
	$(PYTHON) -m venv $(APP)
	$(APP)/bin/pip install --quiet --upgrade pip
	$(APP)/bin/pip install --quiet .
	mkdir -p $(PREFIX)/bin
	ln -sf $(APP)/bin/playbook $(PREFIX)/bin/playbook
	@case ":$$PATH:" in *":$(PREFIX)/bin:"*) echo "Installed: playbook --version";; \
	  *) echo "Installed $(PREFIX)/bin/playbook; add $(PREFIX)/bin to your PATH (e.g. in ~/.profile):" \
	     "export PATH=\"$(PREFIX)/bin:\$$PATH\"";; esac

uninstall:
	rm -rf $(APP) $(PREFIX)/bin/playbook

lint: $(STAMP)
	$(BIN)/ruff check playbook tests benchmarks
	$(BIN)/mypy

## bench: ratios against baselines, measured side by side
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
