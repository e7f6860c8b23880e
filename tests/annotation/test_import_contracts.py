"""The annotation side's import contracts, read from the source (imports inside functions count).

- annotation/ never imports training;
- annotation/qa is pure: nothing from Django, nothing of the project outside annotation.qa;
- no import cycle among annotation's modules.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ("annotation", "training", "config", "tests", "benchmarks")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(package: str) -> dict[str, Path]:
    return {_module_name(path): path for path in sorted((ROOT / package).rglob("*.py"))}


def _imports(path: Path, known: set[str]) -> set[str]:
    """Every module `path` imports, anywhere in the file (`from pkg import sub` counts as pkg.sub for a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            submodules = (f"{node.module}.{alias.name}" for alias in node.names)
            found.update(name for name in submodules if name in known)
    return found


def _top(name: str) -> str:
    return name.split(".")[0]


def _in_qa(name: str) -> bool:
    return name == "annotation.qa" or name.startswith("annotation.qa.")


ANNOTATION = _modules("annotation")


def test_annotation_never_imports_training():
    offenders = {
        name: sorted(i for i in _imports(path, set(ANNOTATION)) if _top(i) == "training")
        for name, path in ANNOTATION.items()
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_annotation_qa_imports_neither_django_nor_the_rest_of_the_project():
    offenders = {}
    for name, path in ANNOTATION.items():
        if not _in_qa(name):
            continue
        bad = sorted(
            i
            for i in _imports(path, set(ANNOTATION))
            if _top(i) == "django" or (_top(i) in PROJECT and not _in_qa(i))
        )
        if bad:
            offenders[name] = bad
    assert offenders == {}


def test_annotation_has_no_import_cycle():
    graph = {
        name: {i for i in _imports(path, set(ANNOTATION)) if i in ANNOTATION and i != name}
        for name, path in ANNOTATION.items()
    }
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for other in sorted(graph[name]):
            if state.get(other) == 1:
                cycles.append(path[path.index(other) :] + [other])
            elif other not in state:
                visit(other)
        path.pop()
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert cycles == []
