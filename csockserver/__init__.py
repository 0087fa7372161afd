"""csockserver: the standard library's socketserver, with a compiled engine.

Use it where you used socketserver::

    import csockserver as socketserver

``IMPLEMENTATION`` says which engine runs: ``"cython"`` (compiled) or
``"python"`` (the pure-Python twin, used when the extension cannot load or
``CSOCKSERVER_NO_EXTENSIONS=1`` is set).  ``install()`` makes later
``import socketserver`` statements get this module; ``csockserver.http`` is
``http.server`` on it.
"""

from ._engine import IMPLEMENTATION  # noqa: F401  (public)
from ._socketserver import *  # noqa: F401,F403  (the public API)
from ._socketserver import __all__, _SocketWriter, _Threads, _NoThreads  # noqa: F401
from ._standin import install, uninstall  # noqa: F401
# Beyond socketserver (not in __all__, which stays socketserver's):
from ._prefork import (PreforkMixIn, PreforkTCPServer,  # noqa: F401
                       PreforkThreadingTCPServer, PreforkUDPServer)
from ._proxy import ProxyInfo, proxy_info  # noqa: F401

from ._version import __version__  # noqa: F401
