"""The public API against the standard library's: the classes, their
attributes and hooks, every server family (TCP, UDP, AF_UNIX, IPv6) and
the special cases (ssl sockets, subclasses the engine does not know).  Most
tests run once on socketserver, the reference, and once on csockserver
(the ``impl`` fixture), and the two must agree; an overridden hook must be
called as socketserver calls it.
"""
