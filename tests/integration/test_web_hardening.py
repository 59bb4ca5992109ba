"""web_aid_tool against hostile clients, the real process on a dump, with real sockets.

Slowloris headers and half-sent bodies are cut off; 1,100 half-open connections under a 1,024
descriptor limit neither exhaust it nor keep the login page from being served; when descriptors
do run out the tool neither spins nor floods its log; ``next`` never leaves the site; other host
names (DNS rebinding) are refused; no version banner; no dot-file is served.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import resource
import selectors
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urljoin, urlsplit

import pytest

from tests.support import free_port
from tests.support.processes import wait_for
from tests.support.web import web_tool

pytestmark = pytest.mark.integration

PASSWORD = "correct-horse-battery-staple"
HEADER_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 2.0
FD_LIMIT = 1024
ATTACKERS = 1100
SLACK_S = 6.0  # a loaded machine: generous, but far below "never"
PARTIAL = b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "  # headers never finished
CLK_TCK = os.sysconf("SC_CLK_TCK")
EXHAUSTED_HEADER_TIMEOUT_S = 30.0


@dataclass
class Tool:
    """A running web_aid_tool: its port, pid and log."""

    port: int
    pid: int
    log: Path

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], str]:
        """One request on a fresh connection (redirects are not followed)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(
                method, path, body=body, headers={"Host": f"127.0.0.1:{self.port}", **(headers or {})}
            )
            response = conn.getresponse()
            text = response.read().decode("utf-8", errors="replace")
            return response.status, {k.lower(): v for k, v in response.getheaders()}, text
        finally:
            conn.close()

    def login(self, next_path: str, host: str | None = None) -> tuple[int, dict[str, str], str]:
        """POST the right password with ``next``."""
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if host is not None:
            headers["Host"] = host
        form = urlencode({"password": PASSWORD, "next": next_path}).encode()
        return self.request("POST", "/login", form, headers)

    def session(self) -> str:
        """A session cookie header value."""
        status, headers, _ = self.login("/")
        assert 303 == status
        return headers["set-cookie"].split(";", 1)[0]

    def fds(self) -> int:
        """Descriptors the process holds now."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def cpu_s(self) -> float:
        """User + system CPU seconds the process used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def log_size(self) -> int:
        return self.log.stat().st_size


def _files(root: Path) -> tuple[Path, Path, Path]:
    dump = root / "unit.yml"
    dump.write_text("745: 680\n746: 730\n747: 705\n")
    secret = root / "ui-password"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    html = root / "html"
    for name, text in {
        "index.htm": "<html>AWL page</html>",
        "js/indexc.js": "// AWL script",
        ".env": "SECRET=1",
        ".git/config": "[core]",
        "js/.hidden.js": "// hidden",
        ".well-known/x.txt": "hidden directory",
    }.items():
        (html / name).parent.mkdir(parents=True, exist_ok=True)
        (html / name).write_text(text)
    return dump, secret, html


@contextlib.contextmanager
def _start(
    root: Path, *options: str, env: dict[str, str] | None = None, header_timeout: float = HEADER_TIMEOUT_S
) -> Iterator[Tool]:
    dump, secret, html = _files(root)
    port = free_port()
    log = root / "web.log"
    args = [
        str(dump),
        "--html",
        str(html),
        "--header-timeout",
        str(header_timeout),
        "--body-timeout",
        str(BODY_TIMEOUT_S),
        *options,
    ]
    full_env = {"AURORA_WEB_PASSWORD_FILE": str(secret), **(env or {})}
    with web_tool(args, port=port, env=full_env, log=log, fd_limit=FD_LIMIT) as process:
        yield Tool(port, process.pid, log)


@pytest.fixture(scope="module")
def tool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tool]:
    """web_aid_tool as the README starts it, under ``ulimit -n 1024``, with short timeouts."""
    with _start(tmp_path_factory.mktemp("web")) as running:
        yield running


@pytest.fixture(autouse=True)
def _enough_descriptors_for_the_attacker() -> None:
    """The test process itself opens 1,100 sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = ATTACKERS + 512
    if soft != resource.RLIM_INFINITY and soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip(f"the test needs {need} descriptors, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def _closed_by_peer(sock: socket.socket) -> bool:
    """Whether the server closed ``sock`` (EOF or reset), without blocking."""
    try:
        return sock.recv(4096, socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _half_open(
    port: int, count: int, tool: Tool, deadline_s: float = 60.0
) -> tuple[list[socket.socket], int]:
    """``count`` connections that each send part of a request's headers; the most descriptors
    the tool held meanwhile. Connects are non-blocking: a full backlog must not stall the test."""
    socks: list[socket.socket] = []
    selector = selectors.DefaultSelector()
    most = 0
    for i in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        selector.register(sock, selectors.EVENT_WRITE)
        socks.append(sock)
        if i % 50 == 0:
            most = max(most, tool.fds())
    end = time.monotonic() + deadline_s
    waiting = len(socks)
    while waiting and time.monotonic() < end:
        for key, _ in selector.select(timeout=0.5):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            selector.unregister(sock)
            waiting -= 1
            with contextlib.suppress(OSError):  # refused or already closed by the tool: fine
                sock.send(PARTIAL)
        most = max(most, tool.fds())
    selector.close()
    return socks, most


def _login_page_served(tool: Tool) -> bool:
    try:
        status, _, body = tool.request("GET", "/login")
    except OSError:
        return False
    return status == 200 and 'name="password"' in body


# -------------------------------------------------------------------------------- timeouts


@pytest.mark.timing  # bounds on the elapsed time
def test_a_slowloris_client_is_cut_off_after_the_header_timeout(tool: Tool) -> None:
    """Headers sent a byte at a time never finish: the tool closes the connection on time."""
    sock = socket.create_connection(("127.0.0.1", tool.port), timeout=10)
    started = time.monotonic()
    sock.sendall(b"GET /login HTTP/1.1\r\n")
    sock.settimeout(0.1)  # the pace of the dribble: one byte per tenth of a second
    closed = None
    with sock:
        for byte in (b"X-Slow: " + b"a" * 10_000)[: int((HEADER_TIMEOUT_S + SLACK_S) * 10)]:
            try:
                sock.send(bytes([byte]))
                if sock.recv(4096) == b"":
                    closed = time.monotonic() - started
                    break
            except TimeoutError:
                continue
            except OSError:
                closed = time.monotonic() - started
                break
    assert closed is not None, "still open"
    assert HEADER_TIMEOUT_S * 0.9 <= closed <= HEADER_TIMEOUT_S + SLACK_S
    assert _login_page_served(tool)


@pytest.mark.timing  # bounds on the elapsed time
def test_a_half_sent_body_is_answered_408_after_the_body_timeout(tool: Tool) -> None:
    """Content-Length promises 1000 bytes, 10 come: 408 and the connection is closed."""
    sock = socket.create_connection(("127.0.0.1", tool.port), timeout=BODY_TIMEOUT_S + SLACK_S)
    started = time.monotonic()
    with sock:
        sock.sendall(
            f"POST /login HTTP/1.1\r\nHost: 127.0.0.1:{tool.port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n"
            "password=c".encode()
        )
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    elapsed = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 408 "), reply[:200]
    assert BODY_TIMEOUT_S * 0.9 <= elapsed <= BODY_TIMEOUT_S + LINGER_BOUND_S + SLACK_S


LINGER_BOUND_S = 1.0  # after the 408 the tool reads what is left for at most this long


# -------------------------------------------------------------------------------- descriptors


@pytest.mark.timing  # CPU per wall time
def test_1100_half_open_connections_under_1024_descriptors_leave_the_login_page_served(tool: Tool) -> None:
    """The connection limit (default 256) keeps far below the limit; the oldest waiting
    connection makes room, so the login page is served even while the attack holds on; then
    every attacking connection is closed by the header timeout. The log stays small, the CPU idle."""
    log_before = tool.log_size()
    socks, most = _half_open(tool.port, ATTACKERS, tool)
    try:
        assert most < 256 + 64 + 64, f"{most} descriptors"  # limit + reserve + one accept batch
        assert _login_page_served(tool), "login page refused during the attack"
        cpu_before, wall_before = tool.cpu_s(), time.monotonic()
        wait_for(
            lambda: all(_closed_by_peer(s) for s in socks),
            HEADER_TIMEOUT_S + SLACK_S * 2,
            "every attacking connection closed by the tool",
        )
        cpu = tool.cpu_s() - cpu_before
        wall = time.monotonic() - wall_before
    finally:
        for sock in socks:
            sock.close()
    assert _login_page_served(tool)
    assert cpu <= 0.5 * wall + 0.2, f"{cpu:.2f} s of CPU in {wall:.2f} s while waiting"
    grown = tool.log_size() - log_before
    assert grown < 4096, tool.log.read_text()[-4096:]
    assert "out of system resource" not in tool.log.read_text()


@pytest.mark.timing  # CPU and log bytes per wall time
def test_running_out_of_descriptors_neither_spins_nor_floods_the_log(tmp_path: Path) -> None:
    """With a limit above what ``ulimit -n`` allows, the descriptors do run out: the tool warns
    once (at start, and when accepting fails), pauses accepting instead of retrying at once, and
    serves again when the connections time out."""
    # Connections live long enough here for the descriptors to run out before they expire.
    with _start(tmp_path, "--max-connections", "4000", header_timeout=EXHAUSTED_HEADER_TIMEOUT_S) as tool:
        assert "fd_limit_low" in tool.log.read_text()
        socks, most = _half_open(tool.port, ATTACKERS, tool, deadline_s=5.0)
        try:
            wait_for(lambda: "out_of_file_descriptors" in tool.log.read_text(), 30, "descriptors to run out")
            most = max(most, tool.fds())
            assert most >= FD_LIMIT - 64, f"only {most} descriptors: the limit was not reached"
            # The measurement window: what the tool does while it has no descriptor left.
            log_before, cpu_before, started = tool.log_size(), tool.cpu_s(), time.monotonic()
            wait_for(lambda: time.monotonic() - started >= 2.0, 5, "the measurement window")
            cpu = tool.cpu_s() - cpu_before
            wall = time.monotonic() - started
            grown = tool.log_size() - log_before
        finally:
            for sock in socks:
                sock.close()
        assert cpu <= 0.3 * wall, f"{cpu:.2f} s of CPU in {wall:.2f} s: a busy loop"
        assert grown <= 1024, f"{grown} bytes of log in {wall:.1f} s"
        assert tool.log_size() < 16 * 1024
        assert "out of system resource" not in tool.log.read_text()
        wait_for(
            lambda: _login_page_served(tool), EXHAUSTED_HEADER_TIMEOUT_S + SLACK_S * 3, "the login page again"
        )


# -------------------------------------------------------------------------------- redirects

REDIRECT_PAYLOADS = [
    "/\t/evil.example",
    "//evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "https://evil.example",
    "http:evil.example",
    "javascript:alert(1)",
    "%2F%2Fevil",
    "/%2F/evil.example",
    "/%5Cevil.example",
    "/%09/evil",
    "/\n/evil.example",
    "/\r\n/evil.example",
    " //evil.example",
    "\t//evil.example",
    "/\x00/evil.example",
    "/\x7f/evil.example",
    "///evil.example",
    "/\\/evil.example",
    "\\/evil.example",
    "evil.example",
    "//evil.example@127.0.0.1",
    "/ui/\r\nSet-Cookie: x=1",
    "/\u3000/evil.example",
    "/\uff0f/evil.example",
]


def _browser_target(base: str, location: str) -> tuple[str, str]:
    """Where a browser goes for ``Location``: it drops tabs and newlines, trims C0 and space and
    reads ``\\`` as ``/`` (WHATWG URL), then resolves against the page."""
    cleaned = re.sub(r"[\t\n\r]", "", location).strip("\x00\x01\x02\x03\x04\x05\x06\x07\x08 ")
    url = urlsplit(urljoin(base, cleaned.replace("\\", "/")))
    return url.scheme, url.netloc


@pytest.mark.parametrize("payload", REDIRECT_PAYLOADS)
def test_next_after_login_never_leaves_the_site(tool: Tool, payload: str) -> None:
    """Anything but a same-origin path is dropped: the user lands on /."""
    base = f"http://127.0.0.1:{tool.port}/login"
    status, headers, _ = tool.login(payload)
    assert 303 == status
    assert ("http", f"127.0.0.1:{tool.port}") == _browser_target(base, headers["location"])
    assert "/" == headers["location"]
    status, _, page = tool.request("GET", "/login?" + urlencode({"next": payload}))
    assert 200 == status
    assert '<input type="hidden" name="next" value="/">' in page


def test_a_local_next_is_kept_with_its_query(tool: Tool) -> None:
    """The login page's own redirect target survives the round trip."""
    status, headers, _ = tool.request("GET", "/ui/?tab=settings", headers={"Accept": "text/html"})
    assert 303 == status
    login_url = headers["location"]
    status, _, page = tool.request("GET", login_url)
    found = re.search(r'name="next" value="([^"]*)"', page)
    assert found and "/ui/?tab=settings" == found.group(1)
    assert "/ui/?tab=settings" == tool.login(found.group(1))[1]["location"]


# -------------------------------------------------------------------------------- host names


@pytest.mark.parametrize("path", ["/login", "/", "/ui/", "/config.cgi", "/api/session"])
def test_a_dns_rebinding_request_is_refused_with_421(tool: Tool, path: str) -> None:
    """``Host: evil.example`` (its name resolved to us) never reaches a page or the login form."""
    status, _, body = tool.request("GET", path, headers={"Host": "evil.example", "Cookie": tool.session()})
    assert 421 == status
    assert "host name" in body and "password" not in body
    status, _, _ = tool.login("/", host=f"evil.example:{tool.port}")
    assert 421 == status


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "LOCALHOST.", "app.localhost", "[::1]", socket.gethostname()]
)
def test_local_names_are_served(tool: Tool, host: str) -> None:
    """localhost names, IP addresses and the machine's own name need no configuration."""
    status, _, _ = tool.request("GET", "/login", headers={"Host": f"{host}:{tool.port}"})
    assert 200 == status


def test_more_host_names_come_from_the_environment(tmp_path: Path) -> None:
    """AURORA_WEB_ALLOWED_HOST: names and domains; everything else is still refused."""
    env = {"AURORA_WEB_ALLOWED_HOST": "heatpump.lan, .home.arpa"}
    with _start(tmp_path, env=env) as tool:
        for host in ("heatpump.lan", "pump.home.arpa", "home.arpa", "127.0.0.1"):
            assert 200 == tool.request("GET", "/login", headers={"Host": host})[0], host
        for host in ("evil.example", "heatpump.lan.evil.example", "evilhome.arpa"):
            assert 421 == tool.request("GET", "/login", headers={"Host": host})[0], host
        assert "host_refused" in tool.log.read_text()


# -------------------------------------------------------------------------------- banners, files


def test_no_version_banner_in_any_answer(tool: Tool) -> None:
    """``Server`` names the tool only, also for errors aiohttp answers itself."""
    cookie = tool.session()
    answers = [
        tool.request("GET", "/login"),
        tool.request("GET", "/ui/app.css"),
        tool.request("GET", "/no-such-page", headers={"Cookie": cookie}),
        tool.request("GET", "/js/indexc.js", headers={"Cookie": cookie}),
        tool.request("GET", "/login", headers={"Host": "evil.example"}),
    ]
    for status, headers, body in answers:
        assert "web_aid_tool" == headers["server"], status
        assert not re.search(r"aiohttp|python|\d+\.\d+\.\d+", " ".join(headers.values()) + body, re.I)
    with socket.create_connection(("127.0.0.1", tool.port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header\r\n\r\n")
        reply = sock.recv(4096).decode(errors="replace")
    assert reply.startswith("HTTP/1.") and " 400 " in reply.split("\r\n", 1)[0]
    assert "Server: web_aid_tool\r\n" in reply
    assert not re.search(r"aiohttp|python", reply, re.I)


@pytest.mark.parametrize(
    "path", ["/.env", "/.git/config", "/js/.hidden.js", "/.well-known/x.txt", "/js/../.env", "/%2Eenv"]
)
def test_dot_files_under_html_are_never_served(tool: Tool, path: str) -> None:
    """Hidden files and directories under --html answer 404, even to a logged-in user."""
    cookie = tool.session()
    assert 200 == tool.request("GET", "/js/indexc.js", headers={"Cookie": cookie})[0]
    status, _, body = tool.request("GET", path, headers={"Cookie": cookie})
    assert 404 == status
    assert "SECRET" not in body and "[core]" not in body and "hidden" not in body


def test_malformed_requests_are_logged_briefly(tool: Tool) -> None:
    """A flood of malformed requests costs a line a minute, never a traceback each."""
    before = tool.log_size()
    for _ in range(200):
        with socket.create_connection(("127.0.0.1", tool.port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header\r\n\r\n")
            sock.recv(4096)
    grown = tool.log.read_text()[before:]
    assert len(grown) < 2048, grown[-2048:]
    assert "Traceback" not in grown
