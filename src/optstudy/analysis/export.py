"""Tidy exports of saved runs (one row per run and epoch) and LaTeX tables, from records only."""
import csv
import re
from itertools import accumulate

from optstudy.core.cli import UserError
from optstudy.records import store as records
from optstudy.records.meaning import facets, short

# Per-epoch lists of a record, in the order of the columns (those a record lacks are left out).
EPOCH_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "lr")




def tidy_rows(paths, trust_pickles=False):
    """[{column: value}]: one per run and epoch."""
    runs = records.find_runs(paths)
    if not runs:
        raise UserError(f"no runs under {', '.join(map(str, paths))}")
    rows = []
    for run_dir in runs:
        config, metrics = records.load_run(run_dir, trust_pickles)
        settings = {k: short(v) for k, v in sorted(facets(config).items())}
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
    """A CSV a spreadsheet opens safely: a text cell that a spreadsheet would take for a formula
    (=, +, -, @, a tab or a carriage return first, as an optimizer named =1+2.py:Lion) is written
    with a single quote before it (OWASP's advice), as is one that starts with a quote, so that
    read_csv gives back the text as it was. Numbers stay numbers, negative ones included."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([cell(h) for h in header])
        writer.writerows([cell(row.get(h, "")) for h in header] for row in rows)


FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def cell(value):
    """A value as a CSV cell: text that could start a formula quoted with a leading ', a number as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not NUMBER.fullmatch(value):
        return "'" + value
    return value


def read_csv(path):
    """The rows write_csv wrote, each text cell as it was before it was quoted."""
    uncell = lambda v: v[1:] if isinstance(v, str) and v.startswith("'") else v
    with open(path, newline="") as f:
        return [{uncell(k): uncell(v) for k, v in row.items()} for row in csv.DictReader(f)]


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
