"""The package's import structure: no cycles, layers that import downward.

Every import statement of csockserver's modules counts, at module level or
inside a function, read from the sources (the Cython engine's too), so a
cycle hidden in a lazy import shows up here as well.
"""

import ast
import os
import re
import subprocess
import sys

import pytest

from tests.support.env import TREE, child_env

ROOT = TREE
PACKAGE = os.path.join(ROOT, "csockserver")
SRC_C = os.path.join(ROOT, "src_c")

# The pure engine's files, each importing only those before it; they mirror
# src_c/*.pxi one to one.
PURE_LAYERS = ["util", "transport", "requests", "proxy", "threads", "fork",
               "loop"]
# Neutral ground: both engines import these, and these import no engine.
NEUTRAL = {"csockserver._engine", "csockserver._engine.children",
           "csockserver._engine.contract", "csockserver._engine.exit",
           "csockserver._engine.plan", "csockserver._engine.timing",
           "csockserver._engine.workers", "csockserver._proxy"}

pytestmark = pytest.mark.skipif(
    not os.path.isdir(SRC_C), reason="needs the source tree (src_c/)")


def _module_files():
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                if dotted.endswith(".__init__"):
                    dotted = dotted[:-len(".__init__")]
                yield dotted, path


MODULES = dict(_module_files())
MODULES["csockserver._cengine"] = None  # the compiled engine, src_c/


def _resolve(importer, level, base, names):
    """The csockserver modules one ``from ... import`` statement loads."""
    if level:
        package = importer if MODULES.get(importer, "").endswith(
            "__init__.py") else importer.rpartition(".")[0]
        for _ in range(level - 1):
            package = package.rpartition(".")[0]
        base = package + ("." + base if base else "")
    # ``from package import submodule`` loads the submodule (its package
    # is loaded anyway, as for any submodule); any other name is the
    # module's own.
    submodules = {base + "." + name for name in names
                  if base + "." + name in MODULES}
    if base in MODULES and len(submodules) < len(names):
        submodules.add(base)
    return submodules


def _python_imports(dotted, path):
    with open(path) as source:
        tree = ast.parse(source.read(), path)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names
                      if alias.name in MODULES}
        elif isinstance(node, ast.ImportFrom):
            found |= _resolve(dotted, node.level, node.module or "",
                              [alias.name for alias in node.names])
    return found - {dotted}


# from csockserver.x import a, b  /  from csockserver.x import (a,\n b)  /
# import csockserver.x
_CYTHON_IMPORT = re.compile(
    r"^\s*(?:from\s+(csockserver[\w.]*)\s+c?import\s+"
    r"(\([^)]*\)|[^\n]*)|import\s+(csockserver[\w.]*))", re.M)


def _cython_imports():
    found = set()
    for name in os.listdir(SRC_C):
        if name.endswith((".pyx", ".pxi")):
            with open(os.path.join(SRC_C, name)) as source:
                for base, names, plain in _CYTHON_IMPORT.findall(
                        source.read()):
                    if plain:
                        found.add(plain)
                    else:
                        imported = [entry.split()[0] for entry in
                                    names.strip("()").split(",")
                                    if entry.strip()]
                        found |= _resolve("", 0, base, imported)
    return found


def import_graph():
    graph = {dotted: _python_imports(dotted, path)
             for dotted, path in MODULES.items() if path is not None}
    graph["csockserver._cengine"] = _cython_imports()
    return graph


def _find_cycle(graph):
    """One import cycle as a list of modules, or None."""
    state = {}
    stack = []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module)
            if cycle:
                return cycle
    return None


def test_the_graph_sees_the_engines_imports():
    graph = import_graph()
    assert "csockserver._pure" in graph["csockserver._engine.selection"]
    assert "csockserver._cengine" in graph["csockserver._engine.selection"]
    assert "csockserver._engine.timing" in graph["csockserver._cengine"]


def test_no_import_cycle_inside_the_package():
    assert _find_cycle(import_graph()) is None


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert _find_cycle(graph) == ["a", "b", "c", "a"]


def test_the_compiled_engine_imports_only_neutral_modules():
    assert import_graph()["csockserver._cengine"] <= NEUTRAL


def test_neutral_modules_import_no_engine_and_no_api():
    graph = import_graph()
    for module in NEUTRAL:
        assert graph[module] <= NEUTRAL, module


@pytest.mark.parametrize("layer", PURE_LAYERS)
def test_pure_engine_modules_import_only_layers_below(layer):
    below = PURE_LAYERS[:PURE_LAYERS.index(layer)]
    allowed = NEUTRAL | {"csockserver._pure." + name for name in below}
    assert import_graph()["csockserver._pure." + layer] <= allowed


def test_each_compiled_fragment_has_its_pure_twin():
    fragments = {name[:-4] for name in os.listdir(SRC_C)
                 if name.endswith(".pxi")}
    # streams.pxi has no twin: the pure engine serves the stdlib's files.
    assert fragments - {"streams"} == set(PURE_LAYERS)


def test_loading_the_compiled_engine_loads_nothing_of_the_pure_one():
    probe = ("import sys, csockserver; "
             "assert csockserver.IMPLEMENTATION == 'cython'; "
             "print(sorted(m for m in sys.modules "
             "if m.startswith('csockserver._pure')))")
    env = child_env()
    env.pop("CSOCKSERVER_NO_EXTENSIONS", None)
    env["CSOCKSERVER_REQUIRE_EXTENSIONS"] = "1"
    done = subprocess.run([sys.executable, "-c", probe], env=env,
                          capture_output=True, text=True, timeout=60)
    if done.returncode and "ImportError" in done.stderr:
        pytest.skip("the compiled engine is not built")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
