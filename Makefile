# Every target sets up what it needs from scratch: a venv, the compiled shim, the extras.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NATIVE := $(wildcard native/*.py native/src/*.h native/src/*.c)

.PHONY: test demo bench lint docs fuzz cross qemu-smoke clean setup tools

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py $(NATIVE)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# strace, ip, ethtool, capsh, systemd-socket-activate: installed from Debian's packages when missing.
tools:
	@scripts/install-test-tools

test: $(STAMP) tools
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/janus-net demo

# janus_net vs the stdlib and C (builds build/bench/bench from native/bench/bench.c; about two
# minutes), every DESIGN §11 workload, the udp segmented and hand-over rows from the hooks
# scripts/bench_segments.py and scripts/bench_handover.py, the names rows (resolve vs glibc getaddrinfo against
# dnsmasq, cancel p99, Happy Eyeballs vs create_connection and asyncio) from scripts/bench_names.py in a network
# namespace of its own (root; dnsmasq from `tools`). Pass options through BENCH_ARGS, e.g. make bench BENCH_ARGS="--json build/bench.json";
# BENCH_ARGS=--quick is a few-second smoke run (docs/performance.md). Then scripts/bench_reload.py: 20 reloads
# under a fresh-connection HTTP load per scheme (janus-net run + gunicorn/uvicorn, gunicorn USR2, stop+start);
# RELOAD_ARGS="--reloads 2 --json build/reload.json" for a shorter run or the figures as JSON.
bench: $(STAMP) tools
	$(PY) scripts/bench $(BENCH_ARGS)
	$(PY) scripts/bench_reload.py $(RELOAD_ARGS)

# mypy --strict over the package, ruff's lint and format checks over the tree (tools: the lint extra).
LINT_STAMP := $(VENV)/.lint-installed

$(LINT_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e '.[test,lint]'
	touch $(LINT_STAMP)

lint: $(LINT_STAMP)
	$(PY) -m mypy --strict janus_net && $(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

# The API reference of the public modules, generated from their docstrings (Sphinx autodoc + napoleon;
# sources in docs/api), into build/docs. Warnings are errors: a docstring that does not render fails.
DOCS_STAMP := $(VENV)/.docs-installed

$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e '.[test,docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	rm -rf build/docs build/docs-doctrees
	$(PY) -m sphinx -b html -W --keep-going -q -E -d build/docs-doctrees docs/api build/docs

# Coverage-guided fuzzing of parse_address (atheris; not part of `make test`). FUZZ_TIME seconds.
# New inputs go to build/fuzz-corpus (seeded from tests/fuzz/seeds), crashes to build/fuzz-crash-*.
FUZZ_TIME ?= 60
FUZZ_STAMP := $(VENV)/.fuzz-installed

$(FUZZ_STAMP): $(STAMP)
	$(PY) -m pip install --quiet atheris
	touch $(FUZZ_STAMP)

fuzz: $(FUZZ_STAMP)
	mkdir -p build/fuzz-corpus
	$(PY) tests/fuzz/fuzz_parse_address.py -max_total_time=$(FUZZ_TIME) -artifact_prefix=build/fuzz-crash- \
		build/fuzz-corpus tests/fuzz/seeds

# The shim's generated C compiled for x86_64/arm64 macOS, x86_64/aarch64 FreeBSD, x86_64 NetBSD and
# OpenBSD with zig cc (the cross extra), -Wall with 0 errors and 0 warnings; the layout facts read from
# the assembly and checked against cited values (README, Platforms). Nothing is run; build/cross.
CROSS_STAMP := $(VENV)/.cross-installed

$(CROSS_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e '.[test,cross]'
	touch $(CROSS_STAMP)

cross: $(CROSS_STAMP)
	$(PY) scripts/cross

# janus_net on big-endian s390x and on aarch64 Linux under qemu-user, one process each (no binfmt): a cached
# Debian sysroot (build/qemu), the shim cross-compiled by zig cc, scripts/qemu_smoke_suite.py (README, Platforms).
qemu-smoke: $(CROSS_STAMP)
	scripts/install-qemu-tools
	$(PY) scripts/qemu-smoke

clean:
	rm -rf $(VENV) build *.egg-info janus_net/_shim*.so janus_net/_shim.c janus_net/_shim.o .pytest_cache .hypothesis .mypy_cache .ruff_cache
