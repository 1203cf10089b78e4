"""A second real SMTP server for the integration tests: Exim 4 from Debian (`exim4-daemon-light`),
started from a throwaway directory in place of the bed's aiosmtpd relay, delivering into the bed's
Dovecot over LMTP.

Why Exim: it is Debian's default MTA and stricter than aiosmtpd where it matters to a forward.
Its DATA checks are those Debian's own exim4 configuration ships enabled
(/etc/exim4/conf.d/acl/40_exim4-config_check_data): a line over 998 octets and a header with
a malformed address are refused. Submission needs AUTH (PLAIN or LOGIN, as a provider's port 587
does; offered without TLS here, on loopback only), and 8BITMIME and SMTPUTF8 are offered.

Nothing is read from /etc/exim4 and no system service is touched: the daemon runs in the
foreground (`-bdf`) with its own config (`-C`), spool, logs and pid file under the bed's root,
on a free loopback port. Started by root, Exim gives up root at once for a `-C` file outside
its compiled-in trusted list ("exim user lost privilege for using -C option"), so the daemon,
reception and delivery all run as Debian-exim, which owns the spool and logs: that is enough
for a port above 1024 and a delivery over TCP.

A test makes Exim refuse one recipient at DATA, after the whole message was sent (the hardest
case for the client), with `refuse(address, 451 or 550)`, and lifts it with `accept(address)`.
"""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mailrouter.testing.testbed import HOST, TestBed, TestBedError, _greets, free_port, stop_group

INSTALL_HINT = "is Exim installed? run scripts/setup (exim4-daemon-light, its system service left disabled)"
EXIM_CANDIDATES = ("/usr/sbin/exim4", "/usr/sbin/exim")
EXIM_USER = "Debian-exim"
REFUSALS = {451: "defer", 550: "reject"}


def exim_program() -> str | None:
    return next((p for p in EXIM_CANDIDATES if os.access(p, os.X_OK)), None)


def exim_installed() -> bool:
    if exim_program() is None:
        return False
    try:
        pwd.getpwnam(EXIM_USER)
    except KeyError:
        return False
    return True


# Placeholders @ROOT@, @HOST@, @LMTP_PORT@, @RECIPIENTS@: Exim's own ${...} syntax rules out f-strings.
EXIM_CONF = r"""primary_hostname = exim.testbed.invalid
# No variables from the test run reach deliveries (and no warning about purging them).
keep_environment =
qualify_domain = example.com
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
local_interfaces = <; @HOST@
# No DNS, no ident: this machine has no resolver to ask, and a test must not wait on one.
host_lookup =
rfc1413_hosts =
# STARTTLS would need a certificate; AUTH is offered in clear over loopback instead.
tls_advertise_hosts =
auth_advertise_hosts = *
accept_8bitmime = true
smtputf8_advertise_hosts = *
message_size_limit = 32M
# Exim's default, spelt out: past 10 messages in one session it only queues the rest, for a queue
# runner (every 30 min on Debian; none here), instead of delivering them at once.
smtp_accept_queue_per_connection = 10
smtp_accept_max = 100
# MAIL commands one session may carry; then 421 and the connection closes (Exim's default: 1000).
smtp_accept_max_per_connection = @PER_CONNECTION@
log_selector = +received_recipients +subject +smtp_protocol_error +smtp_syntax_error +8bitmime \
               +smtp_confirmation -retry_defer
acl_smtp_rcpt = acl_check_rcpt
acl_smtp_data = acl_check_data

begin acl

acl_check_rcpt:
  deny    !authenticated = *
          message = 530 5.7.0 Authentication required
  deny    !recipients = @RECIPIENTS@
          message = 550 5.1.1 User unknown
  accept

acl_check_data:
  # Debian's default DATA checks (acl/40_exim4-config_check_data):
  deny    condition = ${if > {$max_received_linelength}{998}}
          message = maximum allowed line length is 998 octets, got $max_received_linelength
  deny    !verify = header_syntax
          message = header syntax
          log_message = header syntax ($acl_verify_message)
  # A test's refusal of one recipient (refuse()): the outbox sends one recipient per transaction.
  defer   condition = ${if exists{@ROOT@/defer/$recipients}}
          message = 451 4.3.0 Deferred for this recipient (exim test bed)
  deny    condition = ${if exists{@ROOT@/reject/$recipients}}
          message = 550 5.7.1 Refused for this recipient (exim test bed)
  accept

begin routers

dovecot:
  driver = accept
  transport = dovecot_lmtp

begin transports

dovecot_lmtp:
  driver = smtp
  protocol = lmtp
  hosts = @HOST@
  hosts_override
  port = @LMTP_PORT@
  allow_localhost
  hosts_avoid_tls = *

begin retry

*  *  F,1h,10s

begin authenticators

plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${if and{{match_address{$auth2}{@RECIPIENTS@}}\
                                 {eq{$auth3}{${readfile{@ROOT@/password}}}}}}
  server_set_id = $auth2

login:
  driver = plaintext
  public_name = LOGIN
  server_prompts = <| Username: | Password:
  server_condition = ${if and{{match_address{$auth1}{@RECIPIENTS@}}\
                                 {eq{$auth2}{${readfile{@ROOT@/password}}}}}}
  server_set_id = $auth1
"""


def exim_conf(*, root: Path, lmtp_port: int, recipients: Path, per_connection: int = 1000) -> str:
    """The whole runtime configuration; nothing is read from /etc/exim4.

    Deliveries of accepted mail go to Dovecot's LMTP at once (no queue runner is started): a
    message Exim cannot deliver stays on its queue or bounces, and shows in `mainlog` (`**`)."""
    return (EXIM_CONF.replace("@ROOT@", str(root)).replace("@HOST@", HOST)
            .replace("@LMTP_PORT@", str(lmtp_port)).replace("@RECIPIENTS@", str(recipients))
            .replace("@PER_CONNECTION@", str(per_connection)))


class Exim:
    """One `exim -bdf` process group with its own config, spool, logs and pid file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config_path = root / "exim.conf"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, port: int) -> None:
        program = exim_program()
        if program is None or not exim_installed():
            raise TestBedError(f"exim4 or the {EXIM_USER} user not found; {INSTALL_HINT}")
        stderr = open(self.root / "exim.stderr", "wb")
        with stderr:
            # Own session: stop() signals the whole group, reception and delivery children included.
            self.process = subprocess.Popen(
                [program, "-C", str(self.config_path), "-bdf", "-oX", str(port),
                 "-oP", str(self.root / "exim.pid")],
                stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr, start_new_session=True,
            )

    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def mainlog(self) -> str:
        path = self.root / "log" / "mainlog"
        return path.read_text(errors="replace") if path.exists() else ""

    def log_tail(self, lines: int = 20) -> str:
        text = ""
        for path in (self.root / "exim.stderr", self.root / "log" / "paniclog", self.root / "log" / "mainlog"):
            if path.exists():
                text += "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"
        return text.strip() or "(no log output)"

    def queue(self) -> str:
        """`exim -bp`: the messages Exim holds (deferred or frozen); empty when all are delivered."""
        program = exim_program() or "exim4"
        return subprocess.run([program, "-C", str(self.config_path), "-bp"], capture_output=True,
                              text=True, check=False).stdout.strip()

    def stop(self) -> None:
        proc, self.process = self.process, None
        stop_group(proc, grace=5)


class EximBed(TestBed):
    """The Dovecot bed with Exim as its SMTP server (AUTH required, with the bed's users and
    password). `smtp_port` is Exim's; mail a test delivers directly still goes over LMTP."""

    def __init__(self, root: str | os.PathLike[str], addresses: Iterable[str], *,
                 messages_per_connection: int = 1000, **options: Any) -> None:
        super().__init__(root, addresses, **options)
        self.messages_per_connection = messages_per_connection
        self.exim: Exim | None = None

    def _start_smtp(self) -> None:
        self.smtp_port = free_port()
        exim_dir = self.root / "exim"
        self._prepare_exim_dirs(exim_dir)
        self.exim = Exim(exim_dir)
        self.exim.config_path.write_text(
            exim_conf(root=exim_dir, lmtp_port=self.lmtp_port, recipients=exim_dir / "recipients",
                      per_connection=self.messages_per_connection))
        self.exim.start(self.smtp_port)
        self._wait_exim()

    def _prepare_exim_dirs(self, exim_dir: Path) -> None:
        """Root-owned config and lists (read by Debian-exim); Debian-exim-owned spool and logs."""
        exim_user = pwd.getpwnam(EXIM_USER)
        if exim_dir.exists():  # a retried start: a fresh spool, not the last try's
            shutil.rmtree(exim_dir)
        exim_dir.mkdir(parents=True)
        exim_dir.chmod(0o755)
        for name in ("spool", "log", "defer", "reject"):
            (exim_dir / name).mkdir()
            os.chown(exim_dir / name, exim_user.pw_uid, exim_user.pw_gid)
        (exim_dir / "recipients").write_text("".join(f"{a}\n" for a in self.addresses))
        password = exim_dir / "password"
        password.write_text(self.password)
        os.chown(password, 0, exim_user.pw_gid)
        password.chmod(0o640)

    def _wait_exim(self) -> None:
        """Until Exim greets; fail early with its log if it exits (bad config, port taken)."""
        assert self.exim is not None
        deadline = time.monotonic() + 30
        while not _greets(self.smtp_port, b"220"):
            if self.exim.exited() or time.monotonic() > deadline:
                state = "exited" if self.exim.exited() else "gave no greeting"
                raise TestBedError(f"Exim {state} (port {self.smtp_port}); {INSTALL_HINT}\n"
                                   f"--- log tail ({self.exim.root}) ---\n{self.exim.log_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.exim is not None:
            self.exim.stop()
            self.exim = None
        super().stop()

    # -- helpers for tests

    def refuse(self, address: str, code: int) -> None:
        """Answer DATA for `address` with 451 (try again later) or 550 (never) until accept()."""
        assert self.exim is not None, "Exim bed not started"
        marker = self.exim.root / REFUSALS[code] / address.lower()
        marker.touch()

    def accept(self, address: str) -> None:
        assert self.exim is not None, "Exim bed not started"
        for kind in REFUSALS.values():
            (self.exim.root / kind / address.lower()).unlink(missing_ok=True)

    def smtp_fail_next(self, count: int = 1, code: int = 451) -> None:
        raise TestBedError("the Exim bed refuses by recipient: use refuse(address, code) and accept(address)")

    @property
    def smtp_mail_options(self) -> list[list[str]]:
        raise TestBedError("the Exim bed does not record MAIL FROM parameters: read mainlog() (M8S=1)")

    def mainlog(self) -> str:
        assert self.exim is not None, "Exim bed not started"
        return self.exim.mainlog()

    def queue(self) -> str:
        assert self.exim is not None, "Exim bed not started"
        return self.exim.queue()
