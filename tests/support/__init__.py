"""The suite's helpers, one module per job, imported by name
(``from tests.support.servers import serving``); conftest.py holds only
the fixtures and hooks built on them.

- ``env``: this interpreter and machine (timeouts, fork, AF_UNIX), and the
  environment of a child Python.
- ``engines``: what is under test: the stdlib beside csockserver, and
  csockserver's two engines.
- ``servers``: a server served for a block, every wait bounded.
- ``clients``: client sockets and what they read.
- ``sockets``: socket pairs, free ports, short AF_UNIX paths.
- ``procs``: what /proc says about a process: alive, zombie, gone; CPU,
  fds.
- ``leaks``: this process's fds and threads, before and after.
- ``streams``: the stream-file tests' readers, writers and helpers.
- ``prefork``: a prefork supervisor in a child process.
- ``hostile``: hostile clients against a server child (bench/hostile.py
  runs them too).

Nothing here is imported by this file: ``bench/hostile.py`` imports
``hostile`` after it has chosen the engine through the environment.
"""
