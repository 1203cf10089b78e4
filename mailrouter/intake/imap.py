"""The one adapter between mailrouter and an IMAP server (over imapclient).

Everything server-specific lives here: MOVE vs COPY+EXPUNGE, keywords allowed or not, IDLE
vs polling, hierarchy separator and namespace prefix. Callers use "/"-separated logical
folder names and catch the `ImapError` hierarchy; imapclient/socket/ssl errors never leak.
"""
from __future__ import annotations

import contextlib
import ipaddress
import logging
import re
import select
import ssl
import threading
import time
from datetime import date, datetime
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

import imapclient
from imapclient import exceptions as imap_exc
from imapclient.util import to_unicode

from mailrouter.config.schema import ServerConfig, TlsMode
from mailrouter.intake.firststart import Found
from mailrouter.intake.wake import Waker

if TYPE_CHECKING:  # health.py reads this module's error types: no import at run time
    from mailrouter.intake.health import Link

log = logging.getLogger("mailrouter.imap")

CLIENT_NAME = "mailrouter"
SEEN = rb"\Seen"
DELETED = rb"\Deleted"
# RFC 3501 flag-keyword atoms; narrower on purpose (no specials, no 8-bit).
_KEYWORD = re.compile(r"^[A-Za-z0-9$_.:+\-]{1,64}$")
_NEWS = (b"EXISTS", b"RECENT")



def _client_version() -> str:
    try:
        from importlib.metadata import version

        return version("mailrouter")
    except Exception:  # not installed (running from a checkout)
        return "0"


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    tls: TlsMode
    user: str
    password: str
    inbox: str = "INBOX"
    ca_file: str | None = None
    timeout: float = 60.0
    poll_interval: float = 30.0  # NOOP period when the server lacks IDLE (or use_idle is off)
    use_idle: bool = True  # False: poll even when IDLE is offered (fast-poll mode, broken IDLE)
    auth: str = "password"  # or "xoauth2": `password` then holds an OAuth2 access token
    idle_renew: float = 540.0  # re-issue IDLE this often (RFC 2177: before 29 minutes)
    allow_plaintext: bool = False  # tls="none" off loopback needs this explicitly

    def __post_init__(self) -> None:
        if self.tls not in ("implicit", "starttls", "none"):
            raise ValueError(f'tls must be "implicit", "starttls" or "none", not {self.tls!r}')

    def __repr__(self) -> str:  # keep the password out of logs and tracebacks
        return (
            f"ImapSettings(host={self.host!r}, port={self.port}, tls={self.tls!r}, "
            f"user={self.user!r})"
        )


def settings_for(server: ServerConfig, *, poll_interval: float, inbox: str = "INBOX",
                 use_idle: bool = True, idle_renew: float = 540.0) -> ImapSettings:
    """The one place a configured server becomes a login: shared mailboxes and reply sources.
    The secret is read here, when a session is about to be opened, not when config is read."""
    return ImapSettings(host=server.host, port=server.port, tls=server.tls, user=server.user,
                        password=server.credentials.get(), auth=server.credentials.kind,
                        inbox=inbox, ca_file=server.ca_file, timeout=server.timeout,
                        poll_interval=poll_interval, use_idle=use_idle, idle_renew=idle_renew)


class ImapError(Exception):
    """Anything that went wrong talking IMAP."""


class ImapConnectionLost(ImapError):
    """Network trouble, timeout or server hang-up: reconnect and retry later."""


class ImapAuthError(ImapError):
    """The server refused the credentials: retrying will not help."""


class ImapTlsError(ImapError):
    """TLS could not be set up or the certificate did not verify: a configuration problem."""


class ImapCommandError(ImapError):
    """The server answered NO or BAD to a command."""


class ImapThrottled(ImapError):
    """The provider asks us to slow down (Microsoft 365, Gmail, NetEase): back off for minutes."""


# How providers say "too many requests": RFC 5530 response codes and free text.
_THROTTLED = re.compile(r"\[(THROTTLED|LIMIT|UNAVAILABLE|OVERQUOTA)\]|throttl|too many (connections|requests|"
                        r"simultaneous)|rate limit|try again later", re.IGNORECASE)


def _command_error(action: str, exc: Exception) -> ImapError:
    if _THROTTLED.search(str(exc)):
        return ImapThrottled(f"{action}: server is throttling: {exc}")
    return ImapCommandError(f"{action}: {exc}")


@contextlib.contextmanager
def _translated(action: str) -> Iterator[None]:
    """Map imapclient/socket/ssl exceptions onto the ImapError hierarchy at this boundary."""
    try:
        yield
    except ImapError:
        raise
    except imap_exc.LoginError as exc:
        if _THROTTLED.search(str(exc)):  # "too many connections" arrives as a failed login
            raise ImapThrottled(f"{action}: server is throttling: {exc}") from exc
        raise ImapAuthError(f"{action}: login refused: {exc}") from exc
    except imap_exc.IMAPClientAbortError as exc:
        raise ImapConnectionLost(f"{action}: connection lost: {exc}") from exc
    except (ssl.SSLCertVerificationError, ssl.CertificateError) as exc:
        raise ImapTlsError(f"{action}: certificate not trusted: {exc}") from exc
    except ssl.SSLError as exc:
        raise ImapTlsError(f"{action}: TLS failed: {exc}") from exc
    except OSError as exc:  # includes socket.timeout / TimeoutError
        raise ImapConnectionLost(f"{action}: {exc.__class__.__name__}: {exc}") from exc
    except imap_exc.IMAPClientError as exc:
        raise _command_error(action, exc) from exc


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _tls_context(settings: ImapSettings) -> ssl.SSLContext | None:
    if settings.tls == "none":
        if not (settings.allow_plaintext or _is_loopback(settings.host)):
            raise ImapTlsError(
                f"refusing to send the password unencrypted to {settings.host}: use tls = "
                '"implicit" or "starttls" (or set allow_plaintext for a trusted network)'
            )
        return None
    return ssl.create_default_context(cafile=settings.ca_file)  # verifies host and chain


def parse_uid_set(text: bytes) -> set[int]:
    """'1:3,7' -> {1, 2, 3, 7} (a COPYUID source set)."""
    uids: set[int] = set()
    if not re.fullmatch(rb"[0-9]+(:[0-9]+)?(,[0-9]+(:[0-9]+)?)*", text):
        raise ImapCommandError(f"bad UID set from server: {text!r}")
    for part in text.decode().split(","):
        lo, _, hi = part.partition(":")
        a, b = int(lo), int(hi or lo)
        uids.update(range(min(a, b), max(a, b) + 1))
    return uids


class FolderNames:
    """Logical "/"-separated names <-> server names; the only place that knows the namespace."""

    def __init__(self, prefix: str, separator: str | None) -> None:
        self.prefix = prefix
        self.separator = separator or "/"  # None: flat server; nesting fails at CREATE

    def server_name(self, logical: str) -> str:
        if logical.upper() == "INBOX":
            return "INBOX"
        parts = logical.strip("/").split("/")
        if self.separator != "/" and any(self.separator in p for p in parts):
            raise ValueError(
                f"folder {logical!r}: a part contains the server's separator {self.separator!r}"
            )
        return self.prefix + self.separator.join(parts)

    def logical_name(self, server_name: str) -> str:
        """The inverse of server_name: "INBOX.Sent" -> "Sent" on an INBOX. server."""
        if server_name.upper() == "INBOX":
            return "INBOX"
        name = server_name[len(self.prefix):] if self.prefix and server_name.startswith(self.prefix) else server_name
        return name.replace(self.separator, "/") if self.separator else name

    def with_parents(self, logical: str) -> list[str]:
        """'Routed/zhang' -> server names of 'Routed' and 'Routed/zhang', parents first."""
        parts = logical.strip("/").split("/")
        return [self.server_name("/".join(parts[: i + 1])) for i in range(len(parts))]


class Mailbox:
    """A logged-in IMAP session on the shared inbox; not thread-safe (one per worker)."""

    def __init__(self, client: imapclient.IMAPClient, settings: ImapSettings) -> None:
        self._client = client
        self.settings = settings
        with _translated("CAPABILITY"):
            self.capabilities = frozenset(to_unicode(c).upper() for c in client.capabilities())
        self.names = self._folder_names()
        self._custom_keywords = False
        self._selected = False
        self._known_folders: set[str] = set()  # server names seen or created this session
        self._idle_since: float | None = None  # monotonic time IDLE began; None when not idling
        self._slot: Slot | None = None  # our place under CONNECTION_LIMITS

    # -- connecting

    @classmethod
    def connect(cls, settings: ImapSettings, quiet: bool = False, waker: Waker | None = None,
                stop: threading.Event | None = None) -> Mailbox:
        """Connect, (STARTTLS), log in, and introduce ourselves with ID when offered. `quiet`:
        a routine reconnect (a turn under the connection limit) logs at DEBUG, not one line per turn.
        `waker` is rung when another session waits for this one's slot (slot_wanted); `stop`
        set (with CONNECTION_LIMITS.wake_waiters) ends a wait for a slot."""
        context = _tls_context(settings)
        action = f"connect to {settings.host}:{settings.port}"
        slot = CONNECTION_LIMITS.acquire(settings.host, settings.port, settings.timeout,
                                         ring=waker.poke if waker else None, stop=stop)
        try:
            with _translated(action):
                client = imapclient.IMAPClient(
                    settings.host,
                    settings.port,
                    ssl=settings.tls == "implicit",
                    ssl_context=context,
                    timeout=settings.timeout,
                )
        except BaseException:
            CONNECTION_LIMITS.release(slot)
            raise
        try:
            with _translated(action):
                if settings.tls == "starttls":
                    cls._starttls(client, context)
                if settings.auth == "xoauth2":  # Gmail, Microsoft 365
                    client.oauth2_login(settings.user, settings.password)
                else:
                    client.login(settings.user, settings.password)
                cls._send_id(client)
            mailbox = cls(client, settings)
            mailbox._slot = slot
        except BaseException:
            _close_quietly(client)
            CONNECTION_LIMITS.release(slot)
            raise
        log.log(logging.DEBUG if quiet else logging.INFO, "logged in to %s:%s as %s",
                settings.host, settings.port, settings.user)
        return mailbox

    @staticmethod
    def _starttls(client: imapclient.IMAPClient, context: ssl.SSLContext | None) -> None:
        if not client.has_capability("STARTTLS"):  # never fall back to plaintext
            raise ImapTlsError("server does not offer STARTTLS; use tls = \"implicit\"?")
        client.starttls(context)

    @staticmethod
    def _send_id(client: imapclient.IMAPClient) -> None:
        # Some servers (NetEase 163/126) refuse SELECT from clients that did not send ID.
        if client.has_capability("ID"):
            client.id_({"name": CLIENT_NAME, "version": _client_version()})

    def _folder_names(self) -> FolderNames:
        with _translated("NAMESPACE"):
            if "NAMESPACE" in self.capabilities:
                personal = self._client.namespace().personal
                if personal:
                    prefix, separator = personal[0]
                    sep = to_unicode(separator) if separator else None
                    return FolderNames(to_unicode(prefix), sep)
            # No NAMESPACE: LIST "" "" reports the separator of the root.
            listing = self._client.list_folders("", "")
            separator = listing[0][1] if listing else None
            return FolderNames("", to_unicode(separator) if separator else None)

    # -- capabilities

    @property
    def has_move(self) -> bool:
        return "MOVE" in self.capabilities

    @property
    def has_uidplus(self) -> bool:
        return "UIDPLUS" in self.capabilities

    @property
    def has_idle(self) -> bool:
        return "IDLE" in self.capabilities

    @property
    def uses_idle(self) -> bool:
        """IDLE is offered and not switched off in config."""
        return self.has_idle and self.settings.use_idle

    @property
    def custom_keywords(self) -> bool:
        """Whether the selected inbox lets us create keywords (PERMANENTFLAGS has \\*)."""
        return self._custom_keywords

    # -- reading

    def select_inbox(self) -> int:
        """SELECT the shared inbox (read-write); returns its UIDVALIDITY."""
        return self.select_folder(self.settings.inbox)

    def select_folder(self, logical: str, readonly: bool = False) -> int:
        """SELECT (or EXAMINE, read-only) a logical folder; returns its UIDVALIDITY."""
        self._end_idle()
        with _translated(f"SELECT {logical}"):
            info = self._client.select_folder(self.names.server_name(logical), readonly=readonly)
        # Without PERMANENTFLAGS we cannot know keywords stick; assume they don't.
        self._custom_keywords = rb"\*" in info.get(b"PERMANENTFLAGS", ())
        self._selected = True
        return int(info[b"UIDVALIDITY"])

    def folders_with_flags(self) -> list[tuple[frozenset[str], str]]:
        """(flags, logical "/"-separated name) of every folder, e.g. to find the one marked \\Sent."""
        self._end_idle()
        with _translated("LIST"):
            listing = self._client.list_folders()
        return [(frozenset(to_unicode(f) for f in flags), self.names.logical_name(to_unicode(name)))
                for flags, _sep, name in listing]

    def uids_after(self, last_uid: int) -> list[int]:
        """UIDs above `last_uid` in the selected folder (for reading a Sent folder onwards)."""
        self._end_idle()
        with _translated("UID SEARCH"):
            return sorted(u for u in self._client.search(["UID", f"{last_uid + 1}:*"]) if u > last_uid)

    def count(self, logical: str) -> int:
        """Messages in a folder, without selecting it (STATUS)."""
        self._end_idle()
        with _translated(f"STATUS {logical}"):
            return int(self._client.folder_status(self.names.server_name(logical), ["MESSAGES"])[b"MESSAGES"])

    def uids_since(self, since: date | None) -> list[int]:
        """UIDs in the selected folder that arrived on or after `since` (all when None)."""
        self._end_idle()
        with _translated("UID SEARCH"):
            return sorted(self._client.search(["SINCE", since] if since else ["ALL"]))

    def search_header(self, name: str, value: str) -> list[int]:
        """UIDs in the selected folder whose header `name` contains `value`."""
        self._end_idle()
        with _translated("UID SEARCH HEADER"):
            return sorted(self._client.search(["HEADER", name, value]))

    def fetch_headers(self, uids: Sequence[int]) -> Iterator[tuple[int, bytes, datetime | None]]:
        """(uid, header bytes, INTERNALDATE) without setting \\Seen."""
        self._end_idle()
        ordered = sorted(uids)
        for start in range(0, len(ordered), 500):
            chunk = ordered[start:start + 500]
            with _translated("UID FETCH"):
                data = self._client.fetch(chunk, ["BODY.PEEK[HEADER]", "INTERNALDATE"])
            for uid in chunk:
                item = data.get(uid, {})
                if b"BODY[HEADER]" in item:
                    yield uid, bytes(item[b"BODY[HEADER]"]), _aware(item.get(b"INTERNALDATE"))

    def flags_and_dates(self, uids: Sequence[int]) -> list[Found]:
        """FLAGS and INTERNALDATE of `uids` (no bodies): what a first start decides on."""
        self._end_idle()
        ordered, found = sorted(uids), list[Found]()
        for start in range(0, len(ordered), 2000):
            with _translated("UID FETCH FLAGS"):
                data = self._client.fetch(ordered[start:start + 2000], ["FLAGS", "INTERNALDATE"])
            found.extend(Found(uid=uid, flags=frozenset(to_unicode(f) for f in item.get(b"FLAGS", ())),
                               internal_date=_aware(item.get(b"INTERNALDATE")))
                         for uid, item in sorted(data.items()))
        return found

    def unprocessed_uids(self) -> list[int]:
        """UIDs not flagged \\Deleted; the caller filters out the ones its database knows."""
        self._end_idle()
        # Dovecot answers SEARCH from the mailbox as of the previous command; a NOOP first
        # makes mail that arrived since then visible now, not a poll later.
        self.noop()
        with _translated("UID SEARCH"):
            return sorted(int(u) for u in self._client.search(["UNDELETED"]))

    def new_uids_after(self, last: int) -> list[int]:
        """Undeleted UIDs above `last`: new mail, at a cost independent of the folder's size."""
        self._end_idle()
        self.noop()  # as in unprocessed_uids: make mail that arrived since the last command visible
        with _translated("UID SEARCH UID"):
            found = self._client.search(["UID", f"{last + 1}:*", "UNDELETED"])
        # "n:*" always includes the highest UID, even when it is below n (RFC 3501 6.4.8)
        return sorted(int(u) for u in found if int(u) > last)

    def present(self, uids: Sequence[int]) -> set[int]:
        """Which of `uids` are still in the selected folder (not expunged, not \\Deleted)."""
        self._end_idle()
        ordered, found = sorted(uids), set[int]()
        for start in range(0, len(ordered), 500):
            with _translated("UID SEARCH UID"):
                found.update(int(u) for u in self._client.search(
                    ["UID", ",".join(map(str, ordered[start:start + 500])), "UNDELETED"]))
        return found

    def fetch(self, uids: Sequence[int], batch: int = 200) -> Iterator[tuple[int, bytes]]:
        """(uid, raw message) in UID order; BODY.PEEK so \\Seen stays as the reps left it."""
        self._end_idle()
        ordered = sorted(uids)
        for start in range(0, len(ordered), batch):
            chunk = ordered[start : start + batch]
            with _translated("UID FETCH"):
                data = self._client.fetch(chunk, ["BODY.PEEK[]"])
            for uid in chunk:
                body = data.get(uid, {}).get(b"BODY[]")
                if body is not None:  # absent: expunged by someone else meanwhile
                    yield uid, bytes(body)

    def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        """uid -> RFC822.SIZE, so big messages can take the chunked path (absent: expunged)."""
        self._end_idle()
        ordered, found = sorted(uids), {}
        for start in range(0, len(ordered), 500):
            with _translated("UID FETCH RFC822.SIZE"):
                data = self._client.fetch(ordered[start:start + 500], ["RFC822.SIZE"])
            found.update({uid: int(item[b"RFC822.SIZE"]) for uid, item in data.items()
                          if b"RFC822.SIZE" in item})
        return found

    def fetch_chunks(self, uid: int, chunk: int = 1 << 20) -> Iterator[bytes]:
        """One message's bytes in pieces (`BODY.PEEK[]<offset.length>`), so it is never in
        memory whole; nothing when it was expunged. Ends with the first short piece."""
        offset = 0
        while True:
            self._end_idle()
            with _translated("UID FETCH partial"):
                item = self._client.fetch([uid], [f"BODY.PEEK[]<{offset}.{chunk}>"]).get(uid, {})
            piece = next((bytes(v) for k, v in item.items() if k.startswith(b"BODY[]")), None)
            if not piece:
                return
            yield piece
            if len(piece) < chunk:
                return
            offset += len(piece)

    # -- folders and filing

    def ensure_folders(self, names: Iterable[str]) -> None:
        """Create (and subscribe) the logical folders and their parents that don't exist yet."""
        self._end_idle()
        wanted = [n for logical in names for n in self.names.with_parents(logical)]
        if set(wanted) <= self._known_folders:
            return  # called before every filing: skip the LIST round trip
        with _translated("LIST"):
            self._known_folders |= {to_unicode(n) for _f, _s, n in self._client.list_folders()}
        for server_name in wanted:
            if server_name not in self._known_folders:
                self._create(server_name)
                self._known_folders.add(server_name)

    def _create(self, server_name: str) -> None:
        with _translated(f"CREATE {server_name}"):
            try:
                self._client.create_folder(server_name)
            except imap_exc.IMAPClientError:
                # Another client may have created it a moment ago; only that is fine.
                if not self._client.folder_exists(server_name):
                    raise
            self._client.subscribe_folder(server_name)  # reps' mail clients show subscribed only
        log.info("created folder %s", server_name)

    def file(
        self, uids: Sequence[int], folder: str, keywords: Iterable[str] = (), seen: bool = True
    ) -> None:
        """Flag, then move `uids` out of the inbox into logical `folder`, in one batch.

        Never deletes anything except exactly `uids` after a verified copy; without UIDPLUS
        the originals stay behind flagged \\Deleted \\Seen (a bare EXPUNGE on a shared mailbox
        would also remove other people's \\Deleted mail).
        """
        if not uids:
            return
        self._end_idle()
        uid_list = sorted(uids)
        target = self.names.server_name(folder)
        self._store(uid_list, self._flags(keywords, seen))
        if self.has_move:
            with _translated(f"UID MOVE to {target}"):
                self._client.move(uid_list, target)
            return
        copied = self._confirmed(uid_list, self._copy(uid_list, target))
        if copied:
            self._store(copied, [DELETED])
            with _translated("UID EXPUNGE"):
                self._client.uid_expunge(copied)
        else:
            self._store(uid_list, [DELETED, SEEN])

    def _flags(self, keywords: Iterable[str], seen: bool) -> list[bytes]:
        flags = [SEEN] if seen else []
        for keyword in keywords:
            if not _KEYWORD.match(keyword):
                raise ValueError(f"not a valid IMAP keyword: {keyword!r}")
            if self._custom_keywords:  # otherwise the folder alone records the filing
                flags.append(keyword.encode("ascii"))
        return flags

    def _store(self, uids: list[int], flags: list[bytes]) -> None:
        if flags:
            with _translated("UID STORE"):
                self._client.add_flags(uids, flags, silent=True)

    def _copy(self, uids: list[int], target: str) -> bytes | None:
        """UID COPY (raises unless OK); returns the COPYUID code data, if the server sent one."""
        # imapclient returns nothing useful for UID COPY; imaplib files response codes of
        # tagged replies under their name and never clears them, so empty the slot first.
        codes = self._client._imap.untagged_responses
        codes.pop("COPYUID", None)
        with _translated(f"UID COPY to {target}"):
            self._client.copy(uids, target)
        found = codes.pop("COPYUID", None)
        return bytes(found[-1]) if found else None

    def _confirmed(self, uids: list[int], copyuid: bytes | None) -> list[int]:
        """The UIDs we may expunge: with UIDPLUS, those COPYUID says were copied; else none."""
        if not self.has_uidplus:
            return []
        if copyuid is None:  # allowed by RFC 4315 (no persistent UIDs): play safe
            log.warning("COPY gave no COPYUID; leaving originals flagged \\Deleted")
            return []
        fields = copyuid.split()
        source = parse_uid_set(fields[1]) if len(fields) == 3 else set()
        # A subset is fine (someone expunged the rest meanwhile); strangers are not.
        if not source or not source <= set(uids):
            raise ImapCommandError(f"COPYUID {copyuid!r} does not match the UIDs copied")
        return sorted(source)

    # -- waiting

    def wait_for_news(self, timeout: float, waker: Waker | None = None) -> bool:
        """Block up to `timeout` s, or until `waker` is rung; True when the inbox got new mail
        (IDLE, else NOOP polling).

        IDLE stays open across calls, so ending a wait early (a stop, a reload) costs no round
        trips; it is renewed every `idle_renew` seconds, and ended by any other command.
        """
        if not self._selected:
            raise ImapError("wait_for_news needs select_inbox() first")
        if self.uses_idle:
            return self._idle(timeout, waker)
        return self._poll(timeout, waker)

    def _idle(self, timeout: float, waker: Waker | None) -> bool:
        deadline = time.monotonic() + timeout
        with _translated("IDLE"):
            if self._idle_since is None:
                # Mail that arrived since the last command may not be announced by IDLE
                # (seen with Dovecot): ask once before idling.
                if _has_news(self._client.noop()[1]):
                    return True
                self._client.idle()
                self._idle_since = time.monotonic()
            # however long the caller waits, IDLE is renewed before the server's cut-off
            deadline = min(deadline, self._idle_since + self.settings.idle_renew)
            while (remaining := deadline - time.monotonic()) > 0:
                server, rung = self._readable(remaining, waker)
                if server:
                    responses = self._client.idle_check(timeout=0)
                    if _has_news(responses):
                        self._end_idle()
                        return True
                    if not responses:
                        # readable with nothing parsed: EOF (idle_check swallows it), TLS bytes
                        # that carry no data, or a line left in a buffer; DONE reads what is
                        # there (and raises if the server is gone)
                        return self._end_idle()
                if rung:
                    return False
            if time.monotonic() - self._idle_since >= self.settings.idle_renew:
                # DONE waits for the tagged OK with the normal socket timeout: a server that
                # dropped IDLE silently shows up here as a timeout -> ImapConnectionLost.
                return self._end_idle()
        return False

    def _readable(self, timeout: float, waker: Waker | None) -> tuple[bool, bool]:
        """(the server sent something, the waker was rung), waiting up to `timeout` s for either."""
        sock = self._client.socket()
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True, False  # decrypted already, so the kernel no longer shows it as readable
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        if waker is not None:
            poller.register(waker.fileno(), select.POLLIN)
        ready = {fd for fd, _event in poller.poll(timeout * 1000)}  # POLLHUP/POLLERR count as readable
        rung = waker is not None and waker.fileno() in ready and waker.clear()
        return sock.fileno() in ready, rung

    def _end_idle(self) -> bool:
        """Leave IDLE before any other command; True if its closing responses carried news."""
        if self._idle_since is None:
            return False
        self._idle_since = None
        with _translated("DONE"):
            _text, responses = self._client.idle_done()
        return _has_news(responses)

    def _poll(self, timeout: float, waker: Waker | None) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if _has_news(self.noop()):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            pause = min(self.settings.poll_interval, remaining)
            if waker is None:
                time.sleep(pause)
            elif waker.wait(pause):
                return False

    def noop(self) -> list[tuple[object, ...]]:
        """NOOP; returns the untagged responses (keeps the session alive, reports new mail)."""
        self._end_idle()
        with _translated("NOOP"):
            _text, responses = self._client.noop()
        return list(responses)

    def slot_wanted(self) -> bool:
        """Another session waits for this one's place under daemon.max_connections_per_server."""
        return CONNECTION_LIMITS.wanted(self._slot)

    # -- closing

    def logout(self) -> None:
        """Log out; never raises (used on shutdown and after errors)."""
        try:
            self._end_idle()  # LOGOUT inside IDLE would wait for a reply that never comes
        except ImapError:
            pass
        _close_quietly(self._client)
        slot, self._slot = self._slot, None  # release once, however often logout is called
        CONNECTION_LIMITS.release(slot)

    close = logout

    def __enter__(self) -> Mailbox:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.logout()


DISK_REMINDER = 600.0  # seconds before the same disk trouble is logged again


def keep_serving(name: str, serve: Callable[[], None], stop: threading.Event,
                 on_lost: Callable[[], None] = lambda: None,
                 explain: Callable[[Exception], str | None] = lambda exc: None,
                 progress: Callable[[], int] = lambda: 0, *, link: Link) -> None:
    """Run `serve` until `stop` is set, reconnecting with backoff (1 s doubling to 5 min).

    Connection trouble means reconnect, never exit, and `link` (intake/health.py) says it once
    per outage; a refused login waits longer (1 min doubling to 10), since hammering a server
    with a wrong password can lock the account or ban our address for every mailbox on it; a
    throttling provider gets minutes of
    quiet (1 doubling to 15); an error `explain` describes in a line (a full or read-only
    disk) is logged as that line, once per outage (again after 10 min if it lasts), and retried every 5 s to 1 min; any
    other error is logged in full and retried like connection trouble, since every round
    starts again from the database and the server. `progress` counts completed rounds: a
    session that completed one resets the backoff, so short good sessions never add up.
    """
    link.serving()
    backoff = Backoff()
    told, told_at = -1, 0.0  # the round count when a disk line was last logged, and when: one per outage, a reminder every 10 min
    if link.refused():
        link.pause(stop, backoff.refused())  # the start-up check was just refused: no second try at once
    while not stop.is_set():
        started, rounds = time.monotonic(), progress()
        try:
            serve()
            return
        except SlotsBusy as exc:
            # our own limit, and the holders hand their slots on after a round: ask again now
            delay = 0.0
            log.debug("%s: waiting for a session slot: %s", name, exc)
        except ImapThrottled as exc:
            delay = backoff.throttled()
            log.warning("%s: throttled by the server, quiet for %.0fs: %s", name, delay, exc)
            on_lost()
        except (ImapAuthError, ImapTlsError) as exc:
            delay = backoff.refused()
            link.failed(exc, delay)
            on_lost()
        except ImapError as exc:
            delay = backoff.failed()
            link.failed(exc, delay)
            on_lost()
        except Exception as exc:
            trouble = explain(exc)
            if trouble is None:
                delay = backoff.failed()
                log.exception("%s: unexpected error, retrying in %.0fs", name, delay)
            else:
                delay = backoff.disk()
                # one outage, one line: a failing disk shows several faces in turn (EIO on the
                # database, then EROFS on the spool) and the first already said what to do
                outage = progress()
                repeat = outage == told and time.monotonic() - told_at < DISK_REMINDER
                log.log(logging.DEBUG if repeat else logging.ERROR,
                        "%s: %s; nothing is forwarded twice, retrying in %.0fs", name, trouble, delay)
                if not repeat:
                    told, told_at = outage, time.monotonic()
        backoff.after_session(progress() > rounds, time.monotonic() - started)
        link.pause(stop, delay)


class SlotsBusy(ImapThrottled):
    """All of this process's sessions to the server are taken (daemon.max_connections_per_server):
    our own limit, not the server's, so the caller asks again at once instead of backing off."""


class _Server:
    """One server's slots in use, the sessions waiting for one (first come first served), and
    how to ring each holder's waker when someone starts waiting. What is free follows from the
    limit in force, so a new limit (a daemon started again in one process) counts from what
    is held, never from an earlier limit."""

    def __init__(self) -> None:
        self.held = 0
        self.queue: list[object] = []
        self.rings: dict[object, Callable[[], None]] = {}


@dataclass(frozen=True, eq=False)
class Slot:
    """One session's place on a server; released once."""
    key: tuple[str, int]


class ConnectionLimits:
    """At most N sessions per server from this process: providers refuse (or throttle) more,
    and one busy mailbox must not take the slots another needs. Process-wide, set at start.

    Waiting is first come first served, and `wanted` tells a session that someone waits: an
    IDLE session holds its slot for hours, so with more mailboxes than slots the holders hand
    them on after a round (mailbox.py), and every mailbox gets its turn."""

    def __init__(self) -> None:
        self.limit: int | None = None
        self._servers: dict[tuple[str, int], _Server] = {}
        self._changed = threading.Condition()

    def acquire(self, host: str, port: int, timeout: float, ring: Callable[[], None] | None = None,
                stop: threading.Event | None = None) -> Slot | None:
        """Take a slot (waiting up to `timeout`); the slot to release, or None when unlimited.
        `ring` is called when another session starts waiting, so a holder in a long IDLE wait
        hands its slot on at once. `stop` set ends the wait (SlotsBusy), once wake_waiters()
        is called: at a stop, the sessions in line must not each log in for a last turn."""
        if self.limit is None:
            return None
        key = (host.lower(), port)
        ticket = object()
        deadline = time.monotonic() + timeout
        with self._changed:
            server = self._servers.setdefault(key, _Server())
            server.queue.append(ticket)
            if not self._room(server):
                for holder_ring in server.rings.values():
                    holder_ring()
            try:
                while not (self._room(server) and server.queue[0] is ticket):
                    if stop is not None and stop.is_set():
                        raise SlotsBusy(f"{host}:{port}: stopping while waiting for a session slot")
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise SlotsBusy(f"{host}:{port}: already {self.limit} connections from mailrouter "
                                        "(daemon.max_connections_per_server)")
                    self._changed.wait(left)
                server.held += 1
            finally:
                server.queue.remove(ticket)
                self._changed.notify_all()  # the next in line may be able to go now
            slot = Slot(key)
            if ring is not None:
                server.rings[slot] = ring
        return slot

    def _room(self, server: _Server) -> bool:
        return self.limit is None or server.held < self.limit

    def wake_waiters(self) -> None:
        """Let every session waiting for a slot look at its stop event again."""
        with self._changed:
            self._changed.notify_all()

    def release(self, slot: Slot | None) -> None:
        if slot is None:
            return
        with self._changed:
            server = self._servers[slot.key]
            server.held -= 1
            server.rings.pop(slot, None)
            self._changed.notify_all()

    def wanted(self, slot: Slot | None) -> bool:
        """Is a session waiting for a slot on this server? (Never, when unlimited.)"""
        if slot is None:
            return False
        with self._changed:
            return bool(self._servers[slot.key].queue)


CONNECTION_LIMITS = ConnectionLimits()


class Backoff:
    """Reconnect delays: trouble doubles from 1 s to 5 min; a refused login from 1 to 10 min;
    throttling from 1 to 15 min; a disk that refuses writes is tried again from 5 s doubling
    to 1 min (a cheap check)."""

    def __init__(self) -> None:
        self._trouble = 1.0
        self._throttle = 60.0
        self._disk = 5.0
        self._refused = 60.0

    def failed(self) -> float:
        delay, self._trouble = self._trouble, min(self._trouble * 2, 300.0)
        return delay

    def refused(self) -> float:
        delay, self._refused = self._refused, min(self._refused * 2, 600.0)
        return delay

    def throttled(self) -> float:
        delay, self._throttle = self._throttle, min(self._throttle * 2, 900.0)
        return delay

    def disk(self) -> float:
        delay, self._disk = self._disk, min(self._disk * 2, 60.0)
        return delay

    def after_session(self, completed_round: bool, seconds: float) -> None:
        """A session that completed a round worked: the next trouble starts from 1 s again.
        Throttling is about rate, so only a long session (5 min) forgives it."""
        if completed_round or seconds > 300:
            self._trouble, self._disk, self._refused = 1.0, 5.0, 60.0
        if seconds > 300:
            self._throttle = 60.0


def _aware(value: object) -> datetime | None:
    """imapclient gives INTERNALDATE as a naive local-time datetime unless told otherwise."""
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.astimezone()


def _has_news(responses: Iterable[tuple[object, ...]]) -> bool:
    return any(len(r) > 1 and r[1] in _NEWS for r in responses)


def _close_quietly(client: imapclient.IMAPClient) -> None:
    try:
        client.logout()
    except (imap_exc.IMAPClientError, OSError):
        with contextlib.suppress(Exception):
            client.shutdown()
