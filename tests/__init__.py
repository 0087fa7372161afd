"""csockserver's test suite.

A package, so that its modules are imported by their dotted names
(``tests.streams.test_stream_reader``): modules of the same name in two
folders cannot clash, and the helpers are imported from ``tests.support``
by name, never through conftest.  pytest's default import mode puts the
directory that holds ``tests/`` first on ``sys.path``.
"""
