# Everyday commands.  The extension is built in place, next to the sources;
# here a failed compile is an error, not a quiet fall-back to the pure engine.
# `python3 -m pip install -e '.[test,dev]'` installs what they all need.
PYTHON ?= python3
STRICT = CSOCKSERVER_REQUIRE_EXTENSIONS=1
# Examples per socket kind for `make fuzz`.
FUZZ_EXAMPLES ?= 20000
# Examples of random header blocks for `make fuzz-headers`.
HEADER_FUZZ_EXAMPLES ?= 100000

.PHONY: build debug annotate test test-c test-py pythons conformance asan tsan fuzz fuzz-headers lint typing wheels check-dist bench bench-quick bench-results bench-micro hostile soak faults clean

build:            ## compile the engine in place (under a minute)
	$(STRICT) $(PYTHON) setup.py build_ext --inplace

debug:            ## compile with assertions, -O0 -g
	$(STRICT) CSOCKSERVER_DEBUG_BUILD=1 $(PYTHON) setup.py build_ext --inplace --force

annotate:         ## Cython's HTML annotation beside src_c/*.pyx
	$(STRICT) CSOCKSERVER_ANNOTATE=1 $(PYTHON) setup.py build_ext --inplace --force

test: test-c test-py  ## the whole suite on both engines (~12 min)

test-c: build
	CSOCKSERVER_REQUIRE_EXTENSIONS=1 $(PYTHON) -m pytest

test-py:
	CSOCKSERVER_NO_EXTENSIONS=1 $(PYTHON) -m pytest

pythons:          ## CPython 3.14, 3.15 and a free-threaded 3.13 from Debian (~3 min the first time, then seconds)
	$(PYTHON) tools/pythons.py ensure 3.14 3.15 3.13t

conformance: build  ## CPython's own socketserver, http.server, xmlrpc and wsgiref tests, on each engine (~1 min)
	CSOCKSERVER_REQUIRE_EXTENSIONS=1 $(PYTHON) tools/run_cpython_suite.py
	CSOCKSERVER_NO_EXTENSIONS=1 $(PYTHON) tools/run_cpython_suite.py

asan:             ## the C paths' tests on an ASan+UBSan build; the ordinary build put back (~5 min)
	$(PYTHON) tools/run_sanitized.py

tsan:             ## threading, stream and fork tests on a free-threaded CPython built with ThreadSanitizer (~17 min; ~3 min more the first time)
	$(PYTHON) tools/run_tsan.py

fuzz: build       ## SocketReader against makefile('rb'), FUZZ_EXAMPLES random examples per socket kind (~20 min)
	$(PYTHON) tools/fuzz.py --examples $(FUZZ_EXAMPLES)

fuzz-headers: build  ## the compiled header parser against http.client's, HEADER_FUZZ_EXAMPLES random blocks (~8 min)
	CSOCKSERVER_HEADER_FUZZ_EXAMPLES=$(HEADER_FUZZ_EXAMPLES) $(PYTHON) -m pytest -q -p no:cacheprovider -o timeout=0 -k "not own" tests/features/test_header_parsing.py

lint:             ## ruff over the Python files, cython-lint over src_c/ (seconds)
	$(PYTHON) -m ruff check .
	cython-lint src_c/*.pyx src_c/*.pxi src_c/*.pxd src_c/includes/*.pxd

typing:           ## mypy --strict on the docs' examples and tests/conformance/test_typed_usage.py; stubtest (~1 min)
	$(PYTHON) tools/check_typing.py

wheels:           ## dist/: the sdist and a manylinux wheel per CPython 3.8+ (pyenv's, and 3.14/3.15 from tools/pythons.py; ~15 min)
	$(PYTHON) tools/build_wheels.py

check-dist:       ## each wheel in a venv without a compiler (3.11 in full), and the sdist (~30 min)
	$(PYTHON) tools/check_dist.py --full 3.11 --sdist

bench: build      ## the full side-by-side matrix (~11 min): build/bench/matrix.md, and matrix.png with matplotlib
	$(PYTHON) -m bench

bench-quick: build  ## the headline workloads (< 2 min): build/bench/matrix-quick.md
	$(PYTHON) -m bench --quick

bench-results: build  ## the full matrix (~11 min) written into the tracked bench/RESULTS.md (its sections below the matrix kept)
	$(PYTHON) -m bench --out bench/RESULTS.md

bench-micro: build  ## pytest-benchmark of the per-request path (~1 min)
	$(PYTHON) -m pytest bench/micro -p no:cacheprovider

hostile: build    ## hostile clients, the stdlib beside csockserver (~1 min): build/bench/hostile.md
	$(PYTHON) -m bench.probes hostile

soak: build       ## 1M requests per server kind, 200k on the stdlib, watching RSS, fds, threads (~16 min): build/bench/soak.md
	$(PYTHON) -m bench.probes soak --stdlib

faults: build     ## process faults (killed supervisor, workers, children; shutdown under load), the stdlib beside csockserver (~1 min): build/bench/faults.md
	$(PYTHON) -m bench.probes faults --repeat 3

clean:
	rm -rf build dist bench/_build csockserver/*.so src_c/*.c src_c/*.html
