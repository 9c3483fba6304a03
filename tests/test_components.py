"""What every component promises a reader: its public attributes declared on the class, and
outputs registered the same way everywhere."""

from __future__ import annotations

import ast

import pytest

from testsupport.tools import ROOT

COMPONENTS = sorted((ROOT / "components").glob("*.py"))


def _component_classes(path):
    tree = ast.parse(path.read_text())
    return [node for node in tree.body if isinstance(node, ast.ClassDef)
            and any("ComponentResource" in ast.unparse(base) for base in node.bases)]


def _public_assignments(cls: ast.ClassDef) -> set[str]:
    out = set()
    for node in ast.walk(cls):
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        for target in targets:
            if (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                    and target.value.id == "self" and not target.attr.startswith("_")):
                out.add(target.attr)
    return out


def _declared(cls: ast.ClassDef) -> set[str]:
    names = {n.target.id for n in cls.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    return names | {t.id for n in cls.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}


@pytest.mark.parametrize("path", COMPONENTS, ids=lambda p: p.name)
def test_every_public_attribute_is_declared_on_the_class(path):
    for cls in _component_classes(path):
        assert _public_assignments(cls) <= _declared(cls), (cls.name, sorted(_public_assignments(cls) - _declared(cls)))


@pytest.mark.parametrize("path", COMPONENTS, ids=lambda p: p.name)
def test_outputs_are_registered_the_same_way_everywhere(path):
    """Dependents read the declared attributes; every component registers `{}` last."""
    for cls in _component_classes(path):
        calls = [node for node in ast.walk(cls) if isinstance(node, ast.Call)
                 and ast.unparse(node.func) == "self.register_outputs"]
        assert [ast.unparse(c.args[0]) for c in calls] == ["{}"], cls.name


def test_the_checks_see_an_undeclared_attribute(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("import pulumi\nclass Bad(pulumi.ComponentResource):\n    x: int\n"
                    "    def __init__(self):\n        self.x = 1\n        self.hidden = 2\n"
                    "        self.register_outputs({'x': 1})\n")
    (cls,) = _component_classes(path)
    assert _public_assignments(cls) - _declared(cls) == {"hidden"}
