"""The import graph keeps the floors of docs/architecture.md: no import from a lower floor to a higher one, no
import circle between modules (top-level and function-local imports both count), and project imports at module top
except in the entry points, whose lazy ones (kept for a fast ``--help``) carry a ``# lazy`` comment. The code is read
with ``ast``, so nothing is imported to check it.
"""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("utils", "models", "datasets", "engine", "data_creation", "benchmarks")

# Higher floors may import lower ones. models and datasets share a floor and never import each other; entry points
# (the top-level scripts) and benchmarks may import anything below them but nothing imports them.
FLOOR = {"utils": 0, "models": 1, "datasets": 1, "engine": 2, "data_creation": 3, "benchmarks": 4, "entry": 4}


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules(root: Path) -> dict:
    """Module name -> file, for every ``.py`` file of the packages and every top-level script."""
    files = [p for package in PACKAGES for p in (root / package).rglob("*.py")] + sorted(root.glob("*.py"))
    return {_module_name(p, root): p for p in files}


def _resolve(name: str, modules: dict):
    """The project module an imported dotted name lands in (``models.mano.layer.ManoLayer`` -> ``models.mano.layer``);
    None for third-party names."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_edges(modules: dict) -> dict:
    """Module -> {(imported project module, line)} over every import statement of the file, at any depth."""
    edges = {}
    for module, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path}:{node.lineno}: relative import; the project uses absolute imports"
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            targets = {_resolve(name, modules) for name in names} - {None, module}
            found |= {(target, node.lineno) for target in targets}
        edges[module] = found
    return edges


def floor_of(module: str) -> str:
    package = module.split(".")[0]
    return package if package in FLOOR else "entry"


def upward_imports(edges: dict, modules: dict) -> list:
    """``file:line: a -> b`` for each import that does not go to a strictly lower floor or within its own package."""
    bad = []
    for module, targets in edges.items():
        for target, line in sorted(targets):
            same_package = floor_of(module) != "entry" and module.split(".")[0] == target.split(".")[0]
            if not same_package and FLOOR[floor_of(target)] >= FLOOR[floor_of(module)]:
                bad.append(f"{modules[module]}:{line}: {module} -> {target}")
    return bad


def import_circles(edges: dict) -> list:
    """The strongly connected groups of more than one module (Tarjan), each as a sorted list of names."""
    graph = {module: {target for target, _ in targets} for module, targets in edges.items()}
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(module):
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in graph[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while not group or group[-1] != module:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                circles.append(sorted(group))

    for module in graph:
        if module not in index:
            visit(module)
    return circles


def test_the_walk_sees_every_package_and_entry_point():
    modules = project_modules(REPO)
    assert {"train", "eval", "eval_h_ho", "eval_occ_intervals", "demo"} <= set(modules)
    assert {floor_of(m) for m in modules} == set(FLOOR)
    edges = import_edges(modules)
    assert ("engine.eval_command", "models") in {(m, t) for m, ts in edges.items() for t, _ in ts}


def test_no_import_goes_up_a_floor():
    modules = project_modules(REPO)
    assert upward_imports(import_edges(modules), modules) == []


def test_no_import_circle():
    assert import_circles(import_edges(project_modules(REPO))) == []


def _block_head(lines: list, index: int) -> list:
    """The import line at ``index`` and the lines above it up to and including the first that is neither an import
    nor blank (the comment heading the import block)."""
    head = [lines[index]]
    while index > 0 and (not lines[index].strip() or lines[index].strip().startswith(("import ", "from "))):
        index -= 1
        head.append(lines[index])
    return head


def function_local_project_imports(modules: dict) -> list:
    """``(module, line, source line, its import block's heading lines)`` for each import of a project module inside a
    function."""
    found = []
    for module, path in modules.items():
        source = path.read_text()
        lines = source.splitlines()
        tree = ast.parse(source)
        top = set(tree.body)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and node not in top:
                name = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                if name.split(".")[0] in PACKAGES:
                    found.append((module, node.lineno, lines[node.lineno - 1], _block_head(lines, node.lineno - 1)))
    return found


def test_project_imports_sit_at_module_top_except_commented_lazy_ones_in_entry_points():
    modules = project_modules(REPO)
    local = function_local_project_imports(modules)
    assert [f"{modules[m]}:{line}" for m, line, _, _ in local if floor_of(m) != "entry"] == []
    uncommented = [f"{modules[m]}:{line}" for m, line, text, above in local
                   if not any("# lazy" in t for t in [text, *above])]
    assert uncommented == []


def test_the_checks_catch_an_upward_import_a_sideways_import_and_a_circle(tmp_path):
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "utils" / "geometry.py").write_text("def f():\n    from models.layer import Layer\n")
    (tmp_path / "models" / "layer.py").write_text("import torch\nfrom utils.geometry import f\nLayer = f\n")
    (tmp_path / "datasets" / "reader.py").write_text("import models.layer\n")
    (tmp_path / "train.py").write_text("from engine import fit\n")
    modules = project_modules(tmp_path)
    edges = import_edges(modules)
    assert sorted(line.split(": ")[1] for line in upward_imports(edges, modules)) == [
        "datasets.reader -> models.layer", "utils.geometry -> models.layer"]
    assert import_circles(edges) == [["models.layer", "utils.geometry"]]
    assert [(m, line) for m, line, _, _ in function_local_project_imports(modules)] == [("utils.geometry", 2)]
