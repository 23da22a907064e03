"""One self-contained HTML page of a study, from its saved records and report files only.

    python src/report.py outputs/studies/mnist-search outputs/studies/imdb-search --study-dir DIR --html study.html
    python src/page.py study.html --screenshot docs/study-page.png     # as a headless Chromium draws it

Figures are embedded (base64 PNG), styles inline, no script, no server, no network: the file opens
offline in any browser and can be mailed as it is. Per sweep: its settings and provenance (command,
device and CPU capability, versions, git commit), the results table (which split each column
comes from is in its name and the caption), the verdict sentences with their intervals, and every
figure the report drew; for a study across workloads, its table, win rates and profiles.
"""
import sys
from pathlib import Path

from optstudy.analysis.page import find_browser, screenshot
from optstudy.core.cli import Parser, UserError, positive_int, run_main
from optstudy.records.store import check_file_target


def main(argv=None):
    p = Parser(description="Draw a study page as a headless Chromium shows it.")
    p.add_argument("html", help="the page (from report.py --html)")
    p.add_argument("--screenshot", required=True, help="PNG to write")
    p.add_argument("--width", type=positive_int, default=1100, help="window width in pixels (default: %(default)s)")
    p.add_argument("--height", type=positive_int, default=1800, help="window height in pixels (default: %(default)s)")
    args = p.parse_args(argv)
    if not Path(args.html).is_file():
        raise UserError(f"no page at {args.html}")
    browser = find_browser()
    if browser is None:
        raise UserError("no Chromium found (Debian: apt install chromium)")
    check_file_target(args.screenshot, "--screenshot")
    errors = screenshot(browser, args.html, args.screenshot, args.width, args.height)
    if errors:
        raise UserError(f"the page logged {len(errors)} console error(s), the first: {errors[0]}")
    print(f"screenshot: {args.screenshot}")


if __name__ == "__main__":
    sys.exit(run_main(main))
