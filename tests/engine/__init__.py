"""The engine behind the API: the contract both engines export, which one
is picked at import and why, the package's import layers, and the two
dispatch paths the engine runs (request threads: leader/followers and
handoff; forked children and their reaping).
"""
