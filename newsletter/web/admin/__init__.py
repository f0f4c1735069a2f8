"""The editor's console at ``/admin``: accounts, sessions, pages and the audit log.

Nothing heavy is imported here: the CLI's ``users`` and ``audit`` commands load
:mod:`~newsletter.web.admin.roles` without the web app. The routes are in
:mod:`newsletter.web.admin.console` (``console_routes``).
"""

__all__: list[str] = []
