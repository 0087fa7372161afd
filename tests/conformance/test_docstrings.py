"""What csockserver adds to socketserver is explained where help() looks.

The additions are found by comparing csockserver with the running
interpreter's socketserver (and csockserver.http with http.server), so a
new class, function or attribute fails here until it is documented: its own
docstring, a line in its class's docstring giving its default, and a
mention in the package docstring, which help(csockserver) shows first.
"""

import functools
import http.server
import pydoc
import re
import socketserver
import warnings

import pytest

import csockserver
import csockserver.http


def public(names):
    return {name for name in names if not name.startswith("_")}


@functools.lru_cache(maxsize=None)
def help_text(obj):
    """What help(obj) prints, without the pager."""
    with warnings.catch_warnings():
        # help() reads __version__, which socketserver (and csockserver)
        # deprecate from Python 3.15.
        warnings.simplefilter("ignore", DeprecationWarning)
        return pydoc.render_doc(obj, renderer=pydoc.plaintext)


# Module-level names beyond socketserver's: classes, functions, the http
# submodule, and two strings (IMPLEMENTATION, VERSION).
MODULE_ADDITIONS = sorted(public(dir(csockserver)) - set(dir(socketserver)))


def _attribute_additions():
    """(class that defines it, name) for each attribute csockserver's
    classes have beyond the running socketserver's, and PreforkMixIn's."""
    found = set()
    for name in socketserver.__all__:
        ours, theirs = getattr(csockserver, name), getattr(socketserver, name)
        for attr in public(dir(ours)) - set(dir(theirs)):
            owner = next(cls for cls in ours.__mro__ if attr in vars(cls))
            found.add((owner, attr))
    prefork = csockserver.PreforkMixIn
    for attr in public(vars(prefork)):
        if not callable(getattr(prefork, attr)):
            found.add((prefork, attr))
    return sorted(found, key=lambda pair: (pair[0].__name__, pair[1]))


ATTRIBUTE_ADDITIONS = _attribute_additions()


def test_the_additions_are_found():
    # A guard on the discovery above: these at least.
    assert {"PreforkMixIn", "PreforkTCPServer", "ProxyInfo", "proxy_info",
            "install", "uninstall", "IMPLEMENTATION", "VERSION",
            "http"} <= set(MODULE_ADDITIONS)
    assert {"max_threads", "read_deadline", "proxy_protocol",
            "systemd_notify", "from_systemd", "graceful_timeout"} <= {
                attr for _, attr in ATTRIBUTE_ADDITIONS}


def test_all_stays_socketservers():
    # The additions are not in __all__ (CPython's own test_socketserver,
    # run with csockserver installed, checks __all__ against the classes
    # that claim the module), so help() lists them only in the docstring.
    assert not set(MODULE_ADDITIONS) & set(csockserver.__all__)


@pytest.mark.parametrize("name", MODULE_ADDITIONS + sorted(
    {attr for _, attr in ATTRIBUTE_ADDITIONS}))
def test_package_help_names_each_addition(name):
    assert re.search(r"\b%s\b" % re.escape(name), help_text(csockserver))


def test_package_help_points_to_the_docs():
    text = help_text(csockserver)
    assert "docs/guide.md" in text
    assert "docs/reference.md" in text
    assert "import csockserver as socketserver" in text


@pytest.mark.parametrize("name", [name for name in MODULE_ADDITIONS if not
                                  isinstance(getattr(csockserver, name),
                                             str)])
def test_each_addition_has_a_docstring_of_its_own(name):
    obj = getattr(csockserver, name)
    # A class's own: vars(), since a class without one would show its
    # base's through inspect.getdoc().
    doc = vars(obj).get("__doc__") if isinstance(obj, type) else obj.__doc__
    assert doc and doc.strip(), name


@pytest.mark.parametrize("owner, attr", ATTRIBUTE_ADDITIONS, ids=[
    "%s.%s" % (owner.__name__, attr) for owner, attr in ATTRIBUTE_ADDITIONS])
def test_each_added_attribute_is_documented_with_its_default(owner, attr):
    value = getattr(owner, attr)
    text = help_text(owner)
    if callable(value):
        assert "``%s(" % attr in vars(owner)["__doc__"]
        assert value.__doc__ and value.__doc__.strip()
    else:
        # The class's docstring gives the real default: "``name = value``".
        assert "``%s = %r``" % (attr, value) in text


def test_prefork_help_explains_the_signals():
    text = help_text(csockserver.PreforkMixIn)
    for signal_name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGTTIN", "SIGTTOU"):
        assert signal_name in text


def test_http_docstring_names_its_additions():
    # Beyond what its classes inherit from csockserver's (documented there).
    inherited = {attr for _, attr in ATTRIBUTE_ADDITIONS}
    found = set()
    for name in http.server.__all__:
        ours = getattr(csockserver.http, name, None)
        if ours is not None:
            found |= public(dir(ours)) - set(dir(getattr(http.server, name)))
    found -= inherited
    assert {"request_timeout", "keepalive_timeout"} <= found
    for attr in sorted(found):
        assert attr in csockserver.http.__doc__, attr
