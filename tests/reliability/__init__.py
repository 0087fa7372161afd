"""How the servers behave when things go wrong or get busy: hostile clients,
processes killed under load, handler and resource failures, shutdown and
server_close() races, the interpreter exiting while serving, and many
threads at once on a free-threaded interpreter.
"""
