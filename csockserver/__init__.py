"""csockserver: the standard library's socketserver, with a compiled engine.

Use it where you used socketserver::

    import csockserver as socketserver

``IMPLEMENTATION`` says which engine runs: ``"cython"`` (compiled) or
``"python"`` (the pure-Python twin, used when the extension cannot load or
``CSOCKSERVER_NO_EXTENSIONS=1`` is set).  ``install()`` makes later
``import socketserver`` statements get this module; ``csockserver.http`` is
``http.server`` on it.  ``VERSION`` is csockserver's version;
``__version__`` is socketserver's, as in the module this one replaces.
"""

from ._engine import IMPLEMENTATION  # noqa: F401  (public)
from ._socketserver import *  # noqa: F401,F403  (the public API)
from ._socketserver import __all__, _SocketWriter, _Threads, _NoThreads  # noqa: F401
from ._standin import install, uninstall  # noqa: F401
# Beyond socketserver (not in __all__, which stays socketserver's):
from ._prefork import (PreforkMixIn, PreforkTCPServer,  # noqa: F401
                       PreforkThreadingTCPServer, PreforkUDPServer)
from ._proxy import ProxyInfo, proxy_info  # noqa: F401

from ._socketserver import _VERSION_DEPRECATED
# csockserver's own version.  ``__version__`` is socketserver's, as in the
# module this one stands in for.
from ._version import __version__ as VERSION  # noqa: F401

_SOCKETSERVER_VERSION = "0.4"

if not _VERSION_DEPRECATED:
    __version__ = _SOCKETSERVER_VERSION
else:
    def __getattr__(name):
        """socketserver's deprecated ``__version__``, with its warning."""
        if name == "__version__":
            import warnings
            # The interpreter's own helper words the warning as its
            # socketserver does, and points it at our caller.
            deprecated = getattr(warnings, "_deprecated", None)
            if deprecated is not None:
                deprecated("__version__", remove=(3, 20))
            else:
                warnings.warn("'__version__' is deprecated and slated for"
                              " removal in Python 3.20", DeprecationWarning,
                              stacklevel=2)
            return _SOCKETSERVER_VERSION
        raise AttributeError("module {!r} has no attribute {!r}".format(
            __name__, name))
