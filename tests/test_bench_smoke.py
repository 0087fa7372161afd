"""The benchmark tooling runs end to end: a one-second run makes a table.

Nothing here asserts speed; benchmarks live in bench/, not in the tests.
"""

import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.timeout(180)
@pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None,
                    reason="the bench's C tools need a C compiler")
@pytest.mark.skipif(not os.path.isdir(os.path.join(ROOT, "bench")),
                    reason="bench/ is not beside these tests (an installed"
                           " package under test)")
def test_quick_bench_produces_a_table(tmp_path):
    out = tmp_path / "results.md"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CSOCKSERVER_")}
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "tcp-conn",
         "--repeat", "1", "--duration", "1", "--warmup", "0.2",
         "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=170)
    assert run.returncode == 0, run.stderr[-3000:]
    table = out.read_text()
    assert "## TCP, connection per request" in table
    # Every server of the workload has a row with a measured rate.
    for label in ("stdlib sync", "stdlib threading", "csock-c sync",
                  "csock-c threading", "naive_pool", "naive_lf", "c"):
        row = re.search(r"^\| %s \| (\d+) \[" % re.escape(label), table, re.M)
        assert row, "no measured row for %r in:\n%s" % (label, table)
        assert int(row.group(1)) > 0
    # The progress line names what ran.
    assert "[1/" in run.stderr
