"""The documentation: equation tables that name existing objects, examples that run, the CLI page, the site build."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import deltanet as dn

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
EQUATION_PAGES = sorted((DOCS / "equations").glob("*.md"))
#: Pages with Python examples (``pycon`` or ``python`` code blocks): the tests run them all.
EXAMPLE_PAGES = [p for p in sorted(DOCS.rglob("*.md")) if re.search(r"^```(pycon|python)\b", p.read_text(encoding="utf-8"), re.M)]

DOTTED = re.compile(r"`(deltanet(?:\.[A-Za-z_][A-Za-z0-9_]*)+)`")


# ---------------------------------------------------------------------------
# Equation tables
# ---------------------------------------------------------------------------

def table_rows(text: str) -> list[str]:
    """The body rows of every Markdown table in ``text`` (header and separator rows left out)."""
    rows: list[str] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("|"):
            continue
        if re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", line.strip()):
            continue
        if i + 1 < len(lines) and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", lines[i + 1].strip()):
            continue  # a header row
        rows.append(line)
    return rows


def readme_equation_rows() -> list[str]:
    """The rows of the README's equation-to-code table (the table after "Equation to code")."""
    text = README.read_text(encoding="utf-8")
    start = text.index("Equation to code")
    end = text.index("\n\n", text.index("| course text | code |", start))
    return table_rows(text[start:end])


def resolve(name: str) -> Any:
    """The object a dotted name stands for: the longest importable module, then attributes."""
    parts = name.split(".")
    obj = importlib.import_module(parts[0])
    i = 1
    while i < len(parts):
        prefix = ".".join(parts[:i + 1])
        try:
            obj = importlib.import_module(prefix)
        except ModuleNotFoundError as exc:
            if exc.name != prefix:
                raise
            break
        i += 1
    for attr in parts[i:]:
        obj = getattr(obj, attr)
    return obj


def linked_names(rows: list[str]) -> list[str]:
    return [name for row in rows for name in DOTTED.findall(row)]


def test_resolve_finds_objects_and_rejects_missing_ones():
    assert resolve("deltanet.modules.linear.Linear.backward") is dn.Linear.backward
    assert resolve("deltanet.optim.rules") is importlib.import_module("deltanet.optim.rules")
    with pytest.raises(AttributeError):
        resolve("deltanet.modules.linear.Linear.no_such_method")
    with pytest.raises(AttributeError):
        resolve("deltanet.modules.no_such_module")


def test_readme_equation_table_names_existing_objects():
    rows = readme_equation_rows()
    assert len(rows) >= 15
    for row in rows:
        names = DOTTED.findall(row)
        assert names, f"README equation table: a row names no deltanet object: {row}"
        for name in names:
            resolve(name)


@pytest.mark.parametrize("page", EQUATION_PAGES, ids=lambda p: p.name)
def test_equation_pages_name_existing_objects(page):
    rows = table_rows(page.read_text(encoding="utf-8"))
    assert rows, f"{page.name}: no table"
    for row in rows:
        if page.name == "index.md":   # the table of course sections links pages, not objects
            continue
        names = DOTTED.findall(row)
        assert names, f"{page.name}: a row names no deltanet object: {row}"
        for name in names:
            resolve(name)


def test_equation_page_links_point_where_they_say():
    for page in EQUATION_PAGES:
        for shown, target in re.findall(r"\[`([^`]+)`\]\[([^\]]*)\]", page.read_text(encoding="utf-8")):
            assert target in ("", shown), f"{page.name}: [`{shown}`] links to {target}"


def test_equation_pages_cover_every_course_section():
    titles = {p.stem for p in EQUATION_PAGES}
    assert {"mlp", "backpropagation", "training", "implementation", "advanced"} <= titles
    covered = set(linked_names([r for p in EQUATION_PAGES for r in table_rows(p.read_text(encoding="utf-8"))]))
    # every object of the README's table is on a page too (or one of its members, or the class it belongs to)
    for name in linked_names(readme_equation_rows()):
        assert any(c == name or c.startswith(name + ".") or name.startswith(c + ".") for c in covered), name


# ---------------------------------------------------------------------------
# Examples
# ---------------------------------------------------------------------------

FENCE = re.compile(r"^```(?P<lang>[A-Za-z]*)[^\n]*\n(?P<body>.*?)^```", re.M | re.S)


def run_page(page: Path) -> doctest.TestResults:
    """Run a page's ``pycon`` blocks as doctests and its ``python`` blocks as code, in order, in one namespace."""
    text = page.read_text(encoding="utf-8")
    globs: dict[str, Any] = {"__name__": f"docs.{page.stem}"}
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for match in FENCE.finditer(text):
        lang, body = match.group("lang"), match.group("body")
        line = text.count("\n", 0, match.start()) + 1
        if lang == "pycon":
            test = parser.get_doctest(body, globs, f"{page.name}:{line}", str(page), line)
            runner.run(test, clear_globs=False)
            globs.update(test.globs)   # a DocTest runs in a copy of the namespace it is given
        elif lang == "python":
            exec(compile(body, f"{page}:{line}", "exec"), globs)
    return runner.summarize(verbose=False)


@pytest.mark.parametrize("page", EXAMPLE_PAGES, ids=lambda p: p.name)
def test_docs_examples_run(page, tmp_path, monkeypatch):
    assert {"index.md", "tutorial.md"} <= {p.name for p in EXAMPLE_PAGES}
    monkeypatch.chdir(tmp_path)   # examples that write files write them here
    results = run_page(page)
    assert results.attempted > 0, f"{page.name}: no examples"
    assert results.failed == 0, f"{page.name}: {results.failed} of {results.attempted} examples failed (see the output above)"


PACKAGE = Path(dn.__file__).resolve().parent
#: The modules whose docstrings hold examples (the API reference shows them).
DOCSTRING_MODULES = sorted(
    ".".join(("deltanet", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
    for path in PACKAGE.rglob("*.py") if ">>>" in path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("module_name", DOCSTRING_MODULES)
@pytest.mark.filterwarnings("ignore:Stochastic Optimizer:Warning")   # the estimators' example stops at max_iter, as in scikit-learn
def test_docstring_examples_run(module_name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:   # an optional extra (scikit-learn, onnx) is not installed
        pytest.skip(f"{module_name} needs {exc.name}")
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, module_name):   # each in a copy of its module's namespace, as doctest does
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{module_name}: {results.failed} of {results.attempted} docstring examples failed (see the output above)"


# ---------------------------------------------------------------------------
# CLI reference and the site
# ---------------------------------------------------------------------------

def load_hooks() -> Any:
    spec = importlib.util.spec_from_file_location("deltanet_docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_has_every_command_help():
    from deltanet.cli import COMMANDS, build_parser

    page = load_hooks().cli_reference()
    parser = build_parser()
    assert parser.format_help().strip().splitlines()[0] in page
    for command in COMMANDS:
        assert f"## `deltanet {command}`" in page
        assert parser.command_parsers[command].format_help().strip() in page


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    pytest.importorskip("mkdocstrings_handlers.python")
    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
                           "--site-dir", str(site)], capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (site / "cli" / "index.html").is_file()
    html = (site / "equations" / "backpropagation" / "index.html").read_text(encoding="utf-8")
    assert 'href="../../api/modules/#deltanet.modules.linear.Linear.backward"' in html
    assert 'class="arithmatex"' in html
