"""What build_wheels.py and check_dist.py share: the interpreters to build
for, throwaway virtual environments, and commands echoed as they run.

Standard library only: these scripts set up their own tools.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
import time

# tools/pythons.py, beside this file.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pythons  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIST = os.path.join(ROOT, "dist")
# Per-interpreter environments holding the release tools (pip-installed
# once, reused by later runs; build/ is never committed).
TOOLS_HOME = os.path.join(ROOT, "build", "release-tools")
OLDEST_MINOR = 8


class Interpreter:
    """One CPython to build and check for.

    A free-threaded build is a target of its own: its wheels are tagged
    ``cp313t`` (ABI) and built in environments of their own.
    """

    def __init__(self, version, executable, free_threaded=False):
        self.version = version                      # "3.11.7"
        self.minor = ".".join(version.split(".")[:2])  # "3.11"
        self.executable = executable
        self.free_threaded = free_threaded
        # The wheel's ABI tag: "cp311", or "cp313t" without the GIL.
        self.tag = ("cp" + self.minor.replace(".", "")
                    + ("t" if free_threaded else ""))

    def __repr__(self):
        return "Python %s%s (%s)" % (self.version,
                                     "t" if self.free_threaded else "",
                                     self.executable)


def _version_of(executable):
    """(version, implementation, free-threaded) of *executable*."""
    out = subprocess.run(
        [executable, "-c", "import platform, sysconfig;"
         " print(platform.python_version(), platform.python_implementation(),"
         " bool(sysconfig.get_config_var('Py_GIL_DISABLED')))"],
        capture_output=True, text=True, check=True).stdout.split()
    return out[0], out[1], out[2] == "True"


def _interpreter_at(executable):
    version, impl, free_threaded = _version_of(executable)
    if impl != "CPython":
        raise SystemExit("%s is %s, not CPython" % (executable, impl))
    return Interpreter(version, executable, free_threaded)


def provisioned(names):
    """Interpreters from tools/pythons.py (3.14, 3.15, 3.13t), provisioned
    into its cache if they are not there yet."""
    try:
        return [_interpreter_at(path) for _, path in pythons.ensure(names)]
    except pythons.ProvisionError as exc:
        raise SystemExit(str(exc))


def find_interpreters(wanted=()):
    """The CPythons to build for: pyenv's 3.8+ (the newest patch release of
    each), then those tools/pythons.py provides (3.14, 3.15 and the
    free-threaded 3.13t); or just this one without pyenv.

    *wanted* narrows the list: "3.11" or "3.11.7" pick pyenv versions,
    "3.14" or "3.13t" one that pyenv lacks and tools/pythons.py provides, a
    path names an interpreter directly.
    """
    found = [_interpreter_at(name) for name in wanted if os.sep in name]
    names = [name for name in wanted if os.sep not in name]
    from_tool = [name for name in names if name in pythons.KNOWN]
    names = [name for name in names if name not in pythons.KNOWN]
    if wanted and not names:
        return found + provisioned(from_tool)
    chosen = found + _from_pyenv(names)
    if not wanted:
        # What pyenv lacks of the interpreters users run.
        have = {i.tag for i in chosen}
        from_tool = [name for name in pythons.FROM_SID + pythons.FREE_THREADED
                     if "cp" + name.replace(".", "") not in have]
    return chosen + provisioned(from_tool)


def interpreter_for_tag(tag):
    """The interpreter that runs wheels of ABI tag *tag* ("cp311",
    "cp313t"), provisioned by tools/pythons.py if pyenv lacks it."""
    for interp in _from_pyenv([]):
        if interp.tag == tag:
            return interp
    minor = "3." + tag[3:].rstrip("t")
    name = minor + ("t" if tag.endswith("t") else "")
    if name in pythons.KNOWN:
        return provisioned([name])[0]
    raise SystemExit("no interpreter for %s wheels" % tag)


def _from_pyenv(names):
    """pyenv's CPythons 3.8+ (all, or those *names* pick); without pyenv,
    this one."""
    pyenv = shutil.which("pyenv")
    if pyenv is None:
        here = _interpreter_at(sys.executable)
        if names and here.minor not in names and here.version not in names:
            raise SystemExit("no pyenv, and this Python is %s"
                             % here.version)
        return [here]
    bare = subprocess.run([pyenv, "versions", "--bare"], capture_output=True,
                          text=True, check=True).stdout.split()
    by_minor = {}
    for version in bare:
        match = re.fullmatch(r"3\.(\d+)\.(\d+)", version)
        if not match or int(match.group(1)) < OLDEST_MINOR:
            continue
        prefix = subprocess.run([pyenv, "prefix", version],
                                capture_output=True, text=True,
                                check=True).stdout.strip()
        interp = Interpreter(version, os.path.join(prefix, "bin", "python3"))
        # The newest patch release of each minor version.
        key = interp.minor
        if key not in by_minor or _newer(version, by_minor[key].version):
            by_minor[key] = interp
    chosen = sorted(by_minor.values(), key=lambda i: int(i.minor[2:]))
    if names:
        chosen = [i for i in chosen if i.minor in names or i.version in names]
        missing = set(names) - {i.minor for i in chosen} - {
            i.version for i in chosen}
        if missing:
            raise SystemExit("no such CPython under pyenv: %s"
                             % ", ".join(sorted(missing)))
    return chosen


def _newer(a, b):
    return [int(x) for x in a.split(".")] > [int(x) for x in b.split(".")]


def run(cmd, quiet=False, **kwargs):
    """Run *cmd*, echoing it; a failure ends the script with its status.

    *quiet* keeps the command's output back unless it fails.
    """
    cwd = kwargs.get("cwd")
    print("+ " + (("cd %s && " % cwd) if cwd else "")
          + " ".join(shlex.quote(str(c)) for c in cmd), flush=True)
    if quiet:
        kwargs.update(stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                      text=True)
    started = time.monotonic()
    result = subprocess.run([str(c) for c in cmd], **kwargs)
    if result.returncode != 0:
        if quiet:
            print(result.stdout[-20000:])
        raise SystemExit("command failed (exit %d): %s"
                         % (result.returncode, cmd[0]))
    took = time.monotonic() - started
    if took > 5:
        print("  (%.0f s)" % took, flush=True)
    return result


def make_venv(interp, path, packages=(), env=None):
    """A fresh virtual environment of *interp* at *path*, with *packages*."""
    if os.path.exists(path):
        shutil.rmtree(path)
    run([interp.executable, "-m", "venv", path])
    python = os.path.join(path, "bin", "python")
    if packages:
        run([python, "-m", "pip", "install", "--disable-pip-version-check"]
            + list(packages), quiet=True, env=env)
    return python


def tools_python(interp, role, packages):
    """The python of a cached environment of *interp* with *packages*,
    kept for *role* ("host", "build", ...)."""
    path = os.path.join(TOOLS_HOME, "%s-%s" % (role, interp.tag))
    python = os.path.join(path, "bin", "python")
    stamp = os.path.join(path, "packages.txt")
    wanted = "\n".join(sorted(packages))
    if os.path.exists(stamp):
        with open(stamp) as f:
            if f.read() == wanted:
                return python
    make_venv(interp, path, packages)
    with open(stamp, "w") as f:
        f.write(wanted)
    return python


def project_version():
    namespace = {}
    with open(os.path.join(ROOT, "csockserver", "_version.py")) as f:
        exec(f.read(), namespace)
    return namespace["__version__"]
