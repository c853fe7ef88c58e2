"""Local page servers that only their own page can drive.

fewpick's pages (the exploration page, the labelling page) are served by a small threaded HTTP server from the
standard library. Reading is harmless, but a request that writes (an export, a save) changes the files the next
training reads, so every such request must come from the page itself, not from another web site open in the
same browser, nor from a page that rebinds its own name to this machine's address. :class:`PageServer` and
:class:`PageHandler` enforce, for every request:

* the page's key: the random token of this server, which only the person who started it holds (the address
  fewpick prints carries it, ``/?token=…``, as notebook servers do). The page's address sets it as a cookie of
  this port (``HttpOnly``, ``SameSite=Strict``), which the page's own requests then carry; a request without
  it (another user of the machine, any local process that did not see the printed address) gets nothing;
* the ``Host`` header names this server: a loopback name (``localhost``, ``127.0.0.1``, ``[::1]``, any port, so
  that an SSH tunnel to another local port works) when it listens on a loopback address, else the address or
  this machine's names or an IP address — a page on a foreign name that resolves here (DNS rebinding) is
  refused;

and for every request that changes something (POST):

* an ``Origin``, where the browser sends one, equal to ``http://`` + the ``Host`` (same origin), and no
  ``Sec-Fetch-Site: cross-site``;
* ``Content-Type: application/json`` — a form or ``text/plain`` post, which a foreign page may send without
  asking, is refused;
* the header ``X-Fewpick-Token`` carrying the token, which only its own page holds (it is written into the
  page; a foreign page cannot read it);
* a declared ``Content-Length`` no larger than the action allows (sized to the data).

Sockets time out (a connection that sends nothing, or a body shorter than it declared, is dropped after
``request_timeout`` seconds), at most ``max_connections`` connections are served at once, and malformed
requests get a 4xx reply with a one-line message, never a traceback. Pages are sent with a content security
policy that lets them load nothing from elsewhere and be framed by no other page.
"""

from __future__ import annotations

import errno
import hmac
import ipaddress
import json
import secrets
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Sequence

from fewpick.errors import FewpickError, InputError, first_line

TOKEN_HEADER = "X-Fewpick-Token"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]", "::1")
CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


class RequestError(Exception):
    """A refused request: ``status`` and a message for the reply."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _split_host(value: str) -> tuple[str, str | None]:
    """``name[:port]`` or ``[v6]:port`` → (lower-case name without brackets, port or None)."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        return name, rest[1:] if rest.startswith(":") else None
    if value.count(":") == 1:
        name, port = value.split(":")
        return name, port
    return value, None


def parse_indices(value: Any, n: int, what: str = "indices") -> list[int]:
    """A JSON list of integers in ``0 … n−1``; booleans, floats, strings and out-of-range numbers raise
    :class:`RequestError` (400) naming the first offender."""
    if not isinstance(value, list):
        raise RequestError(400, f"'{what}' must be a list of integers")
    for i in value:
        if type(i) is not int:  # bool is a subclass of int: refused here on purpose
            raise RequestError(400, f"'{what}' must hold integers only, not {json.dumps(i)[:40]}")
        if not 0 <= i < n:
            shown = str(i) if len(str(i)) <= 20 else str(i)[:17] + "…"
            raise RequestError(400, f"index {shown} is outside 0…{n - 1}")
    return value


def body_cap(n_items: int, per_item: int | None = None, base: int = 4096) -> int:
    """A request-size cap for a list of up to ``n_items`` integers below ``n_items`` (plus ``base`` bytes)."""
    per = per_item if per_item is not None else len(str(max(n_items, 1))) + 2
    return base + max(n_items, 1) * per


class PageServer(ThreadingHTTPServer):
    """A threaded server with a per-server token, the names it answers to and bounded connections."""

    daemon_threads = True
    request_timeout = 10.0  # seconds a connection may stay silent
    max_connections = 256  # idle or slow connections each hold one; the page is served beside them
    request_queue_size = 128  # connections the kernel holds until accepted (and, beyond max_connections, closed)

    def __init__(self, host: str, port: int, handler: type[BaseHTTPRequestHandler], *,
                 extra_hosts: Sequence[str] = ()):
        try:
            super().__init__((host, port), handler)
        except socket.gaierror as e:
            raise InputError(None, f"cannot listen on {host}:{port}: unknown host ({e.strerror})") from None
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise InputError(None, f"port {port} on {host} is already in use: choose another with --port") from None
            raise InputError(None, f"cannot listen on {host}:{port}: {e.strerror or e}") from None
        self.token = secrets.token_urlsafe(24)
        self.loopback = is_loopback(host)
        self.port = self.server_address[1]
        names = {h.lower().strip("[]") for h in extra_hosts}
        if not self.loopback:
            names.add(host.lower().strip("[]"))
            for name in (socket.gethostname(), socket.getfqdn()):
                names.add(name.lower())
                try:
                    names.update(socket.gethostbyname_ex(name)[2])
                except OSError:
                    pass
        self.names = names
        self._slots = threading.BoundedSemaphore(self.max_connections)

    # bounded concurrency: a request beyond max_connections is closed at once instead of holding a thread
    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    @property
    def cookie(self) -> str:
        """The name of the cookie that carries the token to this server (one per port)."""
        return f"fewpick-{self.port}"

    def address(self, host: str) -> str:
        """The page's address with its key, to print for the person who started the server."""
        name = "localhost" if is_loopback(host) else (f"[{host}]" if ":" in host else host)
        return f"http://{name}:{self.port}/?token={self.token}"

    def host_allowed(self, value: str | None) -> bool:
        if not value:
            return False
        name, port = _split_host(value)
        if name in ("localhost", "127.0.0.1", "::1"):
            return True  # any port: an SSH tunnel may forward another local port to this one
        if self.loopback:
            return False
        try:
            ipaddress.ip_address(name)
            literal = True  # an address typed by the user: a rebinding page always has a name, never an address
        except ValueError:
            literal = False
        return (literal or name in self.names) and (port is None or port == str(self.port))


def warn_if_exposed(host: str) -> str | None:
    """The warning to show when a server listens beyond this machine (None for a loopback address)."""
    if is_loopback(host):
        return None
    return (f"listening on {host}: anyone who can reach this machine can open the page. On a shared server, "
            "prefer the default 127.0.0.1 and an SSH tunnel")


class PageHandler(BaseHTTPRequestHandler):
    """Base handler: checks every request, replies with JSON errors; subclasses implement ``get(path)`` and
    ``post(path, read_json)``."""

    server: PageServer
    server_version = "fewpick"

    def setup(self):
        self.timeout = self.server.request_timeout  # StreamRequestHandler sets it on the socket
        super().setup()

    def log_message(self, fmt, *args):  # quiet: the command line reports what matters
        pass

    def send_body(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        if getattr(self, "_new_key", False):  # the page's address carried the key: keep it for its requests
            self.send_header("Set-Cookie", f"{self.server.cookie}={self.server.token}; Path=/; HttpOnly; "
                                           "SameSite=Strict")
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status: int, obj: Any) -> None:
        self.send_body(status, json.dumps(obj).encode(), "application/json")

    def send_page(self, html: str) -> None:
        """An HTML page with this server's token in it (``<meta name="fewpick-token">``)."""
        self.send_body(200, html.replace("__FEWPICK_TOKEN__", self.server.token).encode(), "text/html; charset=utf-8")

    # ---- checks

    def _check_host(self) -> None:
        if not self.server.host_allowed(self.headers.get("Host")):
            raise RequestError(403, f"this server does not answer to the host {str(self.headers.get('Host'))[:60]!r}")

    def _check_key(self, query: str) -> None:
        """The request carries the server's token: in the address (``?token=``), its cookie or the header."""
        from http.cookies import CookieError, SimpleCookie
        from urllib.parse import parse_qs

        given = parse_qs(query).get("token", [])
        if any(hmac.compare_digest(t.encode(), self.server.token.encode()) for t in given):
            self._new_key = True
            return
        cookies: SimpleCookie = SimpleCookie()
        try:
            cookies.load(self.headers.get("Cookie", ""))
        except CookieError:
            pass
        for token in (cookies[self.server.cookie].value if self.server.cookie in cookies else "",
                      self.headers.get(TOKEN_HEADER, "")):
            if token and hmac.compare_digest(token.encode(), self.server.token.encode()):
                return
        raise RequestError(403, "this page needs its key: open the address fewpick printed when it started "
                                "(it ends in ?token=…)")

    def _check_write(self) -> None:
        host = self.headers.get("Host", "")
        origin = self.headers.get("Origin")
        if origin is not None and origin.rstrip("/").lower() != f"http://{host}".lower():
            raise RequestError(403, "refused: the request comes from another web page")
        if self.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
            raise RequestError(403, "refused: the request comes from another web site")
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise RequestError(415, "refused: changes must be sent as application/json")
        token = self.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(token.encode(), self.server.token.encode()):
            raise RequestError(403, "refused: the request does not carry this page's token (reload the page)")

    def read_json(self, cap: int) -> Any:
        """The request's JSON body, at most ``cap`` bytes."""
        raw = self.headers.get("Content-Length")
        try:
            length = int(raw) if raw is not None else -1
        except ValueError:
            length = -1
        if length < 0:
            raise RequestError(411, "the request must declare its Content-Length")
        if length == 0:
            raise RequestError(400, "the request is empty")
        if length > cap:
            raise RequestError(413, f"the request is too large ({length} bytes; at most {cap} here)")
        body = self.rfile.read(length)  # a shorter body times out (request_timeout) and drops the connection
        if len(body) < length:
            raise RequestError(400, "the request ended before its declared length")
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as e:
            raise RequestError(400, f"the request is not valid JSON ({str(e)[:80]})") from None

    # ---- dispatch

    def do_GET(self):
        path, _, query = self.path.partition("?")
        self._answer(lambda: (self._check_host(), self._check_key(query), self.get(path)))

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        self._answer(lambda: (self._check_host(), self._check_write(), self.post(path)))

    def _answer(self, work: Callable[[], object]) -> None:
        """Do ``work``; every failure is a JSON reply with one line (a refused file, a bug: never a traceback)."""
        try:
            work()
            return
        except RequestError as e:
            status, message = e.status, str(e)
        except FewpickError as e:
            status, message = 422, str(e)
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client went away: nobody to answer
            return
        except Exception as e:  # noqa: BLE001 - a reply beats a traceback on the console and a dropped request
            status, message = 500, f"internal error: {first_line(e)}"
        self.close_connection = True  # a request body may be left unread
        try:
            self.send_json(status, {"error": message})
        except OSError:
            pass

    def get(self, path: str) -> None:  # pragma: no cover - subclasses
        raise RequestError(404, f"no such page: {path}")

    def post(self, path: str) -> None:  # pragma: no cover - subclasses
        raise RequestError(404, f"no such action: {path}")


def page_head(title: str) -> str:
    """The start of a page: its title, and this server's token (``TOKEN`` in the page's scripts), which
    :meth:`PageHandler.send_page` fills in and every change the page sends must carry."""
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            '<meta name="fewpick-token" content="__FEWPICK_TOKEN__">\n'
            '<script>const TOKEN=document.querySelector(\'meta[name="fewpick-token"]\').content;</script>\n')


def static_page(title: str, name: str) -> str:
    """A page of this package: :func:`page_head` and the file ``name`` of ``fewpick/web/static`` (its style, body
    and scripts)."""
    from importlib import resources

    return page_head(title) + resources.files("fewpick").joinpath("web", "static", name).read_text(encoding="utf-8")


def announce(server: PageServer, host: str, what: str, say) -> None:
    """Print the page's address (with its key), how to reach it through SSH, and a warning when it is exposed."""
    port = server.port
    say(f"serving {what} at {server.address(host)}  (Ctrl-C to stop)")
    if is_loopback(host):
        say(f"from another computer: ssh -L {port}:localhost:{port} <this server>, then open the address above "
            "on that computer")
    warning = warn_if_exposed(host)
    if warning:
        say("warning: " + warning)
