"""Fixtures for the per-request micro-benchmarks (pytest-benchmark).

Run from the project root (the root pyproject's ``testpaths = ["tests"]``
keeps this directory out of a plain ``python -m pytest``)::

    PYTHONPATH=. python3 -m pytest bench/micro -q -p no:cacheprovider
    CSOCKSERVER_NO_EXTENSIONS=1 PYTHONPATH=. python3 -m pytest bench/micro -q

Every benchmark is parametrized over ``impl`` (ids ``stdlib`` / ``csock``)
and carries a ``group`` named after its function, so the default table
already puts the two side by side; ``--benchmark-group-by=func`` gives the
same grouping.
"""

import socketserver

import pytest

import csockserver

IMPLS = {"stdlib": socketserver, "csock": csockserver}


def pytest_report_header(config):
    return "csockserver engine: %s (the 'csock' rows)" % (
        csockserver.IMPLEMENTATION,)


@pytest.fixture(params=list(IMPLS), ids=list(IMPLS))
def impl(request):
    """The module under test: the stdlib's socketserver or csockserver."""
    return IMPLS[request.param]


@pytest.fixture
def bench(benchmark, impl):
    """``benchmark`` labelled with which implementation (and engine) ran."""
    if impl is csockserver:
        benchmark.extra_info["impl"] = "csock-" + csockserver.IMPLEMENTATION
    else:
        benchmark.extra_info["impl"] = "stdlib"
    return benchmark
