"""The console's roles, cheap to import (the CLI's ``--role`` option)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Role"]


class Role(StrEnum):
    """What a console account may do: viewers see, editors build and test, admins send to all."""

    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """0 for a viewer, 1 for an editor, 2 for an admin."""
        return list(Role).index(self)

    def at_least(self, needed: Role) -> bool:
        """True when this role may do what ``needed`` may."""
        return self.rank >= needed.rank
