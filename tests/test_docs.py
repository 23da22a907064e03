"""The README is a front door and docs/ holds the rest: every link, image and anchor resolves,
every path named in backticks or a command exists, every command block is valid shell, and every
page is reachable from the README."""
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"```.*?```", re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
COMMAND = r"(python|sh|bash|pip|OUT=|[A-Z]+=|dask|cd|git|tar|d=)\b"
PATH = re.compile(r"(?<![\w./-])((?:src|baselines|examples|docs|tests)/[\w./-]*\w)")


def slug(heading):
    """A heading's anchor as GitHub makes it."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page):
    seen, out = {}, set()
    for heading in re.findall(r"^#{1,6}\s+(.*?)\s*$", FENCE.sub("", page.read_text()), re.M):
        s = slug(heading)
        out.add(s if s not in seen else f"{s}-{seen[s]}")
        seen[s] = seen.get(s, 0) + 1
    return out


def broken_links(page):
    for target in LINK.findall(FENCE.sub("", page.read_text())):
        if re.match(r"[a-z]+://|mailto:", target):
            continue
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.exists():
            yield f"{target}: no such file"
        elif anchor and anchor not in anchors(dest):
            yield f"{target}: no such heading"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_images_and_anchors_resolve(page):
    assert not list(broken_links(page))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_named_paths_exist(page):
    text = page.read_text()
    named = [p for chunk in [*re.findall(r"`([^`\n]+)`", text), *FENCE.findall(text)] for p in PATH.findall(chunk)
             if not any(c in p for c in "*<>")]
    assert not [p for p in named if not (REPO / p.rstrip(".")).exists()]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_command_blocks_are_valid_shell(page):
    for block in FENCE.findall(page.read_text()):
        lines = block.split("\n")
        commands = [line for line in lines[1:-1] if line.strip() and not line.lstrip().startswith("#")]
        if lines[0].strip("`") not in ("", "sh", "bash") or not commands or not re.match(COMMAND, commands[0]):
            continue                              # Python, JSON, a listing of files or a diagram
        body = "\n".join(lines[1:-1])
        for shell in ("bash", "sh"):
            proc = subprocess.run([shell, "-n"], input=body, text=True, capture_output=True)
            assert proc.returncode == 0, f"{shell}: {proc.stderr}\n{body}"


def test_the_readme_is_a_front_door_to_every_page():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) < 200
    assert "python -m pytest -q" in readme                   # the test command CI runs
    linked = {Path(t.partition("#")[0]).name for t in LINK.findall(readme)}
    assert {p.name for p in PAGES[1:]} <= linked


def test_the_checks_can_fail(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# Title\n\n[a](missing.md) [b](#title) [c](#nope)\n")
    assert list(broken_links(page)) == ["missing.md: no such file", "#nope: no such heading"]
