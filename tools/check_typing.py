"""Check csockserver's types: README examples, typed usage, stubs vs runtime.

    python tools/check_typing.py              # this source tree
    python tools/check_typing.py --installed  # the installed csockserver

Three steps, each with mypy from the running interpreter
(``python -m pip install mypy``):

readme     every ```python block of README.md and docs/*.md, as its own
           module, passes ``mypy --strict``;
usage      tests/conformance/test_typed_usage.py passes ``mypy --strict``;
stubtest   ``python -m mypy.stubtest csockserver`` finds the stubs
           (``__init__.pyi``, ``http.pyi``) true to the runtime.

stubtest is given a copy of the package's stubs alone (on MYPYPATH): next
to the package's ``.py`` files it would also type-check the private
implementation modules, which have no stubs and are not the typed API.
tools/stubtest-allowlist.txt lists the differences it may ignore, and why.

With ``--installed`` everything runs from a temporary directory with this
tree off the path, so the package found -- by the import system and by
mypy, through the ``py.typed`` in site-packages -- is the installed one.

Exits non-zero when a step fails; prints one line per step.
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
DOCUMENTS = [README] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
USAGE = os.path.join(ROOT, "tests", "conformance", "test_typed_usage.py")
ALLOWLIST = os.path.join(ROOT, "tools", "stubtest-allowlist.txt")
STUB_FILES = ("__init__.pyi", "http.pyi", "py.typed")

_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$",
                    re.MULTILINE | re.DOTALL)


def readme_blocks(text):
    """(first line number, source) of each ```python block in *text*."""
    for match in _FENCE.finditer(text):
        first = text.count("\n", 0, match.start(1)) + 1
        yield first, match.group(1)


class Checker:
    def __init__(self, installed, workdir):
        self.installed = installed
        self.workdir = workdir
        self.cwd = workdir if installed else ROOT
        self.env = dict(os.environ)
        path = [p for p in self.env.get("PYTHONPATH", "").split(os.pathsep)
                if p and os.path.abspath(p) != ROOT]
        if not installed:
            path.insert(0, ROOT)
        if path:
            self.env["PYTHONPATH"] = os.pathsep.join(path)
        else:
            self.env.pop("PYTHONPATH", None)
        self.env.pop("MYPYPATH", None)
        self.failed = []

    def run(self, args, env=None):
        proc = subprocess.run([sys.executable] + args, cwd=self.cwd,
                              env=env or self.env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT,
                              universal_newlines=True)
        return proc.returncode, proc.stdout

    def mypy_strict(self, files):
        return self.run(["-m", "mypy", "--strict", "--cache-dir",
                         os.path.join(self.workdir, "mypy-cache")] + files)

    def report(self, step, ok, summary, output=""):
        if not ok:
            self.failed.append(step)
            if output.strip():
                print(output.rstrip())
        print("{:<4} {}: {}".format("ok" if ok else "FAIL", step, summary))

    def package_dir(self):
        """Where the csockserver that this run checks lives."""
        code, out = self.run(["-c", "import csockserver, os; "
                              "print(os.path.dirname(csockserver.__file__))"])
        if code != 0:
            raise SystemExit("cannot import csockserver:\n" + out)
        return out.strip().splitlines()[-1]

    # -- the steps ---------------------------------------------------------

    def check_readme(self):
        blocks = []
        for document in DOCUMENTS:
            with open(document, encoding="utf-8") as f:
                text = f.read()
            name = os.path.relpath(document, ROOT)
            blocks.extend((name, first, source)
                          for first, source in readme_blocks(text))
        if not blocks:
            self.report("readme", False, "no ```python block in README.md")
            return
        folder = os.path.join(self.workdir, "readme")
        os.mkdir(folder)
        files = {}
        for index, (name, first, source) in enumerate(blocks, 1):
            path = os.path.join(folder, "doc_block_%d.py" % index)
            # Padded so that mypy's line numbers are the document's.
            with open(path, "w", encoding="utf-8") as f:
                f.write("\n" * (first - 1) + source)
            files[path] = name
        code, out = self.mypy_strict(sorted(files))
        for path, name in files.items():
            out = out.replace(path, name)
        self.report("readme", code == 0,
                    "%d python blocks of README.md and docs/ under mypy"
                    " --strict" % len(blocks), out)

    def check_usage(self):
        code, _ = self.run(["-c", "import pytest"])
        if code != 0:
            self.report("usage", False, "needs pytest installed (the test "
                        "module type-checks against pytest's types)")
            return
        code, out = self.mypy_strict([USAGE])
        self.report("usage", code == 0,
                    "mypy --strict " + os.path.relpath(USAGE, ROOT), out)

    def check_stubs(self, package):
        missing = [name for name in STUB_FILES
                   if not os.path.exists(os.path.join(package, name))]
        if missing:
            self.report("stubtest", False, "%s has no %s" % (
                package, ", ".join(missing)))
            return
        stubs = os.path.join(self.workdir, "stubs")
        os.makedirs(os.path.join(stubs, "csockserver"))
        for name in STUB_FILES:
            shutil.copy(os.path.join(package, name),
                        os.path.join(stubs, "csockserver", name))
        # Only to keep stubtest's cache out of the current directory.
        config = os.path.join(self.workdir, "stubtest.ini")
        with open(config, "w") as f:
            f.write("[mypy]\ncache_dir = %s\n"
                    % os.path.join(self.workdir, "stubtest-cache"))
        env = dict(self.env, MYPYPATH=stubs)
        code, out = self.run(["-m", "mypy.stubtest", "--allowlist", ALLOWLIST,
                              "--mypy-config-file", config, "csockserver"],
                             env=env)
        self.report("stubtest", code == 0,
                    "stubs in %s against the runtime" % package, out)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0])
    parser.add_argument("--installed", action="store_true",
                        help="check the installed csockserver, not this tree")
    args = parser.parse_args(argv)
    try:
        import mypy  # noqa: F401
    except ImportError:
        print("mypy is not installed for %s: %s -m pip install mypy"
              % (sys.executable, sys.executable), file=sys.stderr)
        return 2

    workdir = tempfile.mkdtemp(prefix="csock-typing-")
    try:
        checker = Checker(args.installed, workdir)
        package = checker.package_dir()
        if args.installed and (package + os.sep).startswith(ROOT + os.sep):
            print("--installed, but csockserver is imported from this tree "
                  "(%s): install it (non-editable) first" % package,
                  file=sys.stderr)
            return 2
        print("csockserver from %s, Python %s" % (
            package, sys.version.split()[0]))
        checker.check_readme()
        checker.check_usage()
        checker.check_stubs(package)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if checker.failed else 0


if __name__ == "__main__":
    sys.exit(main())
