"""Read articles from JSON, YAML, a folder of them, or an RSS/Atom feed (a path or a URL).

Everything is validated before anything is returned: the first problem raises
an :class:`~newsletter.core.errors.ArticleError` that names the file, the line (for
JSON and YAML, found through the node marks of ``yaml.compose``), the article
(its position and id) and the field.

A server fetching a URL an editor typed (:func:`load_url` with ``public_only``)
connects only to public addresses: every connection, redirects included, is
made to an address checked after resolving, so neither a redirect nor a DNS
answer that changes between the check and the connection reaches a private,
loopback or link-local host (169.254.169.254 and friends).
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpcore
import httpx
import yaml
from pydantic import ValidationError

from newsletter.content.feeds import parse_feed
from newsletter.content.models import Article
from newsletter.core.errors import ArticleError
from newsletter.core.text import one_line

__all__ = [
    "FETCH_TIMEOUT",
    "MAX_FETCH_BYTES",
    "SUFFIXES",
    "display_source",
    "fetch",
    "load_articles",
    "load_bytes",
    "load_many",
    "load_url",
    "parse_articles",
]

FETCH_TIMEOUT = 15.0
MAX_FETCH_BYTES = 20 * 1024 * 1024
_JSON = {".json"}
_YAML = {".yaml", ".yml"}
_FEED = {".xml", ".rss", ".atom"}
SUFFIXES = frozenset(_JSON | _YAML | _FEED)

# pydantic's error types that read better in a newsroom's words
_REASONS = {
    "extra_forbidden": "unknown field",
    "missing": "required field is missing",
    "timezone_aware": "naive datetime: give a time zone, e.g. 2026-11-26T07:00:00Z or +00:00",
}


def _display(source: str) -> str:
    """A URL without its user name and password, so that an error never echoes a secret."""
    parts = urlsplit(source)
    if parts.scheme in {"http", "https"} and (parts.username or parts.password):
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit(parts._replace(netloc=netloc))
    return source


def display_source(source: str) -> str:
    """How errors name ``source``: a URL loses its user name and password."""
    return _display(source)


def _field_name(loc: Sequence[int | str]) -> str:
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else part)
    return name


def _reason(error: Any) -> str:
    kind = error["type"]
    if kind in _REASONS:
        return str(_REASONS[kind])
    if kind == "string_too_short" and error.get("ctx", {}).get("min_length") == 1:
        return "must not be empty"
    message = one_line(str(error["msg"])).removeprefix("Value error, ")
    if kind.endswith("_type"):
        message += f", got {type(error['input']).__name__}"
    return message


def _line_of(node: yaml.Node | None, path: Sequence[int | str]) -> int | None:
    """The 1-based line of the deepest node along ``path`` that exists."""
    if node is None:
        return None
    for depth, part in enumerate(path, 1):
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == part:
                    # the field itself is best shown at its key, unless its value
                    # (a block list, say) is where the problem sits further down
                    last = depth == len(path)
                    child = key if last and value.start_mark.line != key.start_mark.line else value
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            child = node.value[part]
        if child is None:
            break
        node = child
    return node.start_mark.line + 1


def _compose(text: str) -> yaml.Node | None:
    # Only used to find lines; a document YAML cannot compose just gets no line.
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None


def _validate(items: list[Any], source: str, root: yaml.Node | None, nested: bool) -> list[Article]:
    articles: list[Article] = []
    for index, item in enumerate(items):
        prefix: list[int | str] = [index] if nested else []
        label = f"article {index + 1}"
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            label += f" (id {item['id']!r})"
        if not isinstance(item, dict):
            line = _line_of(root, prefix)
            raise ArticleError(
                f"{label}: expected an object with article fields, got {type(item).__name__}",
                source=source,
                line=line,
            )
        try:
            articles.append(Article.model_validate(item))
        except ValidationError as exc:
            errors = exc.errors()
            first = errors[0]
            more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
            raise ArticleError(
                f"{label}: {_reason(first)}{more}",
                source=source,
                line=_line_of(root, [*prefix, *first["loc"]]),
                field=_field_name(first["loc"]) or None,
            ) from None
    return articles


def _documents(data: Any, source: str) -> tuple[list[Any], bool]:
    if isinstance(data, list):
        return data, True
    if isinstance(data, dict):
        return [data], False
    raise ArticleError(
        f"expected one article (an object) or a list of them, got {type(data).__name__}",
        source=source,
        line=1,
    )


def _parse_json(text: str, source: str) -> list[Article]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArticleError(f"invalid JSON: {exc.msg}", source=source, line=exc.lineno) from None
    items, nested = _documents(data, source)
    try:
        return _validate(items, source, None, nested)
    except ArticleError:
        # Only now pay for finding the line: re-validate with the composed node tree.
        return _validate(items, source, _compose(text), nested)


def _parse_yaml(text: str, source: str) -> list[Article]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = one_line(str(exc.problem or exc))
        raise ArticleError(f"invalid YAML: {problem}", source=source, line=line) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        reason = f"invalid YAML: {one_line(str(exc.reason))}"
        raise ArticleError(reason, source=source, line=line) from None
    except yaml.YAMLError as exc:
        raise ArticleError(f"invalid YAML: {one_line(str(exc))}", source=source) from None
    items, nested = _documents(data, source)
    return _validate(items, source, root, nested)


def parse_articles(content: bytes, source: str, kind: str) -> list[Article]:
    """Validate ``content`` as ``kind`` (``json``, ``yaml`` or ``feed``) from ``source``."""
    if kind == "feed":
        return parse_feed(content, source)
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ArticleError(f"not UTF-8 text (byte {exc.start})", source=source) from None
    if kind == "json":
        return _parse_json(text, source)
    if kind == "yaml":
        return _parse_yaml(text, source)
    raise ValueError(f"unknown article format {kind!r}")


def _sniff(content: bytes, suffix: str, content_type: str = "") -> str:
    if suffix in _JSON or "json" in content_type:
        return "json"
    if suffix in _YAML or "yaml" in content_type:
        return "yaml"
    if suffix in _FEED or "xml" in content_type:
        return "feed"
    head = content.lstrip()[:1]
    if head in {b"{", b"["}:
        return "json"
    if head == b"<":
        return "feed"
    return "yaml"


class _NotPublic(Exception):
    """A connection was about to go to an address that is not public."""


def _public_address(host: str, port: int) -> str:
    """The first address ``host`` resolves to, if every one of them is public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise httpcore.ConnectError(f"cannot resolve {host}") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses or not all(_is_public(a) for a in addresses):
        raise _NotPublic
    return str(addresses[0])


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = getattr(address, "ipv4_mapped", None) or address
    return bool(mapped.is_global and not mapped.is_multicast)


class _PublicOnlyBackend(httpcore.NetworkBackend):
    """Connects only to public addresses, to the very address it checked."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        address = _public_address(host, port)
        return self._inner.connect_tcp(address, port, timeout, local_address, socket_options)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise _NotPublic

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _PublicOnlyTransport(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        # httpx builds its pool without a way to pass a network backend: swap the pool
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(), network_backend=_PublicOnlyBackend()
        )


def fetch(
    url: str, *, timeout: float = FETCH_TIMEOUT, public_only: bool = False
) -> tuple[bytes, str]:
    """GET ``url`` (following redirects) and return its body and content type.

    Network failures, HTTP errors and oversized bodies are :class:`ArticleError`.
    With ``public_only``, only http(s) URLs are fetched, no proxy from the
    environment is used, and a connection (after any redirect) to an address
    that is not public (private, loopback, link-local, reserved) is refused.
    """
    shown = _display(url)
    if urlsplit(url).scheme not in {"http", "https"}:
        raise ArticleError("only http and https addresses can be fetched", source=shown)
    transport = _PublicOnlyTransport() if public_only else None
    try:
        with (
            httpx.Client(
                timeout=timeout,
                follow_redirects=True,
                transport=transport,
                trust_env=not public_only,
            ) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code >= 400:
                raise ArticleError(
                    f"fetching failed: HTTP {response.status_code} {response.reason_phrase}",
                    source=shown,
                )
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_FETCH_BYTES:
                    raise ArticleError(
                        f"fetching stopped: larger than {MAX_FETCH_BYTES} bytes", source=shown
                    )
            return bytes(body), response.headers.get("content-type", "")
    except _NotPublic:
        raise ArticleError(
            "refused: the address (or a redirect) leads to a private, loopback or link-local host",
            source=shown,
        ) from None
    except httpx.HTTPError as exc:
        raise ArticleError(f"cannot fetch ({type(exc).__name__})", source=shown) from None


def _files(folder: Path) -> list[Path]:
    found = [
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]
    return sorted(found)


def _load_file(path: Path) -> list[Article]:
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ArticleError(f"cannot read ({exc.strerror})", source=str(path)) from None
    return parse_articles(content, str(path), _sniff(content, path.suffix.lower()))


def _load_one(source: str | Path) -> list[tuple[Article, str]]:
    text = str(source)
    if isinstance(source, str) and urlsplit(text).scheme in {"http", "https"}:
        content, content_type = fetch(text)
        suffix = Path(urlsplit(text).path).suffix.lower()
        kind = _sniff(content, suffix, content_type)
        return [(a, _display(text)) for a in parse_articles(content, _display(text), kind)]
    path = Path(source)
    if path.is_dir():
        files = _files(path)
        if not files:
            raise ArticleError(
                f"no article files ({', '.join(sorted(SUFFIXES))}) in this folder", source=text
            )
        return [(a, str(f)) for f in files for a in _load_file(f)]
    if not path.exists():
        raise ArticleError("no such file or folder", source=text)
    return [(a, text) for a in _load_file(path)]


def _unique(found: Iterable[tuple[Article, str]]) -> list[Article]:
    seen: dict[str, tuple[Article, str]] = {}
    for article, where in found:
        previous = seen.get(article.id)
        if previous is not None and previous[0] != article:
            raise ArticleError(
                f"article id {article.id!r} is already used by a different article"
                f" in {previous[1]}",
                source=where,
                field="id",
            )
        seen.setdefault(article.id, (article, where))
    return [article for article, _ in seen.values()]


def load_many(sources: Sequence[str | Path]) -> list[Article]:
    """Every article of every source, validated, in order; nothing is returned on any error.

    The same article twice is kept once; two different articles claiming one id
    raise :class:`ArticleError` naming both files.
    """
    return _unique(pair for source in sources for pair in _load_one(source))


def load_url(url: str, *, public_only: bool) -> list[Article]:
    """Every article of the JSON, YAML or feed at ``url``, validated, as :func:`load_many` does.

    ``public_only`` is for a server fetching a URL someone typed: see :func:`fetch`.
    """
    if urlsplit(url).scheme not in {"http", "https"}:
        raise ArticleError("only http and https addresses can be fetched", source=_display(url))
    content, content_type = fetch(url, public_only=public_only)
    suffix = Path(urlsplit(url).path).suffix.lower()
    shown = _display(url)
    found = parse_articles(content, shown, _sniff(content, suffix, content_type))
    return _unique((a, shown) for a in found)


def load_bytes(content: bytes, name: str) -> list[Article]:
    """Every article in an uploaded file's ``content``, read by ``name``'s suffix (else sniffed).

    Nothing touches the disk; errors name ``name`` as the file, with line and field.
    """
    found = parse_articles(content, name, _sniff(content, Path(name).suffix.lower()))
    return _unique((a, name) for a in found)


def load_articles(source: str | Path) -> list[Article]:
    """Every article in a JSON/YAML file, a folder of them (recursively), a feed file or URL.

    All of it is validated first: the first problem raises :class:`ArticleError`
    naming the file, line, article and field, and nothing is returned.
    """
    return load_many([source])
