"""The layout's rules, checked on every run: import contracts, no cycles, short functions.

The contracts in `.importlinter` are checked by import-linter; the rules it
cannot say (only `annotation.qa` from annotation, no cycles at all) are
checked here on the same import graph (grimp), which counts imports inside
functions too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest
from importlinter.cli import lint_imports

from annotation.qa.vocab import WRONG_GROUNDING

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("annotation", "training", "config")
MAX_FUNCTION_LINES = 120


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph(*PACKAGES, include_external_packages=True)


def _project_imports(graph, module: str) -> set[str]:
    return {m for m in graph.find_modules_directly_imported_by(module) if m.split(".")[0] in PACKAGES}


def test_the_import_linter_contracts_hold():
    assert lint_imports(config_filename=str(ROOT / ".importlinter")) == 0


def test_training_ml_imports_only_itself_and_annotation_qa(graph):
    wrong = {
        (module, imported)
        for module in graph.find_descendants("training.ml") | {"training.ml"}
        for imported in _project_imports(graph, module)
        if not imported.startswith(("training.ml", "annotation.qa"))
    }
    assert not wrong, sorted(wrong)


def test_annotation_qa_imports_nothing_of_the_project_but_itself(graph):
    wrong = {
        (module, imported)
        for module in graph.find_descendants("annotation.qa") | {"annotation.qa"}
        for imported in _project_imports(graph, module)
        if not imported.startswith("annotation.qa")
    }
    assert not wrong, sorted(wrong)


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    modules = sorted(m for m in graph.modules if m.split(".")[0] in PACKAGES)
    edges = {m: sorted(_project_imports(graph, m)) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in modules:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            if i < len(edges[node]):
                work.append((node, i + 1))
                nxt = edges[node][i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found


def test_there_is_no_import_cycle_between_project_modules(graph):
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    graph = grimp.ImportGraph()
    for a, b in (("annotation.a", "annotation.b"), ("annotation.b", "annotation.c"), ("annotation.c", "annotation.a")):
        graph.add_import(importer=a, imported=b)
    graph.add_import(importer="annotation.c", imported="annotation.d")
    assert _cycles(graph) == [["annotation.a", "annotation.b", "annotation.c"]]


def _python_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py") if "migrations" not in p.parts)


def test_no_function_is_longer_than_120_lines():
    long = []
    for path in _python_files(*PACKAGES):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


def test_each_qa_feedback_name_is_spelled_in_one_python_module():
    quoted = (f'"{WRONG_GROUNDING}"', f"'{WRONG_GROUNDING}'")
    folders = (*PACKAGES, "tests", "benchmarks", "demo")
    holders = [
        str(path.relative_to(ROOT))
        for path in _python_files(*folders)
        if any(q in path.read_text(encoding="utf-8") for q in quoted)
    ]
    assert holders == ["annotation/qa/vocab.py"]
