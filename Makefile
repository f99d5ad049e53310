# The two commands a new user needs: `make demo` and `make test`. Both set up everything
# (Debian packages, a virtualenv, Kafka from Maven Central) on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench system-deps venv kafka-up kafka-down clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

system-deps:
	bash scripts/install-system-deps.sh

demo: system-deps venv
	$(BIN)/netpilot demo

test: system-deps venv
	$(BIN)/pytest $(PYTEST_ARGS)

bench: venv
	for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

kafka-up: venv
	$(BIN)/netpilot dev kafka up

kafka-down: venv
	$(BIN)/netpilot dev kafka down

clean: kafka-down
	rm -rf .netpilot
