# Two commands on a fresh machine: `make run` (serve the agent offline) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)

.PHONY: install run test bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

run: install ## serve the agent on 127.0.0.1 with the embedded defaults
	$(BIN)/bulwark serve

test: install ## run the whole test suite (offline; starts what it needs)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .langgraph_api
