"""A paper figure made: its sweeps run (experiments/sweep.py), then drawn from their records
(analysis/figures.py)."""
from pathlib import Path

from optstudy.analysis.figures import FIGURES, draw
from optstudy.core.cli import UserError, check_plain_name
from optstudy.experiments.sweep import sweep


def make_figure(number, quick=False, epochs=None, grid_points=None, name=None, output_dir="outputs/figures", jobs=1,
                draw_only=False, png=None, train_args=(), seeds=None, widen=None):
    """Train what figure `number` needs (unless draw_only), then draw it -> exit status. epochs cuts
    every panel to that length (default: each panel's paper length); seeds: how many seeds the picks
    run with (default: the figure's, 1 with quick); widen: --widen of every sweep (default: 3, 0 with
    quick)."""
    figure = FIGURES[number]()
    if name is not None:
        check_plain_name("--name", name)
    if png is not None and Path(png).is_dir():
        raise UserError(f"--png {png}: is a folder; give the file to write (e.g. docs/figure{number}.png)")
    reduced = figure.quick if quick else {}
    cut = epochs or reduced.get("epochs")
    points = grid_points or reduced.get("grid_points")
    seeds = seeds or (1 if quick else figure.seeds)
    widen = (0 if quick else WIDEN) if widen is None else widen
    train_args = [*quick_args(reduced, list(train_args)), *train_args]
    folder = Path(output_dir) / (name or f"fig{figure.number}{'-quick' if quick else ''}")
    if not draw_only:
        for s in figure.sweeps:
            code = run_one_sweep(s, folder, figure.length(s, cut), points, jobs, train_args, seeds, widen)
            if code:
                return code
    return draw(figure, folder, cut, png)


WIDEN = 3        # rates a figure's sweep may add beyond each end of its grid (sweep.py --widen)


def quick_args(quick, train_args):
    """--quick's train flags, less those the user set himself."""
    given = {a.split("=")[0] for a in train_args}
    out, flags = [], list(quick.get("args", ()))
    for flag, value in zip(flags[::2], flags[1::2]):
        if flag not in given:
            out += [flag, value]
    return out

def run_one_sweep(s, folder, epochs, points, jobs, train_args, seeds, widen):
    argv = ["--name", s.name, "--output-dir", str(folder), "--optimizers", s.optimizer, "--lrs", s.grid.spec(points),
            "--seeds", *map(str, range(seeds)), "--widen", str(widen), "--epochs", str(epochs), "--jobs", str(jobs),
            "--no-report", "--val-split", "0", "--workload", s.workload, *s.args, *train_args]
    print(f"== {folder.name}/{s.name}: {s.optimizer} on {s.workload}, lr {s.grid.spec(points)} (--widen {widen}), "
          f"{epochs} epochs, {seeds} seed{'s' if seeds > 1 else ''}", flush=True)
    try:
        return sweep(argv)
    except UserError as err:
        if "holds a sweep with other settings" in str(err):
            raise UserError(f"{err}: {folder} holds this figure run with other settings; "
                            f"give another --name (or --output-dir)") from None
        raise
