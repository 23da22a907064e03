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
import sys
from pathlib import Path

from optstudy.analysis.export import read_csv, tidy_rows, write_latex, write_tidy_csv
from optstudy.core.cli import Parser, UserError, run_main
from optstudy.records.store import TRUST_PICKLES_HELP, check_file_target


def build_parser():
    p = Parser(description="Export saved runs as one tidy CSV, or a sweep's results as a LaTeX table.")
    p.add_argument("paths", nargs="+", help="run folders, folders of runs, or (for --latex) one sweep folder")
    p.add_argument("--csv", help="write the tidy CSV here")
    p.add_argument("--latex", help="write the sweep's results table (its results.csv) here as LaTeX")
    p.add_argument("--trust-pickles", action="store_true", help=TRUST_PICKLES_HELP)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not args.csv and not args.latex:
        raise UserError("give --csv PATH, --latex PATH or both")
    for flag, path in (("--csv", args.csv), ("--latex", args.latex)):
        if path:
            check_file_target(path, flag)        # a folder there, or no way to write: refused before any work
    if args.csv:
        rows = tidy_rows(args.paths, args.trust_pickles)
        write_tidy_csv(rows, Path(args.csv))
        print(f"{args.csv}: {len(rows)} rows (run x epoch)")
    if args.latex:
        results = Path(args.paths[0]) / "results.csv"
        if not results.is_file():
            raise UserError(f"{args.paths[0]}: no results.csv (run python src/report.py {args.paths[0]} first)")
        write_latex(read_csv(results), Path(args.latex))
        print(f"{args.latex}: the results table of {args.paths[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
