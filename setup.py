"""Build of csockserver's one extension module, the compiled engine.

Cython directives live here and nowhere else.  Set CSOCKSERVER_DEBUG_BUILD=1
for a build with assertions and without optimisation, and
CSOCKSERVER_ANNOTATE=1 for Cython's HTML annotation next to the sources.
"""
import os

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

setup(
    ext_modules=cythonize(
        [engine],
        compiler_directives=DIRECTIVES,
        include_path=["src_c/includes"],
        annotate=os.environ.get("CSOCKSERVER_ANNOTATE") == "1",
    ),
)
