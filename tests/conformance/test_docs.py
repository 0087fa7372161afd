"""Every code block of README.md and docs/*.md, run or checked, so that the
documentation cannot drift from the code.

- ``python`` blocks run, each as a program of its own, in a new
  interpreter that imports this csockserver; each must end by itself
  (servers on port 0, shut down at the end) with status 0 and no
  traceback.  A block preceded by ``<!-- docs-test: systemd -->`` is a
  server for systemd: it runs under systemd's own
  ``systemd-socket-activate`` and must echo a line.
- ``sh`` blocks are checked, not run: they install, build or serve for
  minutes.  Each command must name something that exists -- a ``make``
  target of the Makefile, a pip extra of pyproject.toml, a script or
  module whose ``--help`` lists every option and sub-command used.
- ``ini`` blocks (systemd units) must parse and use systemd's sections;
  ``haproxy`` and ``nginx`` blocks must pass ``haproxy -c`` / ``nginx -t``
  where those are installed, inside a minimal configuration.
- ``text`` blocks are output or layout, not code.  A block without a
  language fails: say what it is.

Skipped outside a source tree (the tests of an installed package, run
from a copy of tests/).
"""

import configparser
import functools
import glob
import os
import re
import shlex
import shutil
import signal
import subprocess

import pytest

from tests.support.clients import connect_when_listening, recv_line
from tests.support.env import JOIN_TIMEOUT, PYTHON, TREE, child_env
from tests.support.servers import socket_activated
from tests.support.sockets import free_port

ROOT = TREE
DOCUMENTS = [os.path.join(ROOT, "README.md")] + sorted(
    glob.glob(os.path.join(ROOT, "docs", "*.md")))

FENCE = re.compile(r"^```(\S*)\s*$")
DIRECTIVE = re.compile(r"^<!-- docs-test: (\S+) -->$")
LANGUAGES = {"python", "sh", "ini", "haproxy", "nginx", "text"}


class Block:
    def __init__(self, path, line, language, code, directive):
        self.path = path
        self.line = line            # of the opening fence, 1-based
        self.language = language
        self.code = code
        self.directive = directive

    @property
    def name(self):
        return "%s:%d" % (os.path.relpath(self.path, ROOT), self.line)


def read_blocks(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    blocks = []
    directive = None
    index = 0
    while index < len(lines):
        line = lines[index]
        found = DIRECTIVE.match(line)
        if found:
            directive = found.group(1)
        elif FENCE.match(line.lstrip()):
            assert line.startswith("```"), (
                "%s:%d: an indented code block is not checked; put it at"
                " the start of the line" % (path, index + 1))
            language = FENCE.match(line).group(1)
            end = index + 1
            while end < len(lines) and lines[end] != "```":
                end += 1
            assert end < len(lines), "%s:%d: unclosed block" % (path,
                                                                index + 1)
            blocks.append(Block(path, index + 1, language,
                                "\n".join(lines[index + 1:end]) + "\n",
                                directive))
            directive = None
            index = end
        elif line.strip():
            directive = None
        index += 1
    return blocks


def all_blocks():
    blocks = []
    for path in DOCUMENTS:
        if os.path.exists(path):
            blocks.extend(read_blocks(path))
    return blocks


# The documents speak of the source tree (its Makefile, bench/, tools/):
# the tests of an installed package, run from a copy of tests/, skip.
IN_SOURCE_TREE = os.path.exists(os.path.join(ROOT, "Makefile"))
BLOCKS = all_blocks() if IN_SOURCE_TREE else []

pytestmark = pytest.mark.skipif(
    not BLOCKS, reason="not in a source tree (the tests of an installed"
                       " package)")


def blocks_in(*languages):
    chosen = [block for block in BLOCKS if block.language in languages]
    return pytest.mark.parametrize("block", chosen,
                                   ids=[block.name for block in chosen])


def test_every_block_says_what_it_is():
    unlabelled = [block.name for block in BLOCKS
                  if block.language not in LANGUAGES]
    assert unlabelled == [], (
        "give these blocks a language (%s)" % ", ".join(sorted(LANGUAGES)))


def test_the_documents_are_all_here():
    names = {os.path.relpath(path, ROOT) for path in DOCUMENTS}
    assert {"README.md", "docs/guide.md", "docs/reference.md",
            "docs/internals.md", "docs/development.md"} <= names


# -- python: run -------------------------------------------------------------

def run_program(code, tmp_path, timeout=JOIN_TIMEOUT * 6):
    program = tmp_path / "example.py"
    program.write_text(code, encoding="utf-8")
    env = child_env()
    env.pop("PYTHON_GIL", None)
    return subprocess.run([PYTHON, str(program)], cwd=str(tmp_path),
                          env=env, capture_output=True, text=True,
                          timeout=timeout)


@blocks_in("python")
def test_python_block_runs(block, tmp_path):
    if block.directive == "systemd":
        run_under_systemd(block, tmp_path)
        return
    assert block.directive is None, "unknown directive %r" % block.directive
    result = run_program(block.code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def run_under_systemd(block, tmp_path):
    """The block serves on the socket systemd-socket-activate passes it;
    a line sent must come back, then SIGTERM stops it."""
    if shutil.which("systemd-socket-activate") is None:
        pytest.skip("systemd-socket-activate is not installed")
    program = tmp_path / "service.py"
    program.write_text(block.code, encoding="utf-8")
    port = free_port()
    service = socket_activated(port, [PYTHON, str(program)],
                               cwd=str(tmp_path))
    try:
        client = connect_when_listening(port)
        assert client is not None, "systemd-socket-activate never listened"
        with client:
            client.sendall(b"a line for systemd\n")
            assert recv_line(client) == b"a line for systemd\n"
        os.killpg(service.pid, signal.SIGTERM)
        out, err = service.communicate(timeout=JOIN_TIMEOUT * 3)
    finally:
        if service.poll() is None:
            os.killpg(service.pid, signal.SIGKILL)
            service.communicate()
    assert "Traceback" not in err, err


# -- sh: check ---------------------------------------------------------------

# Programs the documents may name without a check of their own: standard
# tools, and the peers and system services the text is about.
KNOWN_PROGRAMS = {".", "source", "cd", "cut", "git", "nc", "curl", "kill",
                  "sysctl", "systemctl", "haproxy", "wrk", "taskset",
                  "tee", "sudo", "apt-get", "ls"}


def commands(code):
    """Each simple command of a shell block, as a list of words."""
    text = re.sub(r"\\\n", " ", code)
    found = []
    for line in text.split("\n"):
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        # $(...) runs a command too; its words are checked like the rest.
        for inner in re.findall(r"\$\(([^()]*)\)", line):
            found.extend(split_command(inner))
        line = re.sub(r"\$\([^()]*\)", "VALUE", line)
        found.extend(split_command(line))
    return found


def split_command(line):
    words = shlex.split(line)
    command = []
    result = []
    for word in words + [";"]:
        if word in ("&&", "||", "|", ";"):
            if command:
                result.append(command)
            command = []
        elif not command and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*",
                                          word):
            continue                     # VAR=value before a command
        else:
            command.append(word)
    return result


def is_python(word):
    return (re.fullmatch(r"(.*/)?python(3(\.\d+t?)?)?", word) is not None
            or word == "$PY")


@functools.lru_cache(maxsize=None)
def help_text(*command):
    result = subprocess.run(list(command) + ["--help"], cwd=ROOT,
                            env=child_env(), capture_output=True, text=True,
                            timeout=JOIN_TIMEOUT * 6)
    assert result.returncode == 0, (
        "%s --help failed: %s" % (" ".join(command), result.stderr))
    return result.stdout


def pip_extras():
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("[project.optional-dependencies]", 1)[1]
    section = section.split("\n[", 1)[0]
    return set(re.findall(r"^([A-Za-z0-9_-]+)\s*=", section, re.M))


def make_targets():
    with open(os.path.join(ROOT, "Makefile"), encoding="utf-8") as f:
        return set(re.findall(r"^([A-Za-z0-9_-]+):", f.read(), re.M))


def check_options(words, help_output, what):
    """Every --option and every sub-command word of *words* is in
    *help_output*."""
    for word in words:
        if word.startswith("--"):
            option = word.split("=", 1)[0]
            assert option in help_output, "%s has no %s" % (what, option)
    positional = [word for word in words
                  if re.fullmatch(r"[a-z][a-z0-9-]*", word)]
    if positional:
        assert re.search(r"\b%s\b" % re.escape(positional[0]),
                         help_output), (
            "%s does not list %r" % (what, positional[0]))


def check_pip(words):
    assert words[:1] == ["install"], words
    for word in words[1:]:
        found = re.fullmatch(r"\.\[([A-Za-z0-9_,-]+)\]", word)
        if found:
            unknown = set(found.group(1).split(",")) - pip_extras()
            assert not unknown, "no such pip extra: %s" % unknown


def check_python(words):
    if words[:2] == ["-m", "pip"]:
        check_pip(words[2:])
    elif words[:2] == ["-m", "venv"]:
        pass
    elif words[:2] == ["-m", "pytest"]:
        for word in words[2:]:
            if not word.startswith("-"):
                assert os.path.exists(os.path.join(ROOT,
                                                   word.split("::")[0])), word
    elif words[:1] == ["-m"]:
        module = words[1]
        check_options(words[2:], help_text(PYTHON, "-m", module),
                      "python -m " + module)
    else:
        script = words[0]
        assert os.path.exists(os.path.join(ROOT, script)), script
        check_options(words[1:], help_text(PYTHON, script), script)


def check_command(words):
    program = words[0]
    if is_python(program):
        check_python(words[1:])
    elif program == "pip":
        check_pip(words[1:])
    elif program == "make":
        for word in words[1:]:
            if "=" not in word:
                assert word in make_targets(), "no make target %r" % word
    elif program.startswith((".ci/", "./")):
        assert os.path.exists(os.path.join(ROOT, program)), program
    elif program.startswith(".venv") and program.endswith("/pip"):
        check_pip(words[1:])
    else:
        assert program in KNOWN_PROGRAMS, (
            "%r: tests/conformance/test_docs.py does not know how to check"
            " this command" % program)


@blocks_in("sh")
def test_shell_block_names_what_exists(block):
    found = commands(block.code)
    assert found, "an empty shell block"
    for words in found:
        check_command(words)


# -- configuration -----------------------------------------------------------

SYSTEMD_SECTIONS = {"Unit", "Service", "Socket", "Install", "Timer"}


@blocks_in("ini")
def test_systemd_unit_parses(block):
    parser = configparser.ConfigParser(strict=False, interpolation=None,
                                       comment_prefixes=("#", ";"))
    parser.optionxform = str       # systemd's keys are case-sensitive
    parser.read_string(block.code)
    assert parser.sections(), "no section"
    assert set(parser.sections()) <= SYSTEMD_SECTIONS, parser.sections()


@blocks_in("haproxy")
def test_haproxy_configuration_is_valid(block, tmp_path):
    haproxy = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
    if haproxy is None:
        pytest.skip("haproxy is not installed")
    backend = re.search(r"^backend (\S+)", block.code, re.M).group(1)
    config = tmp_path / "haproxy.cfg"
    # haproxy -c checks without binding; a frontend makes it complete.
    config.write_text(
        "defaults\n    mode tcp\n    timeout connect 1s\n"
        "    timeout client 5s\n    timeout server 5s\n\n"
        "frontend public\n    bind 127.0.0.1:8080\n"
        "    default_backend %s\n\n" % backend + block.code,
        encoding="utf-8")
    result = subprocess.run([haproxy, "-c", "-f", str(config)],
                            capture_output=True, text=True,
                            timeout=JOIN_TIMEOUT)
    assert result.returncode == 0, result.stdout + result.stderr


@blocks_in("nginx")
def test_nginx_configuration_is_valid(block, tmp_path):
    assert block.code.count("{") == block.code.count("}")
    nginx = shutil.which("nginx")
    if nginx is None:
        pytest.skip("nginx is not installed (only the braces are checked)")
    config = tmp_path / "nginx.conf"
    config.write_text("events {}\n" + block.code, encoding="utf-8")
    result = subprocess.run([nginx, "-t", "-c", str(config)],
                            capture_output=True, text=True,
                            timeout=JOIN_TIMEOUT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_checker_finds_what_is_wrong():
    """The checks above can fail: a made-up target, option and extra."""
    with pytest.raises(AssertionError):
        check_command(["make", "no-such-target"])
    with pytest.raises(AssertionError):
        check_command(["python3", "-m", "pip", "install", "-e",
                       ".[no-such-extra]"])
    with pytest.raises(AssertionError):
        check_command(["python3", "-m", "csockserver", "--no-such-option"])
    with pytest.raises(AssertionError):
        check_command(["rm", "-rf", "/"])
    assert split_command("A=1 make build && python3 -m csockserver") == [
        ["make", "build"], ["python3", "-m", "csockserver"]]


# -- links ------------------------------------------------------------------

LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(path):
    """GitHub's anchors for the headings of a markdown file."""
    with open(path, encoding="utf-8") as f:
        headings = re.findall(r"^#+ (.*)$", f.read(), re.M)
    return {re.sub(r"[^\w\- ]", "", heading).strip().lower()
            .replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("document", [path for path in DOCUMENTS
                                      if os.path.exists(path)],
                         ids=lambda path: os.path.relpath(path, ROOT))
def test_links_lead_somewhere(document):
    with open(document, encoding="utf-8") as f:
        text = f.read()
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue                     # http:, https:, mailto:
        path, _, anchor = target.partition("#")
        path = (os.path.normpath(os.path.join(os.path.dirname(document),
                                              path)) if path else document)
        if not os.path.exists(path):
            broken.append(target)
        elif anchor and path.endswith(".md") and anchor not in anchors(path):
            broken.append(target)
    assert broken == []
