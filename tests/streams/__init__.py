"""The handlers' stream files: the compiled SocketReader against
``makefile('rb')`` (by example, and by a differential fuzz), the writers
against the standard library's _SocketWriter, and ``rfile``/``wfile`` as a
handler sees them.  Helpers are in tests.support.streams; every module here
checks that each test gives back its fds and threads.
"""
