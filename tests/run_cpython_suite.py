"""Run one of CPython's own test modules with csockserver as socketserver.

Usage: python tests/run_cpython_suite.py [test.test_socketserver ...]

The module comes from the running interpreter's ``test`` package; nothing
of it is copied here.  Exit status: 0 when every test passed (skips are
allowed), 1 on any failure or error, 3 when the interpreter has no ``test``
package.  The engine is whichever csockserver picks (set
CSOCKSERVER_NO_EXTENSIONS=1 for the pure one).
"""

import importlib
import sys
import unittest

NO_TEST_PACKAGE = 3


def main(names):
    try:
        import test.support  # noqa: F401
    except ImportError:
        print("this interpreter has no 'test' package", file=sys.stderr)
        return NO_TEST_PACKAGE

    import csockserver
    csockserver.install()
    suite = unittest.TestSuite()
    for name in names:
        sys.modules.pop(name, None)
        module = importlib.import_module(name)
        # The substitution must really have happened, or the run proves
        # nothing about csockserver.
        standin = getattr(module, "socketserver", None)
        if standin is not None and standin is not csockserver:
            print("%s did not pick up csockserver" % name, file=sys.stderr)
            return 1
        suite.addTests(unittest.defaultTestLoader.loadTestsFromModule(module))
    print("csockserver engine: %s" % csockserver.IMPLEMENTATION)
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    print("ran %d, failures %d, errors %d, skipped %d" % (
        result.testsRun, len(result.failures), len(result.errors),
        len(result.skipped)))
    return 0 if result.wasSuccessful() and result.testsRun else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["test.test_socketserver"]))
