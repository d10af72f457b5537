"""House rule: modules talk through public interfaces. No module imports another module's
private name (`from x import _y`) or reaches into an object's private attribute other than its
own (`other._y`; `self._y` and `cls._y` are fine), and the engine reads no free-form `meta`."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dcsim", "topologies", "workloads", "calibrate")
ENGINE = ("dcsim/engine.py", "dcsim/pricing.py", "dcsim/attribution.py")


# NamedTuple's public API is spelled with a leading underscore (to avoid field-name clashes).
NAMEDTUPLE_API = {"_replace", "_asdict", "_fields", "_make", "_field_defaults"}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__") and name not in NAMEDTUPLE_API


def _violations(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [f"{path.relative_to(ROOT)}:{node.lineno}: from {node.module} import {a.name}"
                    for a in node.names if _private(a.name)]
        elif (isinstance(node, ast.Attribute) and _private(node.attr)
              and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
            out.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    return out


def test_no_module_uses_another_modules_private_names() -> None:
    found = [v for pkg in PACKAGES for f in sorted((ROOT / pkg).rglob("*.py"))
             for v in _violations(f)]
    assert not found, "\n".join(found)


def test_the_engine_reads_typed_op_fields_not_meta() -> None:
    for rel in ENGINE:
        tree = ast.parse((ROOT / rel).read_text())
        metas = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                 and n.attr == "meta"]
        assert not metas, f"{rel} reads .meta at lines {metas}"
