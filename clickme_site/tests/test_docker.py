"""The images' build context: `COPY . .` must carry the code and never secrets, local data or caches.

The patterns of `.dockerignore` are read with Docker's own rules (moby's patternmatcher, as
documented under "Dockerfile reference: .dockerignore file"): matched from the context root, `*`
and `?` never cross `/`, `**` spans directories, a path is left out when it or a directory above
it matches, `!` takes a path back, and the last matching line wins.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = [ROOT / "Dockerfile", ROOT / "model_server" / "Dockerfile"]


def _regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def ignore_rules(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    """(takes back, pattern) for each line of a .dockerignore, comments and blanks skipped."""
    rules = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        cleaned = str(PurePosixPath(line.lstrip("!").strip("/")))
        rules.append((negated, _regex(cleaned)))
    return rules


def is_ignored(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether Docker leaves `path` (relative to the context) out of the build context."""
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]  # the path and every directory above it
    ignored = False
    for negated, pattern in rules:
        if any(pattern.match(candidate) for candidate in candidates):
            ignored = not negated
    return ignored


@pytest.fixture(scope="module")
def rules() -> list[tuple[bool, re.Pattern[str]]]:
    return ignore_rules((ROOT / ".dockerignore").read_text())


def test_both_dockerfiles_copy_from_the_context_root_that_dockerignore_guards() -> None:
    # The web image copies everything (`COPY . .`); if it ever stopped, this file would guard nothing.
    sources = [line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("COPY ")]
    assert "." in sources
    for dockerfile in DOCKERFILES:
        text = dockerfile.read_text()
        assert not re.search(r"^(COPY|ADD)\s+.*(\.env\b|\bvar/|\.git\b)", text, flags=re.M), dockerfile
        assert re.search(r"^USER\s+(?!root)\S+", text, flags=re.M), f"{dockerfile} runs as root"


@pytest.mark.parametrize(
    "path",
    [
        ".env",
        ".env.production",
        "var/clickme.sqlite3",
        "var/media/images/crops/ab/abc.png",
        "var/exports/demo/1-20260101T000000Z/clicks.csv",
        "var/celerybeat-schedule",
        "media/images/originals/x.jpg",
        ".git/config",
        ".git/objects/pack/pack-1.pack",
        ".venv/bin/python",
        ".venv/lib/python3.11/site-packages/django/__init__.py",
        "staticfiles/staticfiles.json",
        "games/__pycache__/api.cpython-311.pyc",
        "model_server/tests/__pycache__/serving.cpython-311.pyc",
        ".pytest_cache/README.md",
        ".ruff_cache/CACHEDIR.TAG",
        ".hypothesis/examples/1",
        "bench-results/ramp.csv",
        "games/db.sqlite3",
    ],
)
def test_secrets_local_data_and_caches_stay_out_of_the_images(path: str, rules: list) -> None:
    assert is_ignored(path, rules), f"{path} would be copied into the image"


def tracked_files() -> list[str]:
    result = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip("not a git checkout")
    return result.stdout.split()


def test_the_code_the_images_run_is_all_still_copied(rules: list) -> None:
    left_out = {path for path in tracked_files() if is_ignored(path, rules)}
    # Only what no container needs may go: CI scripts and git's own file.
    assert {path for path in left_out if not (path.startswith(".ci/") or path == ".gitignore")} == set()
    needed = ["manage.py", "requirements.txt", "model_server/requirements.txt", "model_server/checkpoints/demo.pt",
              "clickme_site/settings.py", "static/games/main.js", "templates/base.html", ".env.example"]  # fmt: skip
    assert [path for path in needed if is_ignored(path, rules)] == []


def test_the_matcher_follows_dockers_rules_not_gits() -> None:
    rules = ignore_rules("*.pyc\n/var\nlogs/**/*.log\n!logs/keep.log\n")
    assert is_ignored("a.pyc", rules) and not is_ignored("games/a.pyc", rules)  # `*` never crosses `/`
    assert is_ignored("var/x/y", rules) and not is_ignored("variables.py", rules)
    assert is_ignored("logs/a/b/c.log", rules) and is_ignored("logs/c.log", rules)
    assert not is_ignored("logs/keep.log", rules)
