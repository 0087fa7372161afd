"""Build of csockserver's one extension module, the compiled engine.

Cython directives live here and nowhere else.  Set CSOCKSERVER_DEBUG_BUILD=1
for a build with assertions and without optimisation, and
CSOCKSERVER_ANNOTATE=1 for Cython's HTML annotation next to the sources.
"""
import os

import setuptools
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("CSOCKSERVER_DEBUG_BUILD") == "1"

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": False,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
}

engine = Extension(
    "csockserver._cengine",
    sources=["src_c/_cengine.pyx"],
    extra_compile_args=["-O0", "-g"] if DEBUG else ["-O2"],
    undef_macros=["NDEBUG"] if DEBUG else [],
)


def license_metadata():
    """MIT, in the form this setuptools writes (see pyproject.toml)."""
    major = int(setuptools.__version__.split(".")[0])
    if major >= 77:
        return {"license_expression": "MIT", "license_files": ["LICENSE"]}
    return {"license": "MIT", "license_files": ["LICENSE"]}


setup(
    **license_metadata(),
    ext_modules=cythonize(
        [engine],
        compiler_directives=DIRECTIVES,
        include_path=["src_c/includes"],
        annotate=os.environ.get("CSOCKSERVER_ANNOTATE") == "1",
    ),
)
