"""What csockserver adds to socketserver, each with its own module: prefork
servers and their lifecycle, the PROXY protocol, systemd socket activation,
HAProxy in front of prefork backends, csockserver.http and its stand-in for
http.server, and read deadlines (for stream handlers and for HTTP).
"""
