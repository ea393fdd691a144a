"""The dependency rules, read from the source (docs/architecture.md, "Imports").

maps depends on games and never the reverse; model_server depends on neither, nor on Django;
the product never imports the tools (bench/, devtools/); and an import inside a function body is
never there to dodge an import cycle. Parsed with ast,
so an import anywhere in a file counts: at the top, inside a function, or under TYPE_CHECKING.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# games' own tests include whole-site tests (moderation seen in maps and exports, the researcher
# API's input rules) that import maps to look at the result; the rule is about the product code.
PRODUCT = ("tests", "migrations")
# The tools (benchmarks, load, simulated players, cheats) are used by tests and by management
# commands, which are thin wrappers around them; the code the site and the model server run is not.
TOOLS = ("bench", "devtools")
NOT_PRODUCT = ("tests", "migrations", "management")

# Every import still inside a function body in games/ and maps/, and why it is there. A new one
# must be added here with its reason, so a deferred import never again hides a cycle.
DEFERRED_IMPORTS = {
    ("games/api_input.py", "rest_framework.views"): "DRF's views read REST_FRAMEWORK settings when imported",
    ("games/apps.py", "games"): "AppConfig.ready(): checks and tasks register once every model is loaded",
    ("maps/apps.py", "games.consensus"): "AppConfig.ready(): registers maps as games' consensus provider",
    ("maps/apps.py", "maps"): "AppConfig.ready(): tasks register with Celery, receivers connect to games.signals",
    ("maps/apps.py", "maps.services"): "AppConfig.ready(): the consensus provider, once every model is loaded",
    ("maps/export_jobs.py", "maps"): "pyarrow and h5py load in the workers that write exports, not in web processes",
    ("maps/export_jobs.py", "maps.export_writers"): "pyarrow and h5py, as above",
    ("maps/exports.py", "maps"): "pyarrow and h5py, as above",
    ("evolution/apps.py", "evolution"): "AppConfig.ready(): the task registers with Celery",
    ("evolution/apps.py", "evolution.services"): "AppConfig.ready(): games' evolution provider, once models are loaded",
    ("evolution/apps.py", "games.partner"): "AppConfig.ready(): registers the provider with games",
}
CYCLE_WORDS = ("cycle", "circular", "not at top", "imports this", "imports that", "imports services", "imports games")


def python_files(folder: str, *, skip: tuple[str, ...] = ()) -> Iterator[Path]:
    for path in sorted((ROOT / folder).rglob("*.py")):
        if not set(path.relative_to(ROOT / folder).parts[:-1]) & set(skip):
            yield path


def imported_modules(tree: ast.AST) -> Iterator[tuple[ast.stmt, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node, node.module


def imports_of(path: Path, packages: tuple[str, ...], *, root: Path = ROOT) -> list[str]:
    """`file:line module` of each import of one of the packages (or their submodules) in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        f"{path.relative_to(root)}:{node.lineno} {module}"
        for node, module in imported_modules(tree)
        if module.split(".")[0] in packages
    ]


def deferred_imports(path: Path) -> Iterator[tuple[str, int, str]]:
    """(module, line number, source line) of each import inside a function body of the file."""
    source = path.read_text()
    lines = source.splitlines()
    for function in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            for node, module in imported_modules(function):
                yield module, node.lineno, lines[node.lineno - 1]


def test_the_games_app_never_imports_maps() -> None:
    found = [hit for path in python_files("games", skip=PRODUCT) for hit in imports_of(path, ("maps",))]
    assert found == [], "games must not import maps (announce with games.signals instead):\n" + "\n".join(found)


def test_the_model_server_imports_neither_django_nor_the_site_apps() -> None:
    found = [hit for path in python_files("model_server") for hit in imports_of(path, ("django", "games", "maps"))]
    assert found == [], "model_server stays free of Django and the site:\n" + "\n".join(found)


@pytest.mark.parametrize("app", ["games", "maps", "model_server", "evolution"])
def test_the_product_never_imports_the_tools(app: str) -> None:
    found = [hit for path in python_files(app, skip=NOT_PRODUCT) for hit in imports_of(path, TOOLS)]
    assert found == [], "benchmarks and simulation live in bench/ and devtools/, used by commands:\n" + "\n".join(found)


def test_neither_games_nor_maps_imports_evolution() -> None:
    found = [hit for app in ("games", "maps") for path in python_files(app, skip=PRODUCT)
             for hit in imports_of(path, ("evolution",))]  # fmt: skip
    assert found == [], "evolution depends on maps and games, never the reverse:\n" + "\n".join(found)


@pytest.mark.parametrize("app", ["games", "maps", "evolution"])
def test_no_import_inside_a_function_dodges_a_cycle(app: str) -> None:
    dodges = [
        f"{path.relative_to(ROOT)}:{line} {text.strip()}"
        for path in python_files(app, skip=PRODUCT)
        for _, line, text in deferred_imports(path)
        if any(word in text.lower() for word in CYCLE_WORDS)
    ]
    assert dodges == [], "imports placed in a function to dodge a cycle:\n" + "\n".join(dodges)


def test_every_import_inside_a_function_is_listed_with_its_reason() -> None:
    found = {
        (str(path.relative_to(ROOT)), module)
        for app in ("games", "maps", "evolution")
        for path in python_files(app, skip=PRODUCT)
        for module, _, _ in deferred_imports(path)
    }
    assert found - DEFERRED_IMPORTS.keys() == set(), "add a reason to DEFERRED_IMPORTS, or import at the top"
    assert DEFERRED_IMPORTS.keys() - found == set(), "these deferred imports are gone: drop them from the list"


def test_the_rules_catch_what_they_look_for(tmp_path: Path) -> None:
    """The checks themselves can fail: a games module importing maps, and a cycle dodged in a function."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import django.db\nfrom maps.services import x\nimport devtools.players\n\n"
        "def f():\n    from games.tasks import t  # tasks import services: import here, not at top\n"
    )
    assert imports_of(sample, ("maps",), root=tmp_path) == ["sample.py:2 maps.services"]
    assert imports_of(sample, ("django",), root=tmp_path) == ["sample.py:1 django.db"]
    assert imports_of(sample, TOOLS, root=tmp_path) == ["sample.py:3 devtools.players"]
    [(module, line, text)] = deferred_imports(sample)
    assert (module, line) == ("games.tasks", 6) and any(word in text for word in CYCLE_WORDS)
