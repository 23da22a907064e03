"""A write-up made (analysis/writeups.py says what each is): its runs trained, each optimizer with
every seed (a finished run is kept, an interrupted one resumed), then drawn from their records."""
import os
from dataclasses import replace
from pathlib import Path

import joblib

from optstudy.analysis.writeups import WRITEUPS, draw, run_dir
from optstudy.core.cli import UserError, check_plain_name
from optstudy.records import meaning, store
from optstudy.training import flags, setup


def make_writeup(name, seeds=(0, 1, 2), quick=False, output_dir="outputs/writeups", folder_name=None, jobs=1,
                 draw_only=False, png=None, train_args=()):
    """Train what the write-up needs (unless draw_only), then draw it -> exit status."""
    writeup = WRITEUPS[name]
    if folder_name is not None:
        check_plain_name("--name", folder_name)
    folder = Path(output_dir) / (folder_name or f"{name}{'-quick' if quick else ''}")
    if not draw_only:
        configs = [run_config(writeup, arm, seed, folder, quick, jobs, train_args) for arm in writeup.arms for seed in seeds]
        todo = [c for c in configs if meaning.run_state(Path(c.output_dir) / c.run_name, writeup.epochs) != "finished"]
        print(f"== {name}: {len(configs)} runs ({len(writeup.arms)} optimizers x {len(seeds)} seeds), "
              f"{len(configs) - len(todo)} already finished", flush=True)
        failures = [err for err in joblib.Parallel(n_jobs=jobs)(joblib.delayed(train_one)(c) for c in todo) if err]
        if failures:
            raise UserError(f"{len(failures)} run(s) failed, the first: {failures[0]}")
    return draw(writeup, folder, seeds, png)


def run_config(writeup, arm, seed, folder, quick, jobs, train_args):
    """The resolved RunConfig of one run: the write-up's settings, the arm's optimizer and flags,
    the seed, then the user's flags (--data-dir, --threads, ...)."""
    d = run_dir(folder, arm, seed)
    window = ("--window-batches", str(writeup.quick_window)) if quick and writeup.quick_window else ()
    threads = () if "--threads" in train_args else ("--threads", str(max(1, (os.cpu_count() or 1) // jobs)))
    argv = ["--workload", writeup.workload, *writeup.flags, *(writeup.quick if quick else ()), *window,
            "--optimizer", arm.optimizer, *arm.flags, "--seed", str(seed), "--quiet", *threads, *train_args,
            "--output-dir", str(d.parent), "--run-name", d.name]
    config = flags.parse(argv)
    resume = (d / store.CHECKPOINT).exists() or store.started_untrained(d)
    return replace(config, resume=resume, overwrite=not resume and d.exists())


def train_one(config):
    """Train one run -> None, or its error in one line."""
    try:
        code = setup.train_runs([config], resume_hint=False)
    except UserError as err:
        return f"{Path(config.output_dir) / config.run_name}: {err}"
    return None if code == 0 else f"{Path(config.output_dir) / config.run_name}: exit {code}"


