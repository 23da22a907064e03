"""Opt-in (-m slow): a study page, made by report.py --html from a tiny sweep, as a person sees it
in a headless Chromium (Debian's chromium); skipped cleanly where none is installed."""
import re

import pytest

import page

from optstudy.analysis import page as pages
import report
import sweep
from optstudy.core.cli import UserError, run_main
from test_search import TINY

# Run after the page loads: how many of its images the browser decoded, and how many tables it laid out
CHECK = ("<script>window.addEventListener('load', () => { document.body.dataset.drawn = "
         "[...document.images].filter(i => i.complete && i.naturalWidth > 0).length + '/' + "
         "document.images.length + '/' + document.querySelectorAll('table').length; });</script>")


@pytest.fixture(scope="module")
def browser():
    """The browser, or a skip before anything is built (the sweep below costs seconds)."""
    found = pages.find_browser()
    if found is None:
        pytest.skip("no Chromium on this machine (Debian: apt install chromium)")
    return found


@pytest.fixture(scope="module")
def study_page(browser, tmp_path_factory):
    out = tmp_path_factory.mktemp("page")
    argv = ["--name", "s", "--output-dir", str(out), "--optimizers", "adam", "sgd", "--lrs", "1e-2",
            "--seeds", "0", "1", *TINY]
    assert run_main(sweep.main, argv) == 0
    assert run_main(report.main, [str(out / "s"), "--study-dir", str(out / "study"),
                                  "--html", str(out / "study.html")]) == 0
    return out / "study.html"


@pytest.mark.slow
def test_the_study_page_renders_every_figure_and_table_without_console_errors(browser, study_page, tmp_path):
    checked = tmp_path / "checked.html"                  # the page plus the counting script above
    checked.write_text(study_page.read_text().replace("</body>", CHECK + "</body>"))
    dom, stderr = pages.run_browser(browser, checked, "--dump-dom")
    drawn = re.search(r'data-drawn="(\d+)/(\d+)/(\d+)"', dom)
    assert drawn, stderr[-2000:]
    decoded, images, tables = map(int, drawn.groups())
    source = study_page.read_text()
    assert decoded == images == source.count("<img ") >= 4, drawn.group(0)      # every figure drawn
    assert tables == source.count("<table>") >= 2, drawn.group(0)
    assert pages.console_errors(stderr) == []
    shot = tmp_path / "shot.png"                          # the page itself, no script added
    assert pages.screenshot(browser, study_page, shot) == []
    assert shot.stat().st_size > 20000                    # a drawn page, not a blank window
    print(f"screenshot: {shot}")


def test_a_missing_page_is_one_line(tmp_path):
    with pytest.raises(UserError, match="no page at"):
        page.main([str(tmp_path / "nope.html"), "--screenshot", str(tmp_path / "shot.png")])
