"""A paper figure made: its sweeps run (experiments/sweep.py), then drawn from their records
(analysis/figures.py)."""
from pathlib import Path

from optstudy.analysis.figures import FIGURES, draw
from optstudy.core.cli import UserError, check_plain_name
from optstudy.experiments.sweep import sweep


def make_figure(number, quick=False, epochs=None, grid_points=None, name=None, output_dir="outputs/figures", jobs=1,
                draw_only=False, png=None, train_args=()):
    """Train what figure `number` needs (unless draw_only), then draw it -> exit status."""
    figure = FIGURES[number]()
    if name is not None:
        check_plain_name("--name", name)
    if png is not None and Path(png).is_dir():
        raise UserError(f"--png {png}: is a folder; give the file to write (e.g. docs/figure{number}.png)")
    reduced = figure.quick if quick else {}
    epochs = epochs or reduced.get("epochs") or figure.epochs
    points = grid_points or reduced.get("grid_points")
    train_args = [*quick_args(reduced, list(train_args)), *train_args]
    folder = Path(output_dir) / (name or f"fig{figure.number}{'-quick' if quick else ''}")
    if not draw_only:
        for s in figure.sweeps:
            code = run_one_sweep(s, folder, epochs, points, jobs, train_args)
            if code:
                return code
    return draw(figure, folder, epochs, png)

def quick_args(quick, train_args):
    """--quick's train flags, less those the user set himself."""
    given = {a.split("=")[0] for a in train_args}
    out, flags = [], list(quick.get("args", ()))
    for flag, value in zip(flags[::2], flags[1::2]):
        if flag not in given:
            out += [flag, value]
    return out

def run_one_sweep(s, folder, epochs, points, jobs, train_args):
    argv = ["--name", s.name, "--output-dir", str(folder), "--optimizers", s.optimizer, "--lrs", s.grid.spec(points),
            "--seeds", "0", "--epochs", str(epochs), "--jobs", str(jobs), "--no-report", "--val-split", "0",
            "--workload", s.workload, *s.args, *train_args]
    print(f"== {folder.name}/{s.name}: {s.optimizer} on {s.workload}, lr {s.grid.spec(points)}, {epochs} epochs",
          flush=True)
    try:
        return sweep(argv)
    except UserError as err:
        if "holds a sweep with other settings" in str(err):
            raise UserError(f"{err}: {folder} holds this figure run with other settings; "
                            f"give another --name (or --output-dir)") from None
        raise
