"""CSV import by upload (with a downloadable report of the rejected lines) and CSV export.

Both go through the library of ``newsletter subscribers import/export``
(:func:`subscribers.importer.import_csv`, :func:`subscribers.csvio.export_csv`,
formula-safe), so the rules and the messages are the same. A reject report is
kept in memory for an hour, under a random name only its uploader's session can
fetch, and never written to the audit log.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from newsletter.core.errors import InputError
from newsletter.web.admin.audit import record
from newsletter.web.admin.context import Visit, admin_of, render, view
from newsletter.web.admin.roles import Role
from subscribers.csvio import escape_cell, export_csv
from subscribers.importer import ImportReport, import_csv
from subscribers.importrows import Problem

__all__ = [
    "RejectReports",
    "export_download",
    "import_form",
    "import_upload",
    "reject_report",
    "routes",
]


@dataclass
class _Report:
    owner: int
    made: float
    data: bytes


class RejectReports:
    """The last few reject reports, each for its uploader, for an hour."""

    def __init__(self, keep: int = 20, ttl: float = 3600.0) -> None:
        self.keep = keep
        self.ttl = ttl
        self._reports: OrderedDict[str, _Report] = OrderedDict()

    def add(self, owner: int, problems: list[Problem]) -> str:
        """Keep a CSV (line, kind, reason) of ``problems``; return its name."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["line", "kind", "reason"])
        for p in problems:
            writer.writerow([p.line, p.kind, escape_cell(p.reason)])
        name = secrets.token_urlsafe(16)
        self._reports[name] = _Report(owner, time.time(), out.getvalue().encode("utf-8"))
        while len(self._reports) > self.keep:
            self._reports.popitem(last=False)
        return name

    def get(self, owner: int, name: str) -> bytes | None:
        """The report ``name`` when ``owner`` made it within the hour."""
        found = self._reports.get(name)
        if found is None or found.owner != owner or time.time() - found.made > self.ttl:
            return None
        return found.data


_reports = RejectReports()


@view(Role.EDITOR)
async def import_form(request: Request, visit: Visit) -> Response:
    """GET /admin/subscribers/import: the upload form."""
    return render(
        request,
        "import.html",
        visit.user,
        title="Import subscribers",
        nav="subscribers",
        result=None,
    )


@view(Role.EDITOR, upload=True)
async def import_upload(request: Request, visit: Visit) -> Response:
    """POST /admin/subscribers/import: import the uploaded CSV; report rejected lines."""
    ctx = admin_of(request)
    if not visit.upload:
        raise InputError("choose a CSV file to upload", field="file")
    data = visit.upload
    source = os.path.basename(visit.upload_name or "upload.csv")[:100]
    confirmed = visit.value("confirmed") == "yes"
    problems: list[Problem] = []
    secret = ctx.settings.secret()
    offered = ctx.settings.newsletter_list

    def run() -> ImportReport:
        report = import_csv(
            ctx.engine,
            io.BytesIO(data),
            secret=secret,
            source=source,
            confirmed=confirmed,
            on_problem=problems.append,
            newsletters=[offered.default.id, *offered.ids],
        )
        with ctx.engine.begin() as conn:
            record(conn, visit.user.email, "subscribers.import", source, report.summary())
        return report

    report = await run_in_threadpool(run)
    name = _reports.add(visit.user.id, problems) if problems else None
    return render(
        request,
        "import.html",
        visit.user,
        title="Import subscribers",
        nav="subscribers",
        result=report,
        report_name=name,
        shown=problems[:20],
    )


@view(Role.EDITOR)
async def reject_report(request: Request, visit: Visit) -> Response:
    """GET /admin/subscribers/import/{name}/rejects.csv: the rejected lines of an import."""
    data = _reports.get(visit.user.id, str(request.path_params["name"]))
    if data is None:
        return Response("This report has expired.\n", status_code=404, media_type="text/plain")
    return Response(
        data,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="rejected-lines.csv"'},
    )


@view(Role.EDITOR)
async def export_download(request: Request, visit: Visit) -> Response:
    """GET /admin/subscribers/export.csv: every subscriber, formula-safe, re-importable."""
    ctx = admin_of(request)

    def run() -> str:
        handle, path = tempfile.mkstemp(prefix="newsletter-export-", suffix=".csv")
        with (
            os.fdopen(handle, "w", encoding="utf-8", newline="") as out,
            ctx.engine.connect() as conn,
        ):
            count = export_csv(conn, out)
            conn.rollback()
        with ctx.engine.begin() as conn:
            record(conn, visit.user.email, "subscribers.export", None, f"{count} rows")
        return path

    path = await run_in_threadpool(run)
    return FileResponse(
        path,
        media_type="text/csv; charset=utf-8",
        filename="subscribers.csv",
        background=BackgroundTask(os.unlink, path),
    )


def routes() -> list[Route]:
    """The import and export routes (relative to ``/admin``)."""
    return [
        Route("/subscribers/import", import_form, methods=["GET"]),
        Route("/subscribers/import", import_upload, methods=["POST"]),
        Route("/subscribers/import/{name}/rejects.csv", reject_report, methods=["GET"]),
        Route("/subscribers/export.csv", export_download, methods=["GET"]),
    ]
