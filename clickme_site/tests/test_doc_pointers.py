"""Code comments point to our own docs, and each pointer leads somewhere (docs/architecture.md).

A pointer is `docs/NAME.md` or `docs/NAME.md, "Section"`: the file must exist, and the section
must be (part of) one of its headings. No comment cites the outside specification the first
versions were written from: it is not in the repository.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("games", "maps", "model_server", "clickme_site", "devtools", "bench", "static", "templates")
POINTER = re.compile(r'docs/([A-Za-z0-9_-]+\.md)(?:,\s*"([^"]+)")?')
OUTSIDE_SPEC = re.compile("SPEC" + r"\s*(§|section\b)")


def source_files() -> list[Path]:
    return sorted(
        path
        for folder in SOURCES
        for suffix in ("*.py", "*.js", "*.html")
        for path in (ROOT / folder).rglob(suffix)
        if "node_modules" not in path.parts and path != Path(__file__).resolve()  # its examples are not pointers
    )


def headings(doc: Path) -> list[str]:
    return [line.lstrip("#").strip().replace("`", "").lower() for line in doc.read_text().splitlines()
            if line.startswith("#")]  # fmt: skip


def broken_pointers(files: list[Path], docs: Path) -> list[str]:
    """`file:line pointer` of each pointer to a missing doc or to a section no heading of it names."""
    broken = []
    for path in files:
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for name, section in POINTER.findall(line):
                doc = docs / name
                found = doc.is_file() and (
                    not section or any(section.replace("`", "").lower() in h for h in headings(doc))
                )
                if not found:
                    broken.append(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{number} {name}"
                                  + (f', "{section}"' if section else ""))  # fmt: skip
    return broken


def test_every_pointer_to_the_docs_names_a_file_and_a_section_that_exist() -> None:
    broken = broken_pointers(source_files(), ROOT / "docs")
    assert broken == [], "pointers to docs that do not exist:\n" + "\n".join(broken)


def test_no_comment_cites_the_outside_specification() -> None:
    cited = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in source_files()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if OUTSIDE_SPEC.search(line)
    ]
    assert cited == [], "point to docs/ instead (docs/architecture.md):\n" + "\n".join(cited)


def test_a_wrong_pointer_is_caught(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text("# Guide\n\n## 2. Upload the `images`\n")
    code = tmp_path / "code.py"
    code.write_text(
        '# docs/guide.md, "Upload the images" is right\n# docs/guide.md, "Download" is not\n# docs/gone.md neither\n'
    )
    assert broken_pointers([code], tmp_path / "docs") == [
        f'{code}:2 guide.md, "Download"',
        f"{code}:3 gone.md",
    ]
    assert OUTSIDE_SPEC.search("as in " + "SPEC" + " §2") and not OUTSIDE_SPEC.search("SPECTACULAR_SETTINGS")
