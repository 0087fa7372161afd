"""csockserver checked against what is outside its code: CPython's own
test suites with csockserver standing in, the documentation (every code
block run or checked, the docstrings), typed user code under mypy, the
build without a compiler, the demo, and a smoke run of the benchmarks.
"""
