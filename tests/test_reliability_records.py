"""Nothing lost, mixed or overwritten, whatever the input: the records' reader, writers and outputs
(the issue's thirteen classes). Records are made by hand where no training is needed (as
tests/test_report_values.py makes them); one tiny sweep is trained for the cases that re-run it."""
import csv
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest

from optstudy.analysis import export as exporting, plotting, report
from optstudy.core.cli import UserError
from optstudy.experiments import sweep as sweeping
from optstudy.records import meaning, store
from conftest import REPO, TINY, assert_one_line_error, run_in_process, run_script

LOGREG = ["--workload", "mnist-logreg", "--dataset", "synthetic", "--limit-train", "256", "--limit-val", "64",
          "--batch-size", "64", "--threads", "1"]


# ---------------------------------------------------------------- records made by hand

def write_run(sweep_dir, opt, seed, train_loss=0.5, status="complete", epochs=2, lr=0.1, hyper=None, final_acc=95.0):
    """A record of `epochs` epochs (epoch 0 untrained) ending at train_loss and final_acc."""
    run_dir = store.sweep_run_dir(sweep_dir, opt, {"lr": lr}, seed)
    run_dir.mkdir(parents=True)
    run_id = uuid.uuid4().hex
    args = {"workload": "mnist-logreg", "optimizer": opt, "lr": lr, "seed": seed, "epochs": 2, "val_split": 0.1}
    store.save_json({"run_id": run_id, "args": args, "argv": [], "command": "python src/train.py",
                     "workload": {"name": "mnist-logreg", "objective": "classify", "target": ["val_acc", 91.0]},
                     "optimizer": {"name": opt, "hyperparameters": {"lr": lr, **(hyper or {})}}}, run_dir / store.CONFIG)
    n = epochs + 1
    loss = [2.3 + (train_loss - 2.3) * e / epochs for e in range(n)]
    acc = [10.0 + (final_acc - 10.0) * e / epochs for e in range(n)]
    store.save_metrics({"epoch": list(range(n)), "train_loss": loss, "val_loss": loss, "val_acc": acc,
                        "test_loss": loss, "test_acc": acc, "train_acc": acc, "seconds": [0.0] + [1.0] * epochs,
                        "lr": [lr] * n, "iter_loss": [2.0, 1.0] * epochs, "iters_per_epoch": 2, "status": status,
                        "diverged": None, "run_id": run_id}, run_dir)
    return run_dir


def hand_sweep(parent, name, opts=("a", "b"), seeds=(0, 1), **run):
    """A finished sweep of one setting (lr 0.1) per optimizer and every seed, its plan picking it."""
    d = parent / name
    d.mkdir(parents=True)
    store.save_json({"name": name, "optimizers": list(opts), "seeds": list(seeds), "epochs": 2,
                     "select": "train_loss", "weight_decay": 0.0, "val_split": 0.1, "lrs": [0.1], "train_args": [],
                     "command": f"python src/sweep.py --name {name}", "created": "2026-01-01T00:00:00+00:00",
                     "best": {o: {"lr": 0.1} for o in opts}}, d / meaning.PLAN)
    for i, opt in enumerate(opts):
        for seed in seeds:
            write_run(d, opt, seed, train_loss=0.2 + 0.1 * i + 0.01 * seed, **run)
    return d


def snapshot(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


# ---------------------------------------------------------------- 1. collect never writes over its sources

@pytest.mark.parametrize("where", ["same", "inside", "holds", "symlink", "file"])
def test_collect_refuses_an_into_that_is_a_source_inside_one_or_holding_one(tmp_path, where):
    source = hand_sweep(tmp_path / "runs", "s")
    (tmp_path / "link").symlink_to(source)
    (tmp_path / "a-file").write_text("keep\n")
    into = {"same": source, "inside": source / "compact", "holds": tmp_path / "runs", "symlink": tmp_path / "link",
            "file": tmp_path / "a-file"}[where]
    before = snapshot(tmp_path)
    proc = run_in_process("baselines.py", "collect", source, "--into", into)
    assert_one_line_error(proc, "--into")
    assert snapshot(tmp_path) == before and not (source / "compact").exists()
    assert run_in_process("baselines.py", "collect", source, "--into", tmp_path / "apart").returncode == 0
    assert len(store.find_runs([tmp_path / "apart"])) == 4 and snapshot(source) == {
        p: b for p, b in before.items() if p.is_relative_to(source)}


# ---------------------------------------------------------------- 2. the lock never follows a link

@pytest.mark.parametrize("kind", ["symlink", "dangling", "folder"])
def test_a_planted_lock_is_refused_and_its_target_is_untouched(tmp_path, kind):
    run_dir = tmp_path / "out" / "r"
    run_dir.mkdir(parents=True)
    outside = tmp_path / "precious.txt"
    outside.write_text("precious data\n")
    if kind == "symlink":
        (run_dir / ".lock").symlink_to(outside)
    elif kind == "dangling":
        (run_dir / ".lock").symlink_to(tmp_path / "made-by-the-run")
    else:
        (run_dir / ".lock").mkdir()
    proc = run_in_process("train.py", *TINY, "--workload", "mnist-logreg", "--epochs", "1", "--output-dir",
                          tmp_path / "out", "--run-name", "r", "--data-root", tmp_path / "data")
    assert_one_line_error(proc, ".lock", {"symlink": "a symlink", "dangling": "a symlink", "folder": "a folder"}[kind])
    assert outside.read_text() == "precious data\n" and not (tmp_path / "made-by-the-run").exists()
    assert not store.has_metrics(run_dir) and not (run_dir / store.CONFIG).exists()


# ---------------------------------------------------------------- 3. one loader, its shapes checked

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished sweep of two runs (adam at two rates, one seed, one epoch), and the argv that made it."""
    out = tmp_path_factory.mktemp("trained")
    argv = ["--name", "s", "--optimizers", "adam", "--lrs", "1e-2,1e-1", "--seeds", "0", "--epochs", "1", *LOGREG,
            "--no-report", "--data-root", str(out / "data")]
    proc = run_in_process("sweep.py", *argv, "--output-dir", out)
    assert proc.returncode == 0, proc.stderr
    return out / "s", argv


def plan_without(key):
    return lambda d: store.save_json({k: v for k, v in json.loads((d / meaning.PLAN).read_text()).items() if k != key},
                                     d / meaning.PLAN)


def edit(name, change):
    """A mutation of the first run's file `name` (config.json or metrics.json)."""
    def apply(d):
        path = store.sweep_run_dir(d, "adam", {"lr": 0.01}, 0) / name
        record = json.loads(path.read_text())
        change(record)
        path.write_text(json.dumps(record))
    return apply


def another_runs_metrics(d):
    shutil.copy(store.sweep_run_dir(d, "adam", {"lr": 0.1}, 0) / store.METRICS_JSON,
                store.sweep_run_dir(d, "adam", {"lr": 0.01}, 0) / store.METRICS_JSON)


READERS = ("report.py", "plot.py", "export.py", "sweep.py")
MALFORMED = [
    ("plan is a list", lambda d: (d / meaning.PLAN).write_text("[1, 2]"), "it is a JSON list", ("report.py", "sweep.py")),
    ("plan lacks created", plan_without("created"), "it has no created", ("sweep.py",)),
    *((f"plan lacks {k}", plan_without(k), f"it has no {k}", ("report.py", "sweep.py"))
      for k in ("seeds", "command", "optimizers", "epochs")),
    ("metrics lack status", edit("metrics.json", lambda m: m.pop("status")), "it has no status", READERS),
    ("an empty list", edit("metrics.json", lambda m: m.update(train_loss=[])), "its train_loss is empty", READERS),
    ("not a list", edit("metrics.json", lambda m: m.update(test_loss=2.0)), "its test_loss is not a list", READERS),
    ("strings", edit("metrics.json", lambda m: m.update(train_loss=["a", "b"])), "holds str values", READERS),
    ("metrics without a run id", edit("metrics.json", lambda m: m.pop("run_id")), "different runs", READERS),
    ("another run's metrics", another_runs_metrics, "different runs", READERS),
    ("config lacks optimizer", edit("config.json", lambda c: c.pop("optimizer")), "it has no optimizer", READERS),
    ("config lacks args", edit("config.json", lambda c: c.pop("args")), "not a run's config", READERS),
    ("config lacks a seed", edit("config.json", lambda c: c["args"].pop("seed")), "its args have no seed", READERS),
    ("an integer run id", edit("config.json", lambda c: c.update(run_id=7)), "its run_id is 7, not a string", READERS),
]


@pytest.mark.parametrize("case, damage, fragment, readers", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_a_malformed_record_is_one_line_for_every_reader_and_is_never_trained_over(trained, tmp_path, case, damage,
                                                                                  fragment, readers):
    sweep_dir, argv = trained
    copy = tmp_path / "copy" / "s"
    shutil.copytree(sweep_dir, copy)
    damage(copy)
    before = snapshot(copy)
    calls = {"report.py": [copy], "plot.py": [copy, "--out", tmp_path / "fig"],
             "export.py": [copy, "--csv", tmp_path / "runs.csv"], "sweep.py": [*argv, "--output-dir", copy.parent]}
    for script in readers:
        assert_one_line_error(run_in_process(script, *calls[script]), fragment)
    changed = {p for p in set(before) | set(snapshot(copy)) if before.get(p) != snapshot(copy).get(p)}
    assert changed <= {copy / meaning.PLAN}          # only the plan's bookkeeping ("updated"); no record touched
    assert not (tmp_path / "runs.csv").exists() and not (copy / "results.md").exists()


def test_the_sweep_never_picks_or_continues_from_another_runs_metrics(trained, tmp_path):
    sweep_dir, _ = trained
    copy = tmp_path / "s"
    shutil.copytree(sweep_dir, copy)
    another_runs_metrics(copy)
    victim = store.sweep_run_dir(copy, "adam", {"lr": 0.01}, 0)
    assert meaning.run_state(victim, 1) == "has no readable record"
    assert sweeping.progress(victim) == -1
    with pytest.raises(UserError, match="different runs"):
        sweeping.pick_best([("adam", {"lr": 0.01}, 0), ("adam", {"lr": 0.1}, 0)], copy, "train_loss")


def test_a_refused_re_run_keeps_the_saved_picks_and_every_record(trained, tmp_path):
    sweep_dir, argv = trained
    copy = tmp_path / "s"
    shutil.copytree(sweep_dir, copy)
    another_runs_metrics(copy)
    before = snapshot(copy)
    assert_one_line_error(run_in_process("sweep.py", *argv, "--output-dir", tmp_path), "different runs",
                          "move it out of", "continue with")
    saved = json.loads((copy / meaning.PLAN).read_text())
    assert saved["best"] == json.loads(before[copy / meaning.PLAN])["best"] and saved["best"]["adam"]["lr"] in (0.01, 0.1)
    assert {p: b for p, b in snapshot(copy).items() if p.name != meaning.PLAN} == {
        p: b for p, b in before.items() if p.name != meaning.PLAN}


def test_a_run_killed_between_its_checkpoint_and_its_metrics_json_is_resumed_not_refused(trained, tmp_path):
    """save_checkpoint writes checkpoint.pt, metrics.pkl, then metrics.json: a SIGKILL between them
    leaves a record the checkpoint holds whole; the sweep resumes it (and refuses only what it cannot read)."""
    sweep_dir, argv = trained
    copy = tmp_path / "s"
    shutil.copytree(sweep_dir, copy)
    run = store.sweep_run_dir(copy, "adam", {"lr": 0.01}, 0)
    (run / store.METRICS_JSON).unlink()
    assert store.record_problem(run) is None and meaning.run_state(run, 1) == "has no readable record"
    assert run_in_process("sweep.py", *argv, "--output-dir", tmp_path).returncode == 0
    assert meaning.run_state(run, 1) == "finished"


# ---------------------------------------------------------------- 4. only finished runs make a value

def test_the_report_averages_finished_runs_only_and_says_how_many(tmp_path, monkeypatch, capsys):
    d = tmp_path / "cut"
    d.mkdir()
    store.save_json({"name": "cut", "optimizers": ["a", "b"], "seeds": [0, 1, 2], "epochs": 2, "select": "train_loss",
                     "weight_decay": 0.0, "val_split": 0.1, "lrs": [0.1], "train_args": [], "command": "x",
                     "created": "2026-01-01T00:00:00+00:00", "best": {"a": {"lr": 0.1}, "b": {"lr": 0.1}}},
                    d / meaning.PLAN)
    write_run(d, "a", 0, train_loss=0.3, final_acc=92.0)
    write_run(d, "a", 1, train_loss=0.5, final_acc=92.0)
    write_run(d, "a", 2, train_loss=100.0, status="interrupted", epochs=1, final_acc=99.0)   # the sweep was killed
    write_run(d, "b", 0, train_loss=0.2, final_acc=80.0)
    write_run(d, "b", 1, train_loss=0.4, final_acc=80.0)
    write_run(d, "b", 2, train_loss=50.0, epochs=1, final_acc=99.0)            # complete, but 1 epoch of the plan's 2
    drawn = {}
    real = report.plot.plot_epochs
    monkeypatch.setattr(report.plot, "plot_epochs", lambda groups, *a, **k: drawn.update(groups) or real(groups, *a, **k))
    assert report.report([d]) == 0
    rows = {r["optimizer"]: r for r in exporting.read_csv(d / "results.csv")}
    assert rows["a"]["final_train_loss"] == report.mean_std([0.3, 0.5]) == "0.4 ± 0.14"
    assert rows["b"]["final_train_loss"] == report.mean_std([0.2, 0.4])
    assert rows["a"]["runs"] == rows["b"]["runs"] == "2 of 3 finished" and rows["a"]["seeds"] == "2"
    assert rows["a"]["epochs_to_target"] == "2 (2/2 seeds)"            # the interrupted run's 99% at epoch 1 is not
    assert rows["b"]["epochs_to_target"] == "not reached (0/2)"
    assert sorted(len(ms) for ms in drawn.values()) == [2, 2] and max(m["train_loss"][-1] for ms in drawn.values()
                                                                      for m in ms) < 1
    assert "2 unfinished run(s) left out" in capsys.readouterr().out
    header = next(line for line in (d / "results.md").read_text().splitlines() if line.startswith("| optimizer"))
    assert header.endswith("| runs |") and "| a |" in (d / "results.md").read_text()


# ---------------------------------------------------------------- 5. a stopped parallel sweep stops its workers

def children(pid):
    found = []
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                with open(f"/proc/{stat}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(stat))
    return found


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"         # a zombie has stopped
    except OSError:
        return False


def lock_is_free(run_dir):
    with open(run_dir / store.LOCK, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


def test_sigterm_to_a_parallel_sweep_stops_its_workers_and_says_how_to_continue(tmp_path):
    # The MLP on 1024 images: epochs long enough (about half a second) for the signal to land while both train.
    argv = ["--name", "s", "--output-dir", str(tmp_path), "--optimizers", "adam", "--lrs", "1e-3,1e-2", "--seeds", "0",
            "--epochs", "3", "--workload", "mnist-mlp", "--dataset", "synthetic", "--limit-train", "1024",
            "--limit-val", "64", "--batch-size", "64", "--threads", "1", "--no-report", "--jobs", "2",
            "--data-root", str(tmp_path / "data")]
    proc = subprocess.Popen([sys.executable, str(REPO / "src" / "sweep.py"), *argv], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    runs = [store.sweep_run_dir(tmp_path / "s", "adam", {"lr": lr}, 0) for lr in (1e-3, 1e-2)]

    def epochs():
        try:
            return max(store.load_run(r)[1]["epoch"][-1] for r in runs if store.has_metrics(r))
        except (ValueError, UserError):
            return -1
    deadline = time.time() + 180
    while epochs() < 1 and time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    workers = children(proc.pid)
    assert len(workers) >= 2, workers
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert_one_line_error(subprocess.CompletedProcess([], proc.returncode, out, err), "sweep stopped (SIGTERM",
                          "continue with: python src/sweep.py --name s", code=143)
    assert "finished" in err and "kept" in err
    deadline = time.time() + 10
    while any(map(alive, workers)) and time.time() < deadline:
        time.sleep(0.1)
    assert not [w for w in workers if alive(w)], "workers outlived the sweep"
    assert all(lock_is_free(r) for r in runs if (r / store.LOCK).exists())
    assert [meaning.run_state(r, 3) for r in runs].count("finished") < 2               # it really was cut short
    for r in runs:
        if store.has_metrics(r):
            store.load_run(r)                                                           # whole, readable
    command = err.split("continue with: ", 1)[1].strip()
    assert command.split() == ["python", "src/sweep.py", *argv]
    done = run_in_process("sweep.py", *argv, "--jobs", "1")     # the same command, in this process (no new workers)
    assert done.returncode == 0, done.stderr
    assert [meaning.run_state(r, 3) for r in runs] == ["finished", "finished"]


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_workers_train_stops_the_sweep_with_its_status(signum, code):
    class Escaped(Exception):
        """The signal reached the handler outside the sweep's: the sweep would have died without a word."""

    def outside(*_):
        raise Escaped
    before = signal.signal(signum, outside)
    try:
        with pytest.raises(sweeping.Stopped) as stop:
            with sweeping.stopped_by_signals():
                os.kill(os.getpid(), signum)
                time.sleep(5)                            # the handler raises here, at once
        assert stop.value.args == (code,) and signal.getsignal(signum) is outside     # and is taken down after
    finally:
        signal.signal(signum, before)


# ---------------------------------------------------------------- 6. no live formula in a spreadsheet

def test_text_cells_that_a_spreadsheet_would_run_are_quoted_and_numbers_stay_numbers(tmp_path):
    d = hand_sweep(tmp_path, "f", opts=("=1+2.py:Lion", "b"), seeds=(0,), hyper={"mode": "@SUM(A1)", "decay": -0.5})
    assert report.report([d]) == 0
    for name in ("results.csv", "runs.csv"):
        with open(d / name, newline="") as f:
            raw = list(csv.DictReader(f))
        assert {r["optimizer"] for r in raw} == {"'=1+2.py:Lion", "b"}, name
    with open(d / "runs.csv", newline="") as f:
        raw = list(csv.DictReader(f))
    assert {r["mode"] for r in raw} == {"'@SUM(A1)"} and {r["decay"] for r in raw} == {"-0.5"}
    assert {r["optimizer"] for r in exporting.read_csv(d / "results.csv")} == {"=1+2.py:Lion", "b"}  # read back whole
    assert run_in_process("export.py", d, "--latex", tmp_path / "t.tex").returncode == 0
    assert "=1+2.py:Lion" in (tmp_path / "t.tex").read_text() and "'=1+2" not in (tmp_path / "t.tex").read_text()
    cells = ["=cmd", "+1+1", "-1+1", "@A1", "\tx", "\rx", "'quoted", "-0.5", "+3", "1e-3", "-inf", -2.5, 3, "plain"]
    assert [exporting.cell(c) for c in cells] == ["'=cmd", "'+1+1", "'-1+1", "'@A1", "'\tx", "'\rx", "''quoted", "-0.5",
                                                  "+3", "1e-3", "'-inf", -2.5, 3, "plain"]


# ---------------------------------------------------------------- 7. --stacked-step checked before any run

def test_stacked_step_refuses_an_optimizer_without_it_before_anything_trains(tmp_path):
    proc = run_in_process("sweep.py", "--name", "s", "--output-dir", tmp_path, "--optimizers", "adam", "adagrad",
                          "--stacked-step", "--batch-trials", "2", "--lrs", "1e-2,1e-1", "--seeds", "0", "--epochs", "1",
                          *LOGREG, "--data-root", tmp_path / "data")
    assert_one_line_error(proc, "adagrad", "--stacked-step", "nothing was trained")
    assert not list(tmp_path.rglob("metrics.json")) and not list(tmp_path.rglob("config.json"))


# ---------------------------------------------------------------- 8. output paths checked before the work

def test_output_paths_of_the_wrong_kind_are_refused_before_any_work(tmp_path):
    d = hand_sweep(tmp_path, "s")
    other = hand_sweep(tmp_path, "t")
    (tmp_path / "a-dir").mkdir()
    (tmp_path / "a-file").write_text("")
    cases = [("report.py", [d, "--html", tmp_path / "a-dir"], "--html"),
             ("report.py", [d, other, "--study-dir", tmp_path / "a-file"], "--study-dir"),
             ("export.py", [d, "--csv", tmp_path / "a-dir"], "--csv"),
             ("export.py", [d, "--latex", tmp_path / "a-dir"], "--latex"),
             ("sweep.py", ["--name", "x", "--output-dir", tmp_path / "a-file", *LOGREG], "--output-dir"),
             ("sweep.py", ["--name", "a-file", "--output-dir", tmp_path, *LOGREG], "--name")]
    for script, args, flag in cases:
        assert_one_line_error(run_in_process(script, *args), flag, "a f")      # "a folder" / "a file"
    assert not (d / "results.md").exists() and not (other / "results.md").exists()
    assert (tmp_path / "a-file").read_text() == "" and not list((tmp_path / "a-dir").iterdir())


# ---------------------------------------------------------------- 9. pathological sizes

@pytest.mark.parametrize("args, fragments", [
    (["--lrs", "1e-4:1e-1:10000000000"], ["--lrs", "10,000"]),
    (["--lrs", ",".join(["1e-3"] * 10_001)], ["--lrs", "10,000"]),
    (["--trials", "10000000"], ["--trials", "10,000"]),
    (["--sampler-seed", str(2 ** 64), "--trials", "2"], ["--sampler-seed"]),
    (["--seeds", str(2 ** 64)], ["--seeds"]),
], ids=["lrs-grid", "lrs-list", "trials", "sampler-seed", "seeds"])
def test_pathological_sizes_are_refused_at_once(tmp_path, args, fragments):
    start = time.time()
    argv = ["--name", "x", "--output-dir", tmp_path, *LOGREG, *args]
    # --trials unbounded would hang: a process of its own, killed (and the test failed) after a minute
    proc = run_script("sweep.py", *argv, timeout=60) if "--trials" in args[:1] else run_in_process("sweep.py", *argv)
    assert_one_line_error(proc, *fragments)
    assert time.time() - start < 30 and not (tmp_path / "x").exists()


@pytest.mark.parametrize("suffix, text", [(".json", '{"adam": ' + "[" * 100_000 + "]" * 100_000 + "}"),
                                          (".toml", "adam = " + "[" * 100_000 + "]" * 100_000 + "\n")])
def test_a_deeply_nested_space_file_is_one_line(tmp_path, suffix, text):
    (tmp_path / f"s{suffix}").write_text(text)
    proc = run_in_process("sweep.py", "--name", "x", "--output-dir", tmp_path, "--optimizers", "adam", "--trials", "2",
                          "--space", tmp_path / f"s{suffix}", *LOGREG)
    assert_one_line_error(proc, "--space")
    assert not (tmp_path / "x").exists()


def test_the_bound_is_in_the_help_and_the_bound_itself_is_planned_quickly():
    helps = {a.dest: a.help for a in sweeping.build_parser()._actions}
    assert "(at most 10,000 rates)" in helps["lrs"] and "(at most 10,000)" in helps["trials"]
    from optstudy.experiments import space
    start = time.time()
    assert len(space.sample({"lr": space.Dim(1e-6, 1.0)}, space.MAX_SETTINGS, 0)) > 1000
    assert time.time() - start < 20


# ---------------------------------------------------------------- 10. an unreachable Dask scheduler

def test_an_unreachable_dask_scheduler_is_one_line_quickly(tmp_path):
    pytest.importorskip("dask.distributed")
    start = time.time()
    proc = run_script("sweep.py", "--name", "x", "--output-dir", tmp_path, *LOGREG, "--epochs", "1", "--lrs", "1e-2",
                      "--seeds", "0", "--backend", "dask", "--scheduler", "tcp://127.0.0.1:1", timeout=120)
    assert_one_line_error(proc, "--scheduler tcp://127.0.0.1:1", "cannot reach")
    assert time.time() - start < 28 and not (tmp_path / "x").exists()       # the default timeout is 30 s


# ---------------------------------------------------------------- 11. a $ in a name is drawn as itself

def test_a_dollar_in_an_optimizer_name_is_plain_text_in_every_figure(tmp_path):
    assert plotting.plain("a$x^$") == "a\\$x^\\$"
    one = hand_sweep(tmp_path, "one", opts=("a$x^$", "b"), hyper={"note": "$y_$"})
    two = hand_sweep(tmp_path, "two", opts=("a$x^$", "b"))
    assert report.report([one, two], study_dir=tmp_path / "study") == 0
    for name in ("curves.png", "iterations.png", "lr_sensitivity.png", "tuning_curves.png", "figure3.png"):
        assert (one / name).stat().st_size > 5000, name
    assert (tmp_path / "study" / "win_rate.png").stat().st_size > 5000
    assert (tmp_path / "study" / "performance_profile.png").stat().st_size > 5000
    proc = run_in_process("plot.py", one, "--out", tmp_path / "fig")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "fig" / "curves.png").stat().st_size > 5000


# ---------------------------------------------------------------- 12. regenerate runs no one's code unasked

def shared_folder(tmp_path, optimizers, command_optimizers):
    evil = tmp_path / "evil.py"
    evil.write_text(f"open({str(tmp_path / 'ran')!r}, 'w').write('x')\nraise RuntimeError('evil ran')\n")
    s = tmp_path / "shared" / "s"
    s.mkdir(parents=True)
    command = ["python", "src/sweep.py", "--name", "s", "--optimizers", *command_optimizers, "--lrs", "1e-2",
               "--seeds", "0", *LOGREG]
    store.save_json({"name": "s", "optimizers": optimizers, "seeds": [0], "epochs": 1, "select": "train_loss",
                     "weight_decay": 0.0, "val_split": 0.1, "lrs": [0.01], "train_args": LOGREG,
                     "command": " ".join(command), "created": "2026-01-01T00:00:00+00:00"}, s / meaning.PLAN)
    return tmp_path / "shared", f"{evil}:Opt"


@pytest.mark.parametrize("named_in", ["plan", "command only"])
def test_regenerate_lists_external_optimizer_code_and_runs_it_only_when_trusted(tmp_path, named_in):
    evil = f"{tmp_path / 'evil.py'}:Opt"
    folder, _ = shared_folder(tmp_path, [evil] if named_in == "plan" else ["adam"], [evil])
    out = tmp_path / "again"
    proc = run_in_process("baselines.py", "regenerate", folder, "--output-dir", out)
    assert_one_line_error(proc, "--trust-code", evil)
    assert not (tmp_path / "ran").exists() and not out.exists()
    dry = run_in_process("baselines.py", "regenerate", folder, "--output-dir", out, "--dry-run")
    assert dry.returncode == 0 and evil in dry.stdout and "--trust-code" in dry.stdout
    assert not (tmp_path / "ran").exists() and not out.exists()
    trusted = run_in_process("baselines.py", "regenerate", folder, "--output-dir", out, "--trust-code")
    assert_one_line_error(trusted, "importing", "evil ran")          # it was run: the user asked for it
    assert (tmp_path / "ran").exists()


# ---------------------------------------------------------------- 13. a | in a name keeps the table whole

def test_a_pipe_in_an_optimizer_name_keeps_the_markdown_tables_whole(tmp_path):
    one = hand_sweep(tmp_path, "one", opts=("a|b", "c"))
    two = hand_sweep(tmp_path, "two", opts=("a|b", "c"))
    assert report.report([one, two], study_dir=tmp_path / "study") == 0
    cells = lambda line: len(re.findall(r"(?<!\\)\|", line))           # the unescaped pipes: the cell borders
    for md in (one / "results.md", tmp_path / "study" / "study.md"):
        text = md.read_text()
        assert "a\\|b" in text, md
        tables = [[line for line in block.splitlines() if not line.startswith("|---")]
                  for block in re.findall(r"(?m)(?:^\|.*\n)+", text)]
        assert len(tables) == (1 if md.name == "results.md" else 2) and all(len(t) == 3 for t in tables), tables
        for table in tables:
            assert len({cells(line) for line in table}) == 1, table
