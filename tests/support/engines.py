"""What is under test: the standard library's socketserver beside
csockserver (most tests run once against each, the stdlib as the
reference).
"""

import socketserver

import csockserver

# The ``impl`` fixture's values, by test id.
IMPLS = {"stdlib": socketserver, "csock": csockserver}
