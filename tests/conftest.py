import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

# A run small enough for a test: 256 synthetic training images, 128 validation images.
TINY = ["--dataset", "synthetic", "--limit-train", "256", "--limit-val", "128", "--batch-size", "64",
        "--quiet", "--threads", "1"]


@pytest.fixture
def train_run(tmp_path):
    """Run train.main in-process on tiny data; return (exit code, run directory)."""
    import train
    from optstudy.core.cli import run_main

    def run(*extra, name="run", epochs=2):
        argv = [*TINY, "--epochs", str(epochs), "--output-dir", str(tmp_path / "out"), "--run-name", name,
                "--data-root", str(tmp_path / "data"), *map(str, extra)]
        return run_main(train.main, argv), tmp_path / "out" / name
    return run


def run_script(script, *args, cwd=REPO, timeout=300):
    """Run a script as a user would; returns the CompletedProcess."""
    return subprocess.run([sys.executable, str(REPO / "src" / script), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def run_in_process(script, *args):
    """As run_script, without a new interpreter (whose imports cost seconds a case): the script's
    main through cli.run_main, the one place that turns a UserError into its line, and argparse's
    exit as the interpreter would take it. A traceback here is an exception: the test fails."""
    import contextlib
    import importlib
    import io

    from optstudy.core.cli import run_main
    module = importlib.import_module(Path(script).stem)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = run_main(module.main, [str(a) for a in args])
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) or exit_.code is None else 1
            if isinstance(exit_.code, str):
                print(exit_.code, file=sys.stderr)
    return subprocess.CompletedProcess([script, *args], code or 0, out.getvalue(), err.getvalue())


def assert_one_line_error(proc, *fragments, code=2):
    assert proc.returncode == code, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def comparable(metrics, **overrides):
    """A record's numbers without wall-clock times and the run id (which differ between identical
    runs), as canonical JSON so that a NaN loss compares equal to the same NaN."""
    return json.dumps({k: v for k, v in {**metrics, **overrides}.items() if k not in ("seconds", "run_id")},
                      sort_keys=True)
