"""What is under test: the standard library's socketserver beside
csockserver (most tests run once against each, the stdlib as the
reference), and csockserver's two engines, for the tests that run a
server on each of them in one process (the ``engine`` fixture).
"""

import importlib
import socketserver

import pytest

import csockserver

# The ``impl`` fixture's values, by test id.
IMPLS = {"stdlib": socketserver, "csock": csockserver}


def _importable(name):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


# The ``engine`` fixture's values: the compiled engine where it imports
# (None where it is not built), and the pure one, always there.
ENGINES = {"cython": _importable("csockserver._cengine"),
           "python": importlib.import_module("csockserver._pure")}


def engine_params():
    """ENGINES' names as fixture params, "cython" skipped where it does not
    import (so that the test ids are the same everywhere)."""
    return [name if module is not None else pytest.param(
                name, marks=pytest.mark.skip(
                    reason="the compiled engine does not import"))
            for name, module in ENGINES.items()]
