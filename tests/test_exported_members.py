"""Each public module says what it exports: everything public it defines, and nothing missing."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import types

import pytest

import newsletter
import subscribers


def _modules() -> list[str]:
    names = []
    for package in (newsletter, subscribers):
        names.append(package.__name__)
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not info.name.rsplit(".", 1)[-1].startswith("_"):
                names.append(info.name)
    return sorted(names)


def _defined_here(module: types.ModuleType) -> set[str]:
    """Public functions and classes whose home is this module (not imported into it)."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and value.__module__ == module.__name__
    }


@pytest.mark.parametrize("name", _modules())
def test_module_declares_all(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    for member in exported:
        assert hasattr(module, member), f"{name}.__all__ names {member!r}, which is missing"
    left_out = _defined_here(module) - set(exported)
    assert not left_out, f"{name} defines public {sorted(left_out)} but leaves them out of __all__"


def test_the_check_sees_a_name_left_out() -> None:
    module = types.ModuleType("example")
    exec("def shown(): pass\ndef hidden(): pass\n__all__ = ['shown']", module.__dict__)
    assert _defined_here(module) - set(module.__all__) == {"hidden"}
