"""The house rules of the code base, checked on every test run.

* the import contracts of ``pyproject.toml`` (``lint-imports``: scratch imports no
  framework, keras_models and torch_models never import each other, nothing below the
  command line imports it);
* no import cycle among the project's modules;
* packages talk through public names only (the planted-bug library, whose job is to
  patch the scratch engine's internals, is the one exception);
* no production file over 500 lines;
* docstrings and comments cite only files that exist in the repository.
"""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("scratch", "keras_models", "torch_models", "experiments")
#: Modules allowed to reach into another package's internals: they exist to break them on purpose.
PATCHERS = {"experiments.parity.breakages"}


def _modules():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path


def _owner(module: str) -> str:
    """The package a module belongs to, for the public-name rule: a top-level package, or
    one of the subpackages of ``experiments`` (grid, parity, cli, ...)."""
    parts = module.split(".")
    if parts[0] == "experiments" and len(parts) > 1 and (ROOT / "experiments" / parts[1]).is_dir():
        return ".".join(parts[:2])
    return parts[0]


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_no_import_cycle():
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    modules = sorted(graph.modules)
    edges = {m: {t for t in graph.find_modules_directly_imported_by(m) if t in graph.modules} for m in modules}
    # Tarjan's strongly connected components: a component of more than one module is a cycle.
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))
    for m in modules:
        if m not in index:
            visit(m)
    assert not cycles, f"import cycles: {cycles}"


def _private_uses(module: str, path: Path) -> list:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    aliases = {}  # local name -> the modules it stands for (one name may be bound in several scopes)
    found = []

    def resolve(node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = package.split(".")
        base = base[:len(base) - node.level + 1]
        return ".".join(base + ([node.module] if node.module else []))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases.setdefault(a.asname or a.name.split(".")[0], set()).add(a.name if a.asname else a.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            source = resolve(node)
            for a in node.names:
                if source.split(".")[0] not in PACKAGES:
                    continue
                if a.name.startswith("_") and not a.name.startswith("__") and _owner(source) != _owner(module):
                    found.append(f"{module}: from {source} import {a.name}")
                aliases.setdefault(a.asname or a.name, set()).add(f"{source}.{a.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            base = node.value
            if isinstance(base, ast.Name) and base.id in aliases:
                for target in sorted(aliases[base.id]):
                    if target.split(".")[0] in PACKAGES and _owner(target) != _owner(module):
                        found.append(f"{module}: {base.id}.{node.attr} ({target})")
    return found


def test_packages_use_each_others_public_names_only():
    found = [use for module, path in _modules() if module not in PATCHERS for use in _private_uses(module, path)]
    assert not found, "private names used across packages:\n" + "\n".join(found)


def test_private_name_check_can_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from torch_models.transfer import _secret\nimport keras_models.layout as kl\nkl._hidden\n")
    assert len(_private_uses("experiments.grid.bad", bad)) == 2
    good = tmp_path / "good.py"
    good.write_text("from .store import _local\n")  # inside one package: its own business
    assert _private_uses("experiments.grid.good", good) == []


def test_no_production_file_over_500_lines():
    long = {str(p.relative_to(ROOT)): n for _, p in _modules()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500}
    assert not long, f"files over 500 lines: {long}"


CITATION = re.compile(r"(?:docs/)?[A-Za-z_]+\.md\b")


@pytest.mark.parametrize("folder", PACKAGES + ("tests",))
def test_cited_documents_are_in_the_repository(folder):
    missing = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"\bissue\s+#?\d+", text, re.IGNORECASE), f"{path} mentions an issue number"
        assert not re.search(r"DESIGN\.md section \d", text), f"{path} cites a section by number"
        for cited in set(CITATION.findall(text)):
            if cited in ("report.md",):  # a file every grid run writes, not a document
                continue
            candidates = [ROOT / cited, ROOT / "docs" / cited]
            if not any(c.is_file() for c in candidates):
                missing.append(f"{path.relative_to(ROOT)}: {cited}")
    assert not missing, "documents cited but not in the repository:\n" + "\n".join(missing)
