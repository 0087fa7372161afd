"""The engine's neutral layer: what both engines share, and the choice
between them.

csockserver is four places, each with one job:

- the public shell (``csockserver/*.py``): the socketserver classes, their
  hooks and csockserver's additions, in plain Python;
- this package, the neutral layer: the engine contract (``contract``), the
  plan of stock hooks (``plan``), and the bookkeeping that gains nothing
  from compilation (``timing``, ``workers``, ``exit``, ``children``);
  then ``selection``, which picks an engine, and ``streams``, which picks a
  handler's files from it;
- the compiled engine (``csockserver._cengine``, built from ``src_c/``);
- its pure-Python twin (``csockserver._pure``), fragment for module.

Both engines import the neutral modules and nothing else of csockserver
(besides ``_proxy``); the neutral modules import no engine.  This
``__init__`` imports nothing, so that loading one neutral module never
loads an engine.
"""
