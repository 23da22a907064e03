import json
import os
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


# ---------------------------------------------------------------- real data, for the opt-in tests (-m slow)
# Each source is named by an environment variable, else looked for in the ignored input/data/, else in
# a shared copy beside the project (../shared/data/, where one exists). Nothing of the project depends
# on these paths: a test whose data is absent skips, saying where it looked, before any work. An
# archive is extracted into the test's own temporary folder, never into the repository.
SHARED_DATA = Path(os.environ.get("SHARED_DATA_DIR", REPO.parent / "shared" / "data"))


def first_existing(*candidates):
    return next((Path(c) for c in candidates if c and Path(c).exists()), None)


def extracted(tmp_path_factory, archive, name):
    """The folder `name` of a .tar.* archive, extracted into a temporary folder of this session."""
    import tarfile
    root = tmp_path_factory.mktemp(name)
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")
    assert (root / name).is_dir(), f"{archive} holds no {name}/"
    return root


@pytest.fixture(scope="session")
def cifar10_dir(tmp_path_factory):
    """An image-folder CIFAR-10 ({train,test}/<class>/*.jpg): $CIFAR10_DIR as it is, $CIFAR10_TARBALL
    extracted here, input/data/cifar10-jpeg as it is, or the shared cifar10-jpeg.tar.gz extracted here."""
    if os.environ.get("CIFAR10_DIR"):
        return Path(os.environ["CIFAR10_DIR"])
    archive = first_existing(os.environ.get("CIFAR10_TARBALL"))
    if archive is None and (REPO / "input" / "data" / "cifar10-jpeg" / "train").is_dir():
        return REPO / "input" / "data" / "cifar10-jpeg"
    archive = archive or first_existing(SHARED_DATA / "cifar10-jpeg.tar.gz")
    if archive is None:
        pytest.skip(f"no CIFAR-10: set $CIFAR10_DIR (an image folder) or $CIFAR10_TARBALL, or put "
                    f"cifar10-jpeg.tar.gz in {SHARED_DATA}")
    return extracted(tmp_path_factory, archive, "cifar10-jpeg") / "cifar10-jpeg"


@pytest.fixture(scope="session")
def imdb_root(tmp_path_factory):
    """A folder holding aclImdb/: $IMDB_DIR as it is, $IMDB_TARBALL extracted here, input/data as it
    is, or the shared aclImdb_v1_labeled.tar.xz extracted here."""
    if os.environ.get("IMDB_DIR"):
        return Path(os.environ["IMDB_DIR"])
    archive = first_existing(os.environ.get("IMDB_TARBALL"))
    if archive is None and (REPO / "input" / "data" / "aclImdb").is_dir():
        return REPO / "input" / "data"
    archive = archive or first_existing(SHARED_DATA / "aclImdb_v1_labeled.tar.xz")
    if archive is None:
        pytest.skip(f"no IMDB reviews: set $IMDB_DIR (a folder holding aclImdb/) or $IMDB_TARBALL, or put "
                    f"aclImdb_v1_labeled.tar.xz in {SHARED_DATA}")
    return extracted(tmp_path_factory, archive, "aclImdb")


@pytest.fixture
def saved_figures(monkeypatch):
    """{file name: matplotlib figure} of every figure the analysis saves in this process, so that a
    test judges what is drawn (its lines' data), not the PNG's size."""
    from optstudy.analysis import plotting
    figures, save = {}, plotting.save
    monkeypatch.setattr(plotting, "save", lambda fig, path, **kw: (figures.update({Path(path).name: fig}), save(fig, path, **kw))[1])
    return figures


def drawn_lines(fig):
    """[(label, x data, y data)] of every line on every axis of a figure."""
    return [(line.get_label(), [float(v) for v in line.get_xdata()], [float(v) for v in line.get_ydata()])
            for ax in fig.axes for line in ax.lines]
