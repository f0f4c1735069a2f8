"""Each public module says what it exports, and exports only what it defines or re-exports."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import newsletter
import subscribers


def _modules() -> list[str]:
    names = []
    for package in (newsletter, subscribers):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not info.name.rsplit(".", 1)[-1].startswith("_"):
                names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_module_declares_all(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    for member in exported:
        assert hasattr(module, member), f"{name}.__all__ names {member!r}, which is missing"
