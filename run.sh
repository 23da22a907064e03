#!/bin/sh
# Train the Adam paper's CNN once per optimizer, then overlay their curves.
#
#   sh run.sh                                  # the tutorial: adam, then sgd; 45 epochs of CIFAR-10
#   sh run.sh adam sgd adagrad rmsprop adadelta   # the paper's Figure 2-3 set
#   sh run.sh --epochs 3 --data-dir DIR         # arguments after the names go to every training run
#   sh run.sh --quick                           # offline smoke run: synthetic data, 4 epochs, about 2 min on 2 CPU cores
#   sh run.sh --quick adam sgd adagrad rmsprop adadelta
#   sh run.sh adam sgd --workload mnist-logreg   # any workload (python src/train.py --list-workloads)
#
# Runs land in $OUT/<optimizer>_seed<seed>/ and the figures in $OUT/
# (OUT defaults to outputs/tutorial for the CIFAR-10 tutorial, outputs/<workload> for another workload,
# outputs/quick in quick mode; the quick mode overwrites).
# Re-running refuses to overwrite a finished run: add --resume or --overwrite.
set -eu
PYTHON=${PYTHON:-python}

quick=0
if [ "${1:-}" = "--quick" ]; then
    quick=1
    shift
fi

optimizers=""
while [ $# -gt 0 ]; do
    case "$1" in
        -*) break ;;
        *) optimizers="$optimizers $1"; shift ;;
    esac
done
[ -n "$optimizers" ] || optimizers="adam sgd"

# Every name is checked before the first run trains: a typo in the last one must not cost the
# 40 minutes of the first.
for opt in $optimizers; do
    "$PYTHON" src/train.py --optimizer "$opt" --list-optimizers > /dev/null || exit 2
done

# The default output folder is named after the workload: runs of two workloads never share one.
workload=cifar10-cnn
previous=""
for arg in "$@"; do
    case "$arg" in
        --workload=*) workload=${arg#--workload=} ;;
        *) [ "$previous" = "--workload" ] && workload=$arg ;;
    esac
    previous=$arg
done

if [ "$quick" = 1 ]; then
    default=outputs/quick
    [ "$workload" = cifar10-cnn ] || default=outputs/quick-$workload
    set -- --dataset synthetic --epochs 4 --limit-train 2000 --limit-test 500 --overwrite "$@"
else
    default=outputs/tutorial
    [ "$workload" = cifar10-cnn ] || default=outputs/$workload
fi
OUT=${OUT:-$default}

for opt in $optimizers; do
    echo "== training $opt"
    "$PYTHON" src/train.py --optimizer "$opt" --output-dir "$OUT" "$@"
done

echo "== plotting"
"$PYTHON" src/plot.py "$OUT" --out "$OUT"
