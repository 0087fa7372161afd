"""Let csockserver stand in for socketserver in ``sys.modules``.

After ``install()``, ``import socketserver`` anywhere in the process gets
csockserver, so modules imported afterwards (``http.server``,
``xmlrpc.server``, ``wsgiref.simple_server``, ...) build on it.  It must run
before those modules are imported: a module that already holds the
standard library's classes keeps them.

While installed, the public classes also report ``__module__ ==
"socketserver"``: the name ``socketserver.TCPServer`` then resolves to the
very class that claims it, so pickling by reference and introspection stay
consistent.  ``uninstall()`` puts everything back.
"""

import sys

_saved = None  # (previous sys.modules entry or None, {class: __module__})


def _public_classes():
    from . import _socketserver
    return [getattr(_socketserver, name) for name in _socketserver.__all__]


def install():
    """Make ``import socketserver`` return csockserver from now on.

    Beyond socketserver.  Call it before ``http.server``,
    ``xmlrpc.server``, ``wsgiref.simple_server`` or ``logging.config`` is
    first imported: modules imported earlier keep the standard library's
    classes.  While installed, csockserver's public classes say
    ``__module__ == "socketserver"``.  A second call does nothing.
    """
    global _saved
    package = sys.modules[__package__]
    if _saved is not None:
        return
    classes = _public_classes()
    _saved = (sys.modules.get("socketserver"),
              {cls: cls.__module__ for cls in classes})
    for cls in classes:
        cls.__module__ = "socketserver"
    sys.modules["socketserver"] = package
    from . import _headers
    _headers.place(__name__)


def uninstall():
    """Undo install(): ``socketserver`` is the standard library's again
    for later imports, and the classes get their own ``__module__`` back.

    Modules imported while it was installed keep csockserver's classes.
    """
    global _saved
    if _saved is None:
        return
    previous, modules = _saved
    _saved = None
    from . import _headers
    _headers.remove(__name__)
    for cls, module in modules.items():
        cls.__module__ = module
    if previous is None:
        sys.modules.pop("socketserver", None)
    else:
        sys.modules["socketserver"] = previous
