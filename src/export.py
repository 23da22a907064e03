"""Tidy exports of saved runs, made from their records only.

    python src/export.py outputs/studies/mnist-search --csv mnist-search.csv
    python src/export.py outputs/studies/mnist-search --latex mnist-search.tex

--csv: one row per run and epoch (epoch 0 = before training), a column per setting (every
identifying flag and the optimizer's resolved hyperparameters; the seed; batched) and per metric
(train/val/test loss and accuracy, lr, the epoch's seconds and the cumulative seconds, the step).
Ready for pandas (pd.read_csv) or R (read.csv). --latex: a sweep folder's results table
(results.csv, written by report.py) as a LaTeX tabular. report.py writes both into each sweep
folder (runs.csv, results.tex) and a study's runs into study_runs.csv.
"""
import csv
import re
import sys
from itertools import accumulate
from pathlib import Path

import records
from cli import Parser, UserError, run_main

# Per-epoch lists of a record, in the order of the columns (those a record lacks are left out).
EPOCH_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "lr")


def build_parser():
    p = Parser(description="Export saved runs as one tidy CSV, or a sweep's results as a LaTeX table.")
    p.add_argument("paths", nargs="+", help="run folders, folders of runs, or (for --latex) one sweep folder")
    p.add_argument("--csv", help="write the tidy CSV here")
    p.add_argument("--latex", help="write the sweep's results table (its results.csv) here as LaTeX")
    p.add_argument("--trust-pickles", action="store_true", help=records.TRUST_PICKLES_HELP)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not args.csv and not args.latex:
        raise UserError("give --csv PATH, --latex PATH or both")
    if args.csv:
        rows = tidy_rows(args.paths, args.trust_pickles)
        records.ensure_writable(Path(args.csv).resolve().parent, "--csv")
        write_tidy_csv(rows, Path(args.csv))
        print(f"{args.csv}: {len(rows)} rows (run x epoch)")
    if args.latex:
        results = Path(args.paths[0]) / "results.csv"
        if not results.is_file():
            raise UserError(f"{args.paths[0]}: no results.csv (run python src/report.py {args.paths[0]} first)")
        records.ensure_writable(Path(args.latex).resolve().parent, "--latex")
        write_latex(read_csv(results), Path(args.latex))
        print(f"{args.latex}: the results table of {args.paths[0]}")
    return 0


def tidy_rows(paths, trust_pickles=False):
    """[{column: value}]: one per run and epoch."""
    import plot
    runs = records.find_runs(paths)
    if not runs:
        raise UserError(f"no runs under {', '.join(map(str, paths))}")
    rows = []
    for run_dir in runs:
        config, metrics = records.load_run(run_dir, trust_pickles)
        settings = {k: plot.short(v) for k, v in sorted(plot.facets(config).items())}
        run = {"run": str(run_dir), "run_id": metrics.get("run_id"), **settings, "seed": config["args"]["seed"],
               "batched": config.get("batched", {}).get("trials", 1), "status": metrics["status"]}
        elapsed = list(accumulate(metrics["seconds"]))
        for i, epoch in enumerate(metrics["epoch"]):
            rows.append({**run, "epoch": epoch, "step": epoch * metrics["iters_per_epoch"],
                         **{k: metrics[k][i] for k in EPOCH_KEYS if k in metrics and i < len(metrics[k])},
                         "epoch_seconds": metrics["seconds"][i], "elapsed_seconds": elapsed[i]})
    return rows


def write_tidy_csv(rows, path):
    header = list(dict.fromkeys(key for row in rows for key in row))       # every row's columns, in order
    records.atomic_write(path, lambda tmp: write_csv(tmp, header, rows))


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_latex(rows, path, caption=None):
    records.atomic_write(path, lambda tmp: tmp.write_text(latex_table(rows, caption)))


def latex_table(rows, caption=None):
    """A plain tabular (no packages needed): the columns of the rows, text escaped, +- as $\\pm$."""
    header = list(rows[0]) if rows else []
    lines = ["\\begin{table}[t]", "\\centering", f"\\begin{{tabular}}{{{'l' * len(header)}}}", "\\hline",
             " & ".join(latex_text(h) for h in header) + " \\\\", "\\hline",
             *(" & ".join(latex_text(str(row[h])) for h in header) + " \\\\" for row in rows),
             "\\hline", "\\end{tabular}"]
    if caption:
        lines.append(f"\\caption{{{latex_text(caption)}}}")
    return "\n".join([*lines, "\\end{table}"]) + "\n"


LATEX_ESCAPES = {"\\": "\\textbackslash{}", "&": "\\&", "%": "\\%", "$": "\\$", "#": "\\#", "_": "\\_",
                 "{": "\\{", "}": "\\}", "~": "\\textasciitilde{}", "^": "\\textasciicircum{}",
                 "±": "$\\pm$"}


def latex_text(text):
    """Text as LaTeX prints it: one pass, so that no escape is escaped again."""
    return re.sub("|".join(map(re.escape, LATEX_ESCAPES)), lambda m: LATEX_ESCAPES[m.group()], text)


if __name__ == "__main__":
    sys.exit(run_main(main))
