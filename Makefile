# Two commands on a fresh machine: `make run` (serve the agent offline) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)

# The production engine (aegra) needs Python 3.12: `python3.12` if it runs, else pyenv's.
PYENV_ROOT ?= $(HOME)/.pyenv
PROD_VENV ?= .venv-prod
PROD_PYTHON ?= $(firstword $(foreach candidate,python3.12 $(wildcard $(PYENV_ROOT)/versions/3.12*/bin/python3.12) /usr/local/bin/python3.12 /usr/bin/python3.12,$(shell $(candidate) -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1 && echo $(candidate))))
PROD_STAMP := $(PROD_VENV)/.installed-$(shell cat pyproject.toml constraints-prod.txt | cksum | cut -d' ' -f1)

# The OTLP end-to-end test reads spans back from a real Phoenix (too many packages for .venv).
PHOENIX_VENV ?= .venv-phoenix
PHOENIX_STAMP := $(PHOENIX_VENV)/.installed-arize-phoenix-20.26.1

.PHONY: install prod-install phoenix-install run test bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

$(PROD_STAMP): pyproject.toml constraints-prod.txt
	@test -n "$(PROD_PYTHON)" || { echo "make prod-install: no Python 3.12 found (python3.12 on PATH or $(PYENV_ROOT)/versions/3.12.*): install it, or pass PROD_PYTHON=/path/to/python3.12" >&2; exit 1; }
	$(PROD_PYTHON) -m venv $(PROD_VENV)
	$(PROD_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PROD_VENV)/bin/python -m pip install --quiet -c constraints-prod.txt -e '.[prod]'
	rm -f $(PROD_VENV)/.installed-* && touch $@

prod-install: $(PROD_STAMP) ## .venv-prod: Python 3.12 with the aegra engine (bulwark serve --prod)

$(PHOENIX_STAMP):
	$(PYTHON) -m venv $(PHOENIX_VENV)
	$(PHOENIX_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PHOENIX_VENV)/bin/python -m pip install --quiet 'arize-phoenix==20.26.1'
	rm -f $(PHOENIX_VENV)/.installed-* && touch $@

phoenix-install: $(PHOENIX_STAMP) ## .venv-phoenix: an OTLP receiver for tests/test_observability.py

run: install ## serve the agent on 127.0.0.1 with the embedded defaults
	$(BIN)/bulwark serve

# The prod-engine tests need .venv-prod: built first where a Python 3.12 exists, else they skip.
test: install ## run the whole test suite (offline; starts what it needs)
	@if [ -n "$(PROD_PYTHON)" ]; then $(MAKE) --no-print-directory prod-install \
	  || echo "make prod-install failed: the prod-engine tests will skip (see above)"; \
	  else echo "no Python 3.12: the prod-engine tests will skip (see make prod-install)"; fi
	@$(MAKE) --no-print-directory phoenix-install || echo "make phoenix-install failed: the OTLP tests of tests/test_observability.py will skip"
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) $(PROD_VENV) $(PHOENIX_VENV) .pytest_cache .langgraph_api
