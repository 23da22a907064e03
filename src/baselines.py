"""Shipped baselines: compact records of the runs behind the README's studies, to set a new
optimizer beside without re-running them.

    python src/baselines.py collect outputs/studies/mnist-search --into baselines/mnist-search
    python src/plot.py outputs/my-runs --baselines baselines/mnist-search
    python src/baselines.py regenerate baselines/figure1 [--dry-run]    # re-run them from their commands
    python src/baselines.py regenerate shared/ --trust-code     # their optimizer code too (file.py:Class)

A compact record is a run's config.json and its metrics.json less the per-minibatch losses and
without checkpoints: the per-epoch metrics and the resolved settings, in the safe JSON format (a
few kB a run); --into never writes over the records it reads (a folder that is one of the paths,
inside one or holding one is refused, as is a file). A baseline is drawn only beside runs it is
comparable with: the same workload, data, epochs, batch size, split, limits, schedule, dropout and
preprocessing, else it is left out with one line naming the difference; a different torch version,
precision or device type draws it with one warning line naming them. baselines/README.md says what
each set is and how it was made. regenerate runs a sweep's optimizer code (file.py:Class) only with
--trust-code; --dry-run lists it.
"""
import sys
from pathlib import Path

from optstudy.analysis.baselines import collect
from optstudy.core.cli import Parser, run_main
from optstudy.experiments.regenerate import regenerate


def build_parser():
    p = Parser(description="Make compact baseline records from finished runs.")
    sub = p.add_subparsers(dest="command", required=True)
    compact = sub.add_parser("collect", help="compact records of every finished run under the paths")
    compact.add_argument("paths", nargs="+", help="sweep folders or folders of runs")
    compact.add_argument("--into", required=True, help="the baseline folder to write (e.g. baselines/mnist-search)")
    again = sub.add_parser("regenerate", help="re-run the sweeps behind baseline folders from their recorded "
                                              "commands, then collect them into the same folders")
    again.add_argument("folders", nargs="+", help="baseline folders (e.g. baselines/figure1)")
    again.add_argument("--output-dir", default="outputs/baselines",
                       help="where the full runs go (default: %(default)s)")
    again.add_argument("--data-root", help="the data root, where it is not the one recorded in the commands")
    again.add_argument("--dry-run", action="store_true",
                       help="print the commands, recorded times and any optimizer code they would run; run nothing")
    again.add_argument("--trust-code", action="store_true",
                       help="run the optimizer code (file.py:Class, module:Class) the folder's sweeps name: it is "
                            "someone else's code, refused without this flag")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command == "regenerate":
        for folder in map(Path, args.folders):
            regenerate(folder, Path(args.output_dir), args.data_root, args.dry_run, args.trust_code)
        return 0
    written = collect(args.paths, Path(args.into))
    print(f"{args.into}: {written} compact record(s)")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
