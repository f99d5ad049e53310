# The two commands a new user needs: `make demo` and `make test`. Both set up everything
# (Debian packages, a virtualenv, Kafka from Maven Central) on a fresh machine; `make test`
# also builds Helm and the test API servers with Go (cached in ~/.cache/netpilot).
# While editing: `make check` (ruff + mypy) and `make test-fast` (check, then the tests that
# need no broker, root, routers or slow builds; see README "Developing").
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo lab-demo test test-fast check bench system-deps venv go-tools image kafka-up kafka-down clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,dev]'
	touch $(STAMP)

venv: $(STAMP)

system-deps:
	bash scripts/install-system-deps.sh

demo: system-deps venv
	$(BIN)/netpilot demo

# The closed loop in the routing lab (network namespaces: root): a surge on the PNI, the
# autopilot's ADD, the kernel moving the prefix, the WITHDRAW; prints each step and writes
# out/lab-demo/lab-demo.png. Tears everything down on exit and on Ctrl-C (docs/lab.md).
lab-demo: system-deps venv
	$(BIN)/netpilot dev lab demo

# Helm 4, crane and the test API server, built from the Go module proxy once and cached in
# ~/.cache/netpilot (tests/gotools.py): minutes on 2 cores when cold, nothing when cached.
go-tools: venv
	$(BIN)/python -m tests.gotools

# The container image, without a container engine (deploy/image/build.py, docs/deploy.md):
# out/image/netpilot-<version>.tar, named <chart image.repository>:<pyproject version>. As root.
image: venv
	bash scripts/install-system-deps.sh mmdebstrap
	$(BIN)/python -m deploy.image.build

test: system-deps venv go-tools
	$(BIN)/pytest $(PYTEST_ARGS)

# Lint, formatting and types (configured in pyproject.toml); non-zero exit on any finding.
check: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The markers are applied in tests/conftest.py.
FAST_MARKERS := not kafka and not netns and not slow
test-fast: check
	$(BIN)/pytest -m "$(FAST_MARKERS)" $(PYTEST_ARGS)

# The self-contained benchmarks (the others need a broker: see each file's docstring).
BENCHES := bench_wire bench_decode bench_plausibility bench_lpm bench_planner bench_clickhouse
bench: venv
	for b in $(BENCHES); do echo "== $$b"; $(BIN)/python bench/$$b.py || exit 1; done

kafka-up: venv
	$(BIN)/netpilot dev kafka up

kafka-down: venv
	$(BIN)/netpilot dev kafka down

clean: kafka-down
	rm -rf .netpilot
