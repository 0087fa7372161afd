"""Pick the engine once, at import time.

The compiled engine (``csockserver._cengine``) is used when it imports.
``CSOCKSERVER_NO_EXTENSIONS=1`` forces the pure-Python twin
(``csockserver._pure``); ``CSOCKSERVER_REQUIRE_EXTENSIONS=1`` turns a
missing or broken compiled engine into an ImportError instead of a silent
fallback (CI sets it, so a build problem cannot hide).  Either one
implements ``contract.Engine``.

The shell looks ``engine`` up here at each call, never keeping its own
reference, so that a test can serve a server on the other engine in the
same process by replacing it (the handlers' files, ``streams``, stay those
of the engine chosen at import).
"""

import os

__all__ = ["engine", "IMPLEMENTATION"]


def _flag(name):
    return os.environ.get(name, "") not in ("", "0")


if _flag("CSOCKSERVER_NO_EXTENSIONS"):
    from .. import _pure as engine
    IMPLEMENTATION = "python"
else:
    try:
        from .. import _cengine as engine
        IMPLEMENTATION = "cython"
    except ImportError:
        if _flag("CSOCKSERVER_REQUIRE_EXTENSIONS"):
            raise
        from .. import _pure as engine
        IMPLEMENTATION = "python"
