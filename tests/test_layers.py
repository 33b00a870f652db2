"""The package's layers (docs/architecture.md): every import, function-level ones included,
goes to a lower layer or stays inside its own part; two parts of one layer do not import
each other, so each side of the work can change alone."""
from __future__ import annotations

import ast
from pathlib import Path

import vsexcolor

PACKAGE = Path(vsexcolor.__file__).parent

#: Each part of the package (a subpackage, or a module at the top) and its layer, highest first.
LAYERS = {
    "__main__": 8,
    "commands": 7,
    "review": 6,
    "render": 5,
    "eval": 4, "train": 4,
    "filter": 3,
    "backends": 2, "weights": 2,
    "models": 1,
    "color": 0, "devices": 0, "memory": 0, "folders": 0,
}


def part_of(module: str) -> str:
    """``vsexcolor.filter.scenes`` -> ``filter``."""
    return module.split(".")[1]


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of each import of the package (at ``root``) in a file, at any depth."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            # ``from . import x`` imports the module x where x is one.
            targets = [f"{target}.{a.name}" for a in node.names
                       if (root.parent / f"{target}.{a.name}".replace(".", "/")).with_suffix(".py").exists()
                       or (root.parent / f"{target}.{a.name}".replace(".", "/")).is_dir()] or [target]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        found += [(node.lineno, t) for t in targets if t.startswith("vsexcolor.")]
    return found


def test_every_part_of_the_package_has_a_layer():
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()}
    assert parts == set(LAYERS)


def violations(root: Path) -> list[str]:
    """Each import in the package at ``root`` that goes up a layer or across to another part."""
    wrong = []
    for path in sorted(root.rglob("*.py")):
        if path == root / "__init__.py":
            continue  # the public entry points, made lazily from the parts
        source = part_of(module_name(path, root))
        for line, target in imports(path, root):
            to = part_of(target)
            if to != source and LAYERS[to] >= LAYERS[source]:
                wrong.append(f"{path.relative_to(root.parent)}:{line} imports {target} "
                             f"({to}, layer {LAYERS[to]}) from {source} (layer {LAYERS[source]})")
    return wrong


def test_no_import_goes_up_a_layer_or_across_to_another_part_of_the_same_layer():
    assert violations(PACKAGE) == []


def test_an_import_up_or_across_is_found(tmp_path):
    root = tmp_path / "vsexcolor"
    (root / "filter").mkdir(parents=True)
    (root / "filter" / "oops.py").write_text("def f():\n    from ..render.video import probe\n"
                                             "from ..color import rgb_to_lab\n")
    (root / "weights").mkdir()
    (root / "weights" / "devc.py").write_text("from vsexcolor.backends import base\n")
    assert violations(root) == [
        "vsexcolor/filter/oops.py:2 imports vsexcolor.render.video (render, layer 5) from filter (layer 3)",
        "vsexcolor/weights/devc.py:1 imports vsexcolor.backends (backends, layer 2) from weights (layer 2)"]


def test_every_package_says_its_job():
    for init in PACKAGE.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc, f"{init.relative_to(PACKAGE.parent)} has no docstring"


def test_no_module_is_over_500_lines():
    long = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500}
    assert long == {}
