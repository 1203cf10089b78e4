"""A throwaway mail server for tests, the demo and benchmarks: Dovecot (IMAP + LMTP) and an
SMTP server that delivers into it, all on free loopback ports under one root directory.

Runs as root (Dovecot drops to the `dovecot`/`dovenull` users). Usable without pytest:

    with TestBed(tmpdir, ["sales@example.com", "zhang@example.com"]) as bed:
        bed.deliver("sales@example.com", raw_message)
"""
from __future__ import annotations

import asyncio

import logging
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import imapclient
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session, SMTP

log = logging.getLogger("mailrouter.testbed")

HOST = "127.0.0.1"
INSTALL_HINT = "is Dovecot installed? apt-get install dovecot-imapd dovecot-lmtpd"
# Unix socket paths are limited to 108 bytes; Dovecot's longest socket name is ~30 bytes.
_MAX_BASE_DIR = 70


class TestBedError(RuntimeError):
    """The test bed could not start; the message carries Dovecot's log tail and a hint."""

    __test__ = False  # keep pytest from collecting it when imported into a test module


def free_port() -> int:
    """A port the kernel just handed out; tiny race, but no fixed ports (parallel runs)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def untraversable_parent(path: Path) -> Path | None:
    """The first ancestor the dovecot user cannot enter (no o+x), if any."""
    for parent in [path, *path.parents]:
        if not parent.stat().st_mode & stat.S_IXOTH:
            return parent
    return None


def _greets(port: int, prefix: bytes) -> bool:
    """Whether a server on `port` accepts a connection and greets with `prefix`."""
    try:
        with socket.create_connection((HOST, port), timeout=2) as s:
            return s.recv(512).startswith(prefix)
    except OSError:
        return False


# --------------------------------------------------------------------------------- Dovecot


def dovecot_config(
    *,
    root: Path,
    base_dir: Path,
    imap_port: int,
    lmtp_port: int,
    imap_capability: str | None,
    namespace_prefix: str,
) -> str:
    """The whole dovecot.conf; nothing is read from /etc/dovecot."""
    separator = "." if namespace_prefix else "/"
    capability = f"imap_capability = {imap_capability}\n" if imap_capability else ""
    return f"""\
protocols = imap lmtp
listen = {HOST}
base_dir = {base_dir}
state_dir = {root}/state
log_path = {root}/dovecot.log
first_valid_uid = 1
default_internal_user = dovecot
default_login_user = dovenull
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# Tests try wrong passwords on purpose; no 2 s penalty per failure.
auth_failure_delay = 0
mail_location = maildir:~/Maildir
mail_plugins =
{capability}# Log the client's IMAP ID so tests can see it was sent.
imap_id_log = *
# Keep-alive inside IDLE; new mail itself is pushed at once (inotify), polled as a fallback.
imap_idle_notify_interval = 2 mins
mailbox_idle_check_interval = 1 secs
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={root}/home/%u
}}
namespace inbox {{
  inbox = yes
  separator = {separator}
  prefix = {namespace_prefix}
  mailbox Sent {{
    auto = create
    special_use = \\Sent
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = {HOST}
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = {HOST}
    port = {lmtp_port}
  }}
}}
protocol lmtp {{
  postmaster_address = postmaster@example.com
}}
"""


class Dovecot:
    """One `dovecot -F` process group with its own config, state and log."""

    def __init__(self, root: Path, config: str, base_dir: Path) -> None:
        self.root = root
        self.config_path = root / "dovecot.conf"
        self.log_path = root / "dovecot.log"
        self.base_dir = base_dir
        self.config_path.write_text(config)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
        if not os.path.exists(binary):
            raise TestBedError(f"dovecot not found; {INSTALL_HINT}")
        stderr = open(self.root / "dovecot.stderr", "wb")
        with stderr:
            # Own session: stop() can signal the whole group, children included.
            self.process = subprocess.Popen(
                [binary, "-F", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,
            )

    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def log_tail(self, lines: int = 20) -> str:
        text = ""
        for path in (self.root / "dovecot.stderr", self.log_path):
            if path.exists():
                text += "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"
        return text.strip() or "(no log output)"

    def stop(self) -> None:
        """SIGTERM the group, then SIGKILL any straggler (the group is ours alone)."""
        proc, self.process = self.process, None
        # Usually gone in milliseconds; now and then the master lingers ~6 s waiting for a
        # child it forked just as the signal came. Nothing here is worth keeping.
        stop_group(proc, grace=1)


def stop_group(proc: subprocess.Popen | None, grace: float) -> None:
    """SIGTERM a server's process group (the master alone would wait for its children), wait
    `grace` seconds, then SIGKILL any straggler: the group is the test's alone."""
    if proc is None:
        return
    if proc.poll() is None:
        _killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    _killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _killpg(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


# ------------------------------------------------------------------------------------ SMTP


class LmtpRelayHandler:
    """aiosmtpd handler: accept mail for known users and hand it to Dovecot over LMTP."""

    def __init__(self, lmtp_port: int, users: Iterable[str], strict_lines: bool = False) -> None:
        self.lmtp_port = lmtp_port
        self.users = {u.lower() for u in users}
        self.strict_lines = strict_lines
        self.mail_options: list[list[str]] = []  # MAIL FROM parameters of each accepted message
        self._lock = threading.Lock()
        self._fail_next = 0
        self._fail_code = 451

    def fail_next(self, count: int, code: int) -> None:
        with self._lock:
            self._fail_next, self._fail_code = count, code

    def _take_failure(self) -> int | None:
        with self._lock:
            if self._fail_next <= 0:
                return None
            self._fail_next -= 1
            return self._fail_code

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.lower() not in self.users:
            return "550 5.1.1 User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        # Injected failures come at DATA, after the client sent everything: the hardest case.
        code = self._take_failure()
        if code is not None:
            return f"{code} {code // 100}.3.0 Injected failure (test bed)"
        raw = envelope.original_content or b""
        if self.strict_lines and max(map(len, raw.split(b"\r\n")), default=0) > 998:
            return "500 5.5.2 Line too long (see RFC5321 4.5.3.1.6)"
        self.mail_options.append(list(envelope.mail_options))
        try:
            # in a thread, so concurrent sessions are not queued behind one delivery (as on any MTA)
            await asyncio.get_running_loop().run_in_executor(
                None, lmtp_deliver, self.lmtp_port, envelope.mail_from or "", envelope.rcpt_tos, raw)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("LMTP delivery failed: %s", exc)
            return "451 4.3.0 Local delivery failed"
        return "250 OK delivered"


def lmtp_deliver(port: int, mail_from: str, rcpts: Iterable[str], raw: bytes) -> None:
    """One transaction per recipient: smtplib reads only one reply after LMTP's DATA."""
    with smtplib.LMTP(HOST, port, timeout=30) as lmtp:
        for rcpt in rcpts:
            lmtp.sendmail(mail_from, [rcpt], raw)


def smtp_authenticator(users: set[str], password: str) -> Any:
    def authenticate(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode().lower() in users
            and data.password.decode() == password
        )
        return AuthResult(success=ok, handled=False)

    return authenticate


# ---------------------------------------------------------------------------------- proxy

_LITERAL = re.compile(rb"~?\{(\d+)\+?\}\r\n$")
_CAPABILITY_LINE = re.compile(rb"^(\* CAPABILITY )(.*?)(\r\n)$", re.IGNORECASE)
_CAPABILITY_CODE = re.compile(rb"\[CAPABILITY ([^\]]*)\]", re.IGNORECASE)
_PERMANENTFLAGS = re.compile(rb"\[PERMANENTFLAGS \(([^)]*)\)\]", re.IGNORECASE)
_UIDPLUS_CODES = re.compile(rb" ?\[(?:COPYUID|APPENDUID) [^\]]*\]", re.IGNORECASE)


class ResponseRewriter:
    """Edits single server response lines so the server seems to lack some features."""

    def __init__(self, hide: Iterable[str], no_keywords: bool) -> None:
        self.hide = {h.upper().encode() for h in hide}
        self.no_keywords = no_keywords

    def _strip_caps(self, caps: bytes) -> bytes:
        return b" ".join(c for c in caps.split() if c.upper() not in self.hide)

    def rewrite(self, line: bytes) -> bytes:
        if self.hide:
            m = _CAPABILITY_LINE.match(line)
            if m:
                line = m.group(1) + self._strip_caps(m.group(2)) + m.group(3)
            line = _CAPABILITY_CODE.sub(
                lambda m: b"[CAPABILITY " + self._strip_caps(m.group(1)) + b"]", line
            )
            if b"UIDPLUS" in self.hide:  # a server without UIDPLUS never sends these codes
                line = _UIDPLUS_CODES.sub(b"", line)
        if self.no_keywords:
            line = _PERMANENTFLAGS.sub(
                lambda m: b"[PERMANENTFLAGS ("
                + b" ".join(f for f in m.group(1).split() if f != b"\\*")
                + b")]",
                line,
            )
        return line


class CapabilityProxy:
    """Threaded TCP proxy in front of an IMAP server, rewriting server lines (not literals)."""

    def __init__(self, target_port: int, hide: Iterable[str] = (), no_keywords: bool = False):
        self.target_port = target_port
        self.rewriter = ResponseRewriter(hide, no_keywords)
        self._listener = socket.create_server((HOST, 0))
        self.port = int(self._listener.getsockname()[1])
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # listener closed by stop()
            try:
                server = socket.create_connection((HOST, self.target_port), timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            for s in (client, server):  # line-by-line writes + Nagle = 40 ms per round trip
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._closed:
                    client.close()
                    server.close()
                    return
                self._sockets += [client, server]
            threading.Thread(target=relay, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pipe_lines, args=(server, client), daemon=True).start()

    def _pipe_lines(self, src: socket.socket, dst: socket.socket) -> None:
        """Rewrite each response line; pass `{n}` literals through byte for byte."""
        reader = src.makefile("rb")
        try:
            while line := reader.readline():
                dst.sendall(self.rewriter.rewrite(line))
                m = _LITERAL.search(line)
                if m:
                    dst.sendall(reader.read(int(m.group(1))))
        except OSError:
            pass
        finally:
            reader.close()
        _shutdown(dst)

    def stop(self) -> None:
        with self._lock:
            self._closed = True
            sockets, self._sockets = self._sockets, []
        _shutdown(self._listener)  # close() alone does not wake a thread blocked in accept()
        self._listener.close()
        for s in sockets:
            _shutdown(s)
            s.close()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def relay(src: socket.socket, dst: socket.socket) -> None:
    """Bytes from `src` to `dst` as they come, until `src` ends; then `dst` is shut down too
    (one direction of a proxied session: the other has its own thread)."""
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    _shutdown(dst)


def _shutdown(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


# -------------------------------------------------------------------------------- TestBed


class TestBed:
    """Dovecot + SMTP(->LMTP) + optional capability-hiding proxy, on free loopback ports."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        root: str | os.PathLike[str],
        addresses: Iterable[str],
        *,
        password: str = "testbed-secret",
        imap_capability: str | None = None,
        namespace_prefix: str = "",
        proxy_hide: Iterable[str] = (),
        proxy_no_keywords: bool = False,
        smtp_size_limit: int = 33_554_432,  # aiosmtpd's default; EHLO announces it as SIZE
        smtp_strict_lines: bool = False,  # refuse lines over 998 octets (RFC 5321 4.5.3.1.6), as strict MTAs do
        smtp_8bitmime: bool = True,  # False: no 8BITMIME in EHLO, and 8-bit data refused ("strict ASCII mode")
    ) -> None:
        self.root = Path(root).resolve()
        self.addresses = [a.lower() for a in addresses]
        self.password = password
        self.host = HOST
        self.imap_capability = imap_capability
        self.namespace_prefix = namespace_prefix
        self.proxy_hide = frozenset(proxy_hide)
        self.proxy_no_keywords = proxy_no_keywords
        self.smtp_size_limit = smtp_size_limit
        self.smtp_strict_lines = smtp_strict_lines
        self.smtp_8bitmime = smtp_8bitmime
        self.dovecot_imap_port = 0
        self.imap_port = 0
        self.lmtp_port = 0
        self.smtp_port = 0
        self.dovecot: Dovecot | None = None
        self._handler: LmtpRelayHandler | None = None
        self._smtp: Controller | None = None
        self._proxy: CapabilityProxy | None = None
        self._short_base_dir: Path | None = None

    # -- lifecycle

    def __enter__(self) -> TestBed:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self, attempts: int = 3) -> None:
        """Start everything; a port taken between choosing and binding it (free_port's race
        with other processes) is retried with fresh ports."""
        for attempt in range(1, attempts + 1):
            try:
                self._start_server()
                self._start_smtp()
                self._start_proxy()
                return
            except (TestBedError, OSError):
                self.stop()  # partial start: leave nothing running
                if attempt == attempts:
                    raise
            except BaseException:
                self.stop()
                raise

    def stop(self) -> None:
        """Stop whatever was started; safe to call twice or after a failed start."""
        if self._proxy is not None:
            self._proxy.stop()
            self._proxy = None
        if self._smtp is not None:
            self._smtp.stop(no_assert=True)
            self._smtp = None
        self._stop_server()
        if self._short_base_dir is not None:
            shutil.rmtree(self._short_base_dir, ignore_errors=True)
            self._short_base_dir = None

    def _start_server(self) -> None:
        """The IMAP + LMTP server; another bed (mailrouter.testing.cyrus) starts its own."""
        self._prepare_dirs()
        self._start_dovecot()

    def _stop_server(self) -> None:
        if self.dovecot is not None:
            self.dovecot.stop()
            self.dovecot = None

    def _prepare_dirs(self) -> None:
        """Root-owned config, dovecot-owned homes; every ancestor must be enterable by dovecot."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        blocked = untraversable_parent(self.root)
        if blocked is not None:
            raise TestBedError(
                f"{blocked} is not enterable by the dovecot user (mode "
                f"{oct(blocked.stat().st_mode & 0o777)}); chmod o+x it or use another root"
            )
        try:
            dovecot_user = pwd.getpwnam("dovecot")
        except KeyError:
            raise TestBedError(f"no 'dovecot' user; {INSTALL_HINT}") from None
        for name in ("home", "state"):
            (self.root / name).mkdir(exist_ok=True)
        os.chown(self.root / "home", dovecot_user.pw_uid, dovecot_user.pw_gid)
        users = "".join(f"{a}:{{PLAIN}}{self.password}::::::\n" for a in self.addresses)
        (self.root / "users").write_text(users)
        (self.root / "users").chmod(0o644)  # read by the unprivileged auth process

    def _base_dir(self) -> Path:
        base = self.root / "run"
        if len(str(base)) <= _MAX_BASE_DIR:
            return base
        # pytest's tmp paths can be too long for Dovecot's unix sockets.
        self._short_base_dir = Path(tempfile.mkdtemp(prefix="mrbed-"))
        self._short_base_dir.chmod(0o755)
        return self._short_base_dir / "run"

    def _start_dovecot(self) -> None:
        self.dovecot_imap_port, self.lmtp_port = free_port(), free_port()
        self.imap_port = self.dovecot_imap_port
        base_dir = self._base_dir()
        config = dovecot_config(
            root=self.root,
            base_dir=base_dir,
            imap_port=self.dovecot_imap_port,
            lmtp_port=self.lmtp_port,
            imap_capability=self.imap_capability,
            namespace_prefix=self.namespace_prefix,
        )
        self.dovecot = Dovecot(self.root, config, base_dir)
        self.dovecot.start()
        self._wait_dovecot()

    def _wait_dovecot(self) -> None:
        """Until IMAP and LMTP both greet; fail early if dovecot exits (bad config)."""
        assert self.dovecot is not None
        deadline = time.monotonic() + 20
        for port, greeting in ((self.dovecot_imap_port, b"* OK"), (self.lmtp_port, b"220")):
            while not _greets(port, greeting):
                if self.dovecot.exited() or time.monotonic() > deadline:
                    state = "exited" if self.dovecot.exited() else "gave no greeting"
                    raise TestBedError(
                        f"Dovecot {state} (port {port}); {INSTALL_HINT}\n"
                        f"--- log tail ({self.root}) ---\n{self.dovecot.log_tail()}"
                    )
                time.sleep(0.05)

    def _start_smtp(self) -> None:
        self.smtp_port = free_port()
        self._handler = LmtpRelayHandler(self.lmtp_port, self.addresses, self.smtp_strict_lines)
        controller = Controller(
            self._handler,
            hostname=HOST,
            port=self.smtp_port,
            authenticator=smtp_authenticator(set(self.addresses), self.password),
            auth_require_tls=False,
            ready_timeout=10,
            data_size_limit=self.smtp_size_limit,
            # aiosmtpd offers 8BITMIME only when it keeps bytes; without SMTPUTF8 as well it refuses 8-bit data
            decode_data=not self.smtp_8bitmime, enable_SMTPUTF8=self.smtp_8bitmime,
        )
        controller.start()
        self._smtp = controller
        if not _greets(self.smtp_port, b"220"):  # Controller.start() already waited for it
            raise TestBedError(f"SMTP server on port {self.smtp_port} gives no greeting")

    def _start_proxy(self) -> None:
        if not (self.proxy_hide or self.proxy_no_keywords):
            return
        self._proxy = CapabilityProxy(
            self.dovecot_imap_port, self.proxy_hide, self.proxy_no_keywords
        )
        self._proxy.start()
        self.imap_port = self._proxy.port

    # -- helpers for tests

    @property
    def smtp_mail_options(self) -> list[list[str]]:
        """The MAIL FROM parameters of each message the SMTP server accepted, in order."""
        assert self._handler is not None, "test bed not started"
        return list(self._handler.mail_options)

    def smtp_fail_next(self, count: int = 1, code: int = 451) -> None:
        """Make the next `count` SMTP transactions fail at DATA with `code` (4xx or 5xx)."""
        assert self._handler is not None, "test bed not started"
        self._handler.fail_next(count, code)

    def deliver(self, rcpt: str | list[str], raw: bytes, mail_from: str = "") -> None:
        """Put a message straight into mailboxes, as the MTA would for a customer's mail."""
        rcpts = [rcpt] if isinstance(rcpt, str) else rcpt
        lmtp_deliver(self.lmtp_port, mail_from, rcpts, raw)

    def imap(self, user: str) -> imapclient.IMAPClient:
        """A logged-in client (through the proxy, if any); the caller logs out."""
        client = imapclient.IMAPClient(self.host, self.imap_port, ssl=False, timeout=30)
        try:
            client.login(user, self.password)
        except BaseException:
            client.shutdown()
            raise
        return client

    def append(self, user: str, messages: Iterable[tuple[bytes, Iterable[str], datetime]],
               folder: str = "INBOX") -> None:
        """APPEND (raw, flags, internal date) as history a mailbox held before mailrouter came."""
        client = self.imap(user)
        try:
            for raw, flags, when in messages:
                client.append(folder, raw, tuple(flags), when)
        finally:
            client.logout()

    def change_uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        """Give `folder` a new UIDVALIDITY (as after a server migration); returns it."""
        assert self.dovecot is not None
        client = self.imap(user)
        try:
            old = int(client.folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"])
        finally:
            client.logout()
        subprocess.run(["doveadm", "-c", str(self.dovecot.config_path), "mailbox", "update", "-u", user,
                        "--uid-validity", str(old + 1), folder], check=True, capture_output=True)
        return old + 1

    def fetch_all(self, user: str, folder: str = "INBOX", missing_ok: bool = False) -> list[bytes]:
        """Raw messages in `folder` (server-side name), in UID order, without setting \\Seen.

        `missing_ok`: a folder the daemon has not created yet holds nothing (for polling)."""
        client = self.imap(user)
        try:
            if missing_ok and not client.folder_exists(folder):
                return []
            client.select_folder(folder, readonly=True)
            uids = client.search(["ALL"])
            data = client.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
            # a message the daemon expunges while we read comes back as BODY[] NIL: it is in its next folder
            return [data[uid][b"BODY[]"] for uid in sorted(data) if data[uid].get(b"BODY[]") is not None]
        finally:
            client.logout()

    def folders(self, user: str) -> list[str]:
        """Server-side folder names, decoded from modified UTF-7."""
        client = self.imap(user)
        try:
            return [name for _flags, _sep, name in client.list_folders()]
        finally:
            client.logout()
