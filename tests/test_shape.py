"""The shape of src/, read with ast (nothing is imported): thin scripts over a library whose layers
import only downward. docs/architecture.md draws the same layers.

- a script (a file of src/ that runs as __main__) imports the library, never another script;
- a library module imports only from its own layer or the layers below it, and the modules of one
  layer import each other without a circle;
- no project import hides inside a function (an optional dependency such as Dask may: it is not
  the project's);
- scripts stay short (train.py under 250 lines, every script under 400), functions under 60 lines.
"""
import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "optstudy"
# Bottom to top. src/model.py is the models layer: the repository's fixed shape keeps it there.
LAYERS = ("core", "records", "data", "model", "training", "analysis", "experiments")


def scripts():
    return sorted(f for f in SRC.glob("*.py") if "__main__" in f.read_text())


def library():
    return sorted([*SRC.joinpath(PACKAGE).rglob("*.py"), SRC / "model.py"])


def module_name(path):
    """src/optstudy/training/loop.py -> optstudy.training.loop; src/model.py -> model."""
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module):
    """The layer of a library module (optstudy.training.loop -> training; model -> model), None for
    the package's own __init__."""
    parts = module.split(".")
    if parts[0] == "model":
        return "model"
    return parts[1] if len(parts) > 1 else None


def project_imports(tree, known):
    """[(node, imported module)] of every import of a project module in the tree; `from optstudy.x
    import y` names optstudy.x.y where that is a module."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node, a.name) for a in node.names if a.name.split(".")[0] in known]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in known:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.append((node, sub if sub in known["*modules"] else node.module))
    return found


@pytest.fixture(scope="module")
def code():
    files = {module_name(f): f for f in [*scripts(), *library()]}
    known = {PACKAGE: True, "model": True, **{module_name(f): True for f in scripts()},
             "*modules": set(files)}
    trees = {name: ast.parse(path.read_text(), str(path)) for name, path in files.items()}
    return files, trees, known


def test_no_script_imports_a_script_and_the_library_imports_no_script(code):
    files, trees, known = code
    names = {module_name(f) for f in scripts()}
    wrong = [f"{m} imports {target}" for m, tree in trees.items() for _, target in project_imports(tree, known)
             if target in names]
    assert not wrong, wrong


def test_library_layers_import_only_downward(code):
    files, trees, known = code
    wrong = []
    for m, tree in trees.items():
        if layer(m) is None and m != "model":
            continue                                  # a script, or the package's __init__
        for _, target in project_imports(tree, known):
            if target == PACKAGE or layer(target) is None:
                continue
            if LAYERS.index(layer(target)) > LAYERS.index(layer(m)):
                wrong.append(f"{m} ({layer(m)}) imports {target} ({layer(target)})")
    assert not wrong, wrong


def test_no_import_circle(code):
    files, trees, known = code
    graph = {m: {t for _, t in project_imports(tree, known) if t in trees and t != m} for m, tree in trees.items()}
    state = {}

    def visit(m, path):
        state[m] = "open"
        for t in sorted(graph[m]):
            if state.get(t) == "open":
                pytest.fail("import circle: " + " -> ".join([*path[path.index(t):], t]))
            if t not in state:
                visit(t, [*path, t])
        state[m] = "done"
    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_no_project_import_inside_a_function(code):
    files, trees, known = code
    wrong = []
    for m, tree in trees.items():
        for fn in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            wrong += [f"{m}.{fn.name} imports {target}" for _, target in project_imports(fn, known)]
    assert not wrong, wrong


def test_scripts_and_functions_stay_short(code):
    files, trees, known = code
    lengths = {f.name: len(f.read_text().splitlines()) for f in scripts()}
    assert lengths["train.py"] < 250, lengths
    assert max(lengths.values()) <= 400, lengths
    long = [f"{m}.{n.name}: {n.end_lineno - n.lineno + 1} lines" for m, tree in trees.items() for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 60]
    assert not long, long


def test_the_shape_test_sees_what_it_guards(code):
    """The checks above must be able to fail: an upward import, a circle and a hidden import, made
    here in memory, are each found."""
    files, trees, known = code
    upward = ast.parse("from optstudy.experiments import sweep\n")
    assert [t for _, t in project_imports(upward, known)] == ["optstudy.experiments.sweep"]
    assert LAYERS.index(layer("optstudy.experiments.sweep")) > LAYERS.index(layer("optstudy.core.cli"))
    hidden = ast.parse("def f():\n    import model\n")
    fn = hidden.body[0]
    assert [t for _, t in project_imports(fn, known)] == ["model"]
    assert len(scripts()) == 10 and "optstudy.training.loop" in trees
