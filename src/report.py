"""Results of a sweep, from its saved records only: table, curves with bands, LR sensitivity.

    python src/report.py outputs/<sweep-name> [--target 70]     (default: the workload's target)
    python src/report.py outputs/mnist outputs/imdb ... --study-dir outputs/study   (several workloads)

Writes into the sweep folder:
    results.md, results.csv   per optimizer: best lr (and the rest of a searched setting), weight decay, final train loss, val loss and
                              val accuracy (where the workload has one) as mean +- std over seeds,
                              epochs to the workload's target (or --target), median seconds per
                              epoch, seeds, diverged runs
    curves.png                best setting per optimizer: mean over seeds, band = min..max
    iterations.png            per-iteration train loss at the best setting, log axis
    lr_sensitivity.png        the selection's value (best validation accuracy over the epochs, or the
                              final train loss) against learning rate, diverged runs marked x
    tuning_curves.png         expected best result after k trials drawn with replacement from the
                              first seed's trials, k = 1..N (Dodge et al., 2019); a diverged trial
                              counts as the untrained model (epoch 0), hollow where it may be best
    runs.csv, results.tex     every run's every epoch, tidy (src/export.py); the results table in LaTeX
    figure3.png               train loss over the first 3 epochs (linear) beside all epochs (log),
                              the layout of the paper's Figure 3

Given several sweeps (one per workload), it also writes into --study-dir:
    study.md, study.csv       per workload and optimizer: epochs and training seconds to the
                              workload's target at the pick (median over seeds), each with its ratio
                              to the best optimizer's; AlgoPerf's profile score and the exact area
    performance_profile.png   performance profiles: the fraction of workloads on which each optimizer
                              reaches the target within tau times the best's training seconds
                              (AlgoPerf's definition) and, beside it, epochs (a variant)
    win_rate.png              how often each optimizer ends better than each other one, over every
                              workload and seed both finished (at their picks, on each sweep's
                              selection metric at the last epoch; --win-weighting: per pair or per
                              workload); the matrix is also in study.md
Verdicts: paired t intervals between the optimizers' picks over the seeds both finished, less the
first seed (it picked the settings), with the number of intervals made. With --baselines, each pick
is also judged against each comparable baseline pick the same way (over the seeds both ran, less
each side's picking seed; refused, in words, where a seed would not mean the same initialisation
and data order), and results.md says what each side was given (settings tried, dimensions, epochs,
a pick at the edge of its range).
    study_runs.csv            every run of every sweep, tidy
--html PATH writes all of it, every sweep and the study, as one self-contained page (src/page.py).
"""
import sys

from optstudy.analysis import plotting
from optstudy.analysis.report import report
from optstudy.core.cli import Parser, finite_float, positive_int, run_main
from optstudy.records.store import TRUST_PICKLES_HELP


def build_parser():
    p = Parser(description="Tables and figures of a finished (or partial) sweep.")
    p.add_argument("sweep_dirs", nargs="+", metavar="sweep_dir", help="the sweep folder (holds sweep.json); several "
                   "make a study across workloads")
    p.add_argument("--study-dir", help="with several sweeps: where the table and performance profiles across them go")
    p.add_argument("--baselines", help="a shipped baseline sweep or folder of sweeps (baselines/...): their picks join "
                                       "the table and curves where comparable with the sweep's runs (src/baselines.py)")
    p.add_argument("--html", help="also write everything as one self-contained HTML page here (figures embedded)")
    p.add_argument("--target", type=finite_float,
                   help="value of the workload's target metric (val accuracy %%, or val loss) for epochs-to-target "
                        "(default: the workload's, e.g. 70%% for cifar10-cnn)")
    p.add_argument("--smooth", type=positive_int, default=plotting.SMOOTH,
                   help=f"iterations averaged (default: {plotting.SMOOTH})")
    p.add_argument("--win-weighting", choices=["pair", "workload"], default="pair",
                   help="win rates across sweeps: each (workload, seed) pair weighs the same, or each workload "
                        "(default: pair)")
    p.add_argument("--trust-pickles", action="store_true", help=TRUST_PICKLES_HELP)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    return report(args.sweep_dirs, args.study_dir, args.baselines, args.html, args.target, args.smooth,
                  args.trust_pickles, args.win_weighting)


if __name__ == "__main__":
    sys.exit(run_main(main))
