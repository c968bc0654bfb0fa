"""Figures of evalkit's import graph, for the seams issue's before/after (issue 17): run on a checkout.

    python scripts/import_figures.py [--json]

- longest import chain between evalkit modules (every import statement, function-level ones included, as grimp
  sees them);
- import cycles between evalkit's top-level packages, and between modules;
- imports into a benchmark family's internals from outside evalkit/benchmarks/ (anything under
  evalkit.benchmarks.<family> other than the family's declared `names` module);
- adapter-name comparisons outside evalkit/benchmarks/ (`adapter == "..."`);
- function-level imports that repeat a module-level import of the same module (ast);
- mypy --strict errors (the `mypy` next to this interpreter).

grimp (import-linter's graph library) builds the graph; the rest is the standard library.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "evalkit"
FAMILY_PUBLIC = {"names", "external"}
"""Modules of a family the rest of the tree may import (.importlinter's protected contract): pure names of its results,
and lm-eval's reader of runs made elsewhere."""


def _family_of(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) >= 3 and parts[:2] == [PACKAGE, "benchmarks"] and parts[2] != "base":
        return parts[2]
    return None


def longest_chain(graph: grimp.ImportGraph) -> list[str]:
    """The longest simple path in the module graph (depth-first with memo over the condensation: cycles are
    reported apart, so a cycle's modules count once)."""
    modules = sorted(graph.modules)
    memo: dict[str, list[str]] = {}
    on_stack: set[str] = set()

    def walk(m: str) -> list[str]:
        if m in memo:
            return memo[m]
        on_stack.add(m)
        best: list[str] = []
        for nxt in sorted(graph.find_modules_directly_imported_by(m)):
            if nxt in on_stack:
                continue
            path = walk(nxt)
            if len(path) > len(best):
                best = path
        on_stack.discard(m)
        memo[m] = [m, *best]
        return memo[m]

    return max((walk(m) for m in modules), key=len)


def module_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10_000)

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph.modules):
        if v not in index:
            strong(v)
    return out


def family_internal_imports(graph: grimp.ImportGraph) -> list[str]:
    found = []
    for importer in sorted(graph.modules):
        if importer.startswith(f"{PACKAGE}.benchmarks"):
            continue
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            family = _family_of(imported)
            if family is None:
                continue
            rest = imported.split(".")[3:]
            if rest and rest[0] in FAMILY_PUBLIC:
                continue
            found.append(f"{importer} -> {imported}")
    return found


def adapter_comparisons() -> list[str]:
    pattern = re.compile(r"adapter\s*(==|!=|in\s*\()\s*")
    hits = []
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[1] == "benchmarks":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                hits.append(f"{rel}:{n}")
    return hits


def repeated_function_imports() -> list[str]:
    """`import x` / `from x import y` inside a function when the module imports the same module at top level."""
    hits = []
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        tree = ast.parse(path.read_text())
        top = {_imported(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))}
        top = {m for ms in top for m in ms}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)) and set(_imported(inner)) & top:
                    hits.append(f"{path.relative_to(ROOT)}:{inner.lineno}")
    return sorted(set(hits))


def _imported(node: ast.Import | ast.ImportFrom) -> tuple[str, ...]:
    if isinstance(node, ast.Import):
        return tuple(a.name for a in node.names)
    return (node.module or "",)


def mypy_strict_errors() -> int | None:
    mypy = Path(sys.executable).with_name("mypy")
    if not mypy.exists():
        return None
    proc = subprocess.run([str(mypy), "--strict"], cwd=ROOT, capture_output=True, text=True)
    found = re.search(r"Found (\d+) errors?", proc.stdout)
    return int(found.group(1)) if found else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON (with the lists)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    graph = grimp.build_graph(PACKAGE, include_external_packages=False)
    chain = longest_chain(graph)
    cycles = module_cycles(graph)
    internals = family_internal_imports(graph)
    comparisons = adapter_comparisons()
    repeated = repeated_function_imports()
    strict = mypy_strict_errors()
    figures = {
        "modules": len(graph.modules),
        "longest_chain": len(chain),
        "chain": chain,
        "module_cycles": cycles,
        "family_internal_imports": internals,
        "adapter_comparisons_outside_benchmarks": comparisons,
        "repeated_function_level_imports": repeated,
        "mypy_strict_errors": strict,
    }
    if args.json:
        print(json.dumps(figures, indent=1))
        return
    print(f"modules: {len(graph.modules)}")
    print(f"longest import chain: {len(chain)} modules ({' -> '.join(chain)})")
    print(f"module cycles: {len(cycles)} {cycles if cycles else ''}")
    print(f"imports into family internals from outside benchmarks/: {len(internals)}")
    for line in internals:
        print(f"  {line}")
    print(f"adapter-name comparisons outside benchmarks/: {len(comparisons)} {comparisons}")
    print(f"function-level imports repeating a top-level one: {len(repeated)}")
    print(f"mypy --strict errors: {strict}")


if __name__ == "__main__":
    main()
