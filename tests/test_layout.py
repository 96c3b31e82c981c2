"""The package's layout, read from its source with `ast` (nothing is imported).

rerankbench/ is made of subpackages in the order data flows through them (LAYERS). A module
may import from its own subpackage and from those before it, never from a later one; the
subpackages never import the root modules (the Python API, the command line) nor the plug-in
folders methods/ and datasets/, which the registry finds by name; no module imports itself back
through others; and nothing but __init__, __main__ and cli sits at the package root. Every
import counts, also one inside a function.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "rerankbench"
LAYERS = ["runtime", "features", "twins", "engine", "evaluation", "acp", "harness", "reports", "calibration",
          "benchmarks"]
ROOT_MODULES = {"__init__", "__main__", "cli"}
PLUGINS = {"methods": ROOT / "methods", "datasets": ROOT / "datasets"}  # installed as rerankbench.methods, .datasets


def modules(root: Path = ROOT, package: str = PACKAGE, plugins: dict[str, Path] = PLUGINS) -> dict[str, Path]:
    """{dotted module name: file} for the package and its plug-in folders."""
    found = {}
    folders = [(root / package, package)] + [(folder, f"{package}.{name}") for name, folder in plugins.items()]
    for folder, prefix in folders:
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            name = ".".join((prefix, *parts))
            found[name.removesuffix(".__init__")] = path
    return found


def statements(name: str, path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every import in the module `name`: `import a.b` gives ("a.b", []),
    `from .c import d` ("<package>.c", ["d"]), relative imports resolved."""
    package_parts = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package_parts[:len(package_parts) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.append((base, [alias.name for alias in node.names]))
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of `known` that module `name` imports."""
    found = set()
    for base, names in statements(name, path):
        # `from a import b` imports the module a.b when there is one, else a name of a
        targets = [f"{base}.{n}" if f"{base}.{n}" in known else base for n in names] or [base]
        for target in targets:
            while target and target not in known:  # import a.b.c of a package: the deepest module known
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def missing(known: dict[str, Path], package: str = PACKAGE) -> list[str]:
    """Imports of the package's own modules that name no module of it (a path left behind by a move)."""
    return [f"{name} imports {base}, which is no module of {package}" for name, path in sorted(known.items())
            for base, _ in statements(name, path) if base.split(".")[0] == package and base not in known]


def graph(root: Path = ROOT, package: str = PACKAGE, plugins: dict[str, Path] = PLUGINS) -> dict[str, set[str]]:
    known = modules(root, package, plugins)
    return {name: imports(name, path, known) for name, path in known.items()}


def place(name: str, package: str = PACKAGE, plugins=PLUGINS) -> str:
    """"root" (the package's own modules at its top), "plugin", or the subpackage's name."""
    parts = name.split(".")
    if len(parts) == 1 or (len(parts) == 2 and parts[1] in ROOT_MODULES):
        return "root"
    return "plugin" if parts[1] in plugins else parts[1]


def problems(edges: dict[str, set[str]], package: str = PACKAGE, layers: list[str] = LAYERS,
             plugins=PLUGINS) -> list[str]:
    """Every breach of the rules in the module docstring, one line each."""
    found = []
    for name in sorted(edges):
        parts = name.split(".")
        if len(parts) == 2 and parts[1] not in ROOT_MODULES and parts[1] not in layers and parts[1] not in plugins:
            found.append(f"{name}: a module at the package root (only {', '.join(sorted(ROOT_MODULES))} belong there)")
        if len(parts) > 2 and parts[1] not in layers and parts[1] not in plugins:
            found.append(f"{name}: in a subpackage that is not in the layers ({', '.join(layers)})")
    for name, targets in sorted(edges.items()):
        own = place(name, package, plugins)
        for target in sorted(targets):
            theirs = place(target, package, plugins)
            if own == "root" or own == theirs:
                continue
            if theirs == "root":
                found.append(f"{name} imports {target}: the root modules sit above every subpackage")
            elif theirs == "plugin" and own != "plugin":
                found.append(f"{name} imports {target}: the plug-ins are found by name through the registry")
            elif own in layers and theirs in layers and layers.index(theirs) > layers.index(own):
                found.append(f"{name} imports {target}: {theirs} comes after {own}")
    found += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(edges)]
    return found


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules (Tarjan's algorithm)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return [_cycle_in(group, edges) for group in groups]


def _cycle_in(group: list[str], edges: dict[str, set[str]]) -> list[str]:
    """A closed path through the group, from its first member back to it."""
    start, members = group[0], set(group)
    path, seen = [start], {start}
    while True:
        step = sorted(t for t in edges[path[-1]] if t in members)
        back = [t for t in step if t == start]
        if back and len(path) > 1:
            return path + [start]
        nxt = next((t for t in step if t not in seen), None) or step[0]
        if nxt in seen:
            return path[path.index(nxt):] + [nxt]
        path.append(nxt)
        seen.add(nxt)


# ------------------------------------------------------------------------------ the package
def test_the_package_keeps_its_layout():
    found = problems(graph()) + missing(modules())
    assert not found, "\n".join(found)


def test_every_layer_is_a_subpackage_of_modules():
    for layer in LAYERS:
        folder = ROOT / PACKAGE / layer
        assert (folder / "__init__.py").is_file(), f"{folder} is not a package"
        assert any(p.name != "__init__.py" for p in folder.glob("*.py")), f"{folder} holds no module"


def test_the_reader_sees_every_kind_of_import():
    edges = graph()
    assert "rerankbench.engine.neighbours" in edges["rerankbench.engine.distances"]  # from .neighbours import ...
    assert "rerankbench.features.featureset" in edges["rerankbench.engine.shared"]  # from ..features.featureset import
    assert "rerankbench.engine.registry" in edges["rerankbench.methods.alpha_qe_k_reciprocal"] or \
        "rerankbench.engine.reranker" in edges["rerankbench.methods.alpha_qe_k_reciprocal"]  # absolute
    assert "rerankbench.methods.k_reciprocal" in edges["rerankbench.methods.alpha_qe_k_reciprocal"]
    assert "rerankbench.harness.ray_executor" in edges["rerankbench.harness.runner"]  # inside a function


# ------------------------------------------------------------------------------ the checker
def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


LAYERED = {"pkg/__init__.py": "", "pkg/cli.py": "from .b import y\n",
           "pkg/a/__init__.py": "", "pkg/a/x.py": "X = 1\n",
           "pkg/b/__init__.py": "", "pkg/b/y.py": "from ..a.x import X\nfrom . import z\n", "pkg/b/z.py": "Z = 2\n",
           "plug/__init__.py": "", "plug/p.py": "from pkg.b.y import X\n"}


def _problems(tmp_path, changes: dict[str, str]) -> list[str]:
    _write(tmp_path, {**LAYERED, **changes})
    plugins = {"plug": tmp_path / "plug"}
    return problems(graph(tmp_path, "pkg", plugins), "pkg", ["a", "b"], plugins)


def test_the_checker_passes_a_well_layered_package(tmp_path):
    assert _problems(tmp_path, {}) == []


@pytest.mark.parametrize("changes, expected", [
    ({"pkg/a/x.py": "def f():\n    from ..b.z import Z\n"}, "pkg.a.x imports pkg.b.z: b comes after a"),
    ({"pkg/a/x.py": "from pkg.b import z\n"}, "pkg.a.x imports pkg.b.z: b comes after a"),
    ({"pkg/helpers.py": "H = 0\n"}, "pkg.helpers: a module at the package root"),
    ({"pkg/c/__init__.py": "", "pkg/c/w.py": ""}, "pkg.c.w: in a subpackage that is not in the layers"),
    ({"pkg/a/x.py": "from .. import cli\n"}, "pkg.a.x imports pkg.cli: the root modules sit above"),
    ({"pkg/b/z.py": "import pkg.plug.p\n"}, "pkg.b.z imports pkg.plug.p: the plug-ins are found by name"),
    ({"pkg/b/z.py": "from .y import X\n"}, "import cycle: pkg.b.y -> pkg.b.z -> pkg.b.y"),
])
def test_the_checker_finds_each_breach(tmp_path, changes, expected):
    found = _problems(tmp_path, changes)
    assert any(line.startswith(expected) for line in found), found


def test_the_checker_finds_an_import_of_a_module_that_is_not_there(tmp_path):
    _write(tmp_path, {**LAYERED, "pkg/b/y.py": "from .gone import X\n"})
    assert missing(modules(tmp_path, "pkg", {}), "pkg") == ["pkg.b.y imports pkg.b.gone, which is no module of pkg"]


def test_cycles_are_found_whole():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e2"}, "e2": {"e"}}
    assert cycles(edges) == [["a", "b", "c", "a"], ["e", "e2", "e"]]
