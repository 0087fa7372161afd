"""The package's import structure: no cycles, layers that import downward.

Every import statement of csockserver's modules counts, at module level or
inside a function, read from the sources (the Cython engine's too), so a
cycle hidden in a lazy import shows up here as well.
"""

import ast
import io
import os
import re
import subprocess
import sys
import tokenize

import pytest

from tests.support.env import TREE, child_env

ROOT = TREE
PACKAGE = os.path.join(ROOT, "csockserver")
SRC_C = os.path.join(ROOT, "src_c")

# The pure engine's files, each importing only those before it; they mirror
# src_c/*.pxi one to one, but for the fragments in C_ONLY below.
PURE_LAYERS = ["util", "waker", "transport", "requests", "proxy", "threads",
               "fork", "loop"]
# The fragments of src_c/, in the order _cengine.pyx includes them and
# csockserver._cengine.pxd includes their declarations.  Each may use what
# it or a fragment before it declares, never what a later one does.
FRAGMENTS = ["util", "waker", "plan", "transport", "requests", "proxy",
             "threads", "fork", "loop", "streams", "headers"]
# Fragments with no pure twin, and why.
C_ONLY = {
    "plan": "the pure engine reads the Plan as it is; C needs a struct",
    "streams": "without the compiled engine, handlers get the stdlib's files",
    "headers": "without the compiled engine, email.parser parses headers",
}
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
    assert fragments - set(C_ONLY) == set(PURE_LAYERS)
    assert set(C_ONLY) <= fragments


def test_the_neutral_package_loads_no_engine():
    """Importing one neutral module runs the package's __init__ first: it
    must import nothing, or every neutral module would load an engine."""
    assert import_graph()["csockserver._engine"] == set()


def test_prefork_modules_import_downward():
    """link <- worker <- supervisor <- the package: the child's side never
    reaches the parent's."""
    graph = import_graph()

    def of_prefork(module):
        return {name for name in graph[module]
                if name.startswith("csockserver._prefork")}
    assert of_prefork("csockserver._prefork.link") == set()
    assert of_prefork("csockserver._prefork.worker") == {
        "csockserver._prefork.link"}
    assert of_prefork("csockserver._prefork.supervisor") == {
        "csockserver._prefork.link", "csockserver._prefork.worker"}


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


# -- the compiled engine's fragments ---------------------------------------


def _included(path, suffix):
    with open(path) as source:
        return re.findall(r'^include "(\w+)\.' + suffix + '"', source.read(),
                          re.M)


def test_the_fragments_are_included_in_one_order():
    assert _included(os.path.join(SRC_C, "_cengine.pyx"), "pxi") == FRAGMENTS
    assert _included(os.path.join(SRC_C, "csockserver._cengine.pxd"),
                     "pxd") == FRAGMENTS
    assert sorted(name[:-4] for name in os.listdir(SRC_C)
                  if name.endswith(".pxi")) == sorted(FRAGMENTS)


def test_the_pure_layers_follow_the_fragments_order():
    assert PURE_LAYERS == [name for name in FRAGMENTS if name not in C_ONLY]


def _without_struct_fields(text):
    """A .pxd's text with the field names of its structs left out (they are
    declarations, not uses of another fragment's names)."""
    out = []
    in_struct = False
    for line in text.splitlines():
        if re.match(r"^cdef struct ", line):
            in_struct = True
        elif in_struct and line.startswith("    "):
            line = re.sub(r"\b\w+\s*(#.*)?$", "", line)
        elif line.strip():
            in_struct = False
        out.append(line)
    return "\n".join(out) + "\n"


def _used_names(text):
    """The identifiers a Cython source uses: not attributes (``x.name``),
    not in comments or strings."""
    names = set()
    previous = None
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.NAME and not (
                previous is not None and previous.string == "."):
            names.add(token.string)
        if token.type not in (tokenize.NL, tokenize.NEWLINE,
                              tokenize.COMMENT, tokenize.INDENT,
                              tokenize.DEDENT):
            previous = token
    return names


_DECLARATION = re.compile(
    r"^(?:c?p?def (?:class|struct|enum) (\w+)"
    r"|cp?def (?:inline )?(?:const )?[\w *]+?\b(\w+)\s*(?:\(|=|$)"
    r"|def (\w+)\(|class (\w+))", re.M)


def _declared_names(text):
    """The names a .pxd or .pxi declares at module level."""
    found = {next(name for name in match if name)
             for match in _DECLARATION.findall(text)}
    for block in re.findall(r"^c?p?def enum[^\n]*:\n((?:    [^\n]*\n)+)",
                            text, re.M):
        found |= set(re.findall(r"^    (\w+)", block, re.M))
    return found


def _read(*parts):
    with open(os.path.join(*parts)) as source:
        return source.read()


def _fragment_names():
    """{fragment: (names it declares, names it uses)}."""
    names = {}
    for name in FRAGMENTS:
        pxd = _read(SRC_C, name + ".pxd")
        pxi = _read(SRC_C, name + ".pxi")
        names[name] = (_declared_names(pxd) | _declared_names(pxi),
                       _used_names(_without_struct_fields(pxd))
                       | _used_names(pxi))
    return names


def _used_before_declared(order, names):
    """{fragment: the names it uses that only a later fragment declares}."""
    found = {}
    for index, name in enumerate(order):
        declared, used = names[name]
        earlier = set().union(declared, *(names[before][0]
                                          for before in order[:index]))
        later = set().union(*(names[after][0]
                              for after in order[index + 1:]))
        if (used & later) - earlier:
            found[name] = sorted((used & later) - earlier)
    return found


def test_each_fragment_uses_only_what_it_or_an_earlier_one_declares():
    assert _used_before_declared(FRAGMENTS, _fragment_names()) == {}


def test_the_order_check_finds_a_fragment_included_too_early():
    # threads.pxi uses the Waker: included before waker.pxi, it would not
    # compile in that order, and the check says so.
    order = ["util", "threads", "waker", "plan", "transport", "requests",
             "proxy", "fork", "loop", "streams"]
    assert "Waker" in _used_before_declared(order, _fragment_names()).get(
        "threads", [])


def _public_definitions(tree):
    return {node.name for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.ClassDef))
            and not node.name.startswith("_")}


@pytest.mark.parametrize("fragment", [name for name in FRAGMENTS
                                      if name not in C_ONLY])
def test_twins_share_their_names(fragment):
    """A function or class without a leading underscore in a fragment has
    a namesake in its pure twin, and the other way round; C-only helpers
    carry the underscore."""
    declared, _ = _fragment_names()[fragment]
    compiled = {name for name in declared
                if not name.startswith("_") and not name.isupper()}
    pure = _public_definitions(ast.parse(
        _read(PACKAGE, "_pure", fragment + ".py")))
    assert compiled == pure
