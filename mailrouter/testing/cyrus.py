"""A second real IMAP server for the integration tests: Cyrus IMAP from Debian's `cyrus-imapd`,
started from a throwaway directory with the same public surface as the Dovecot TestBed.

Why Cyrus and not Courier: Courier's imapd authenticates through authdaemond on a socket whose
path is compiled in (/run/courier/authdaemon), with its config in /etc/courier, so a test could
not isolate it. Cyrus takes every path from `-C imapd.conf` / `-M cyrus.conf`, and its users and
passwords here live in a sasldb file inside the bed's root (real SASL checks: a wrong password
fails). Configured with `altnamespace: no` and `unixhierarchysep: no`, Cyrus shows the layout
Courier made common: personal folders under `INBOX.` with `.` as the separator.

Mail arrives over LMTP (Cyrus's lmtpd, pre-authorised, on a loopback port), through the same
aiosmtpd relay the Dovecot bed uses, so forwards the daemon sends land in the reps' mailboxes on
Cyrus. IDLE is served by imapd polling every second (`imapidlepoll`), without the idled helper.

Runs as root: Cyrus's master drops to the `cyrus` user, which owns the spool and databases.
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

from mailrouter.testing.testbed import (
    HOST,
    TestBed,
    TestBedError,
    _greets,
    free_port,
    stop_group,
    untraversable_parent,
)

INSTALL_HINT = "is Cyrus IMAP installed? run scripts/setup (cyrus-common, sasl2-bin, gcc and an unpacked cyrus-imapd)"
MASTER = "/usr/lib/cyrus/bin/master"
# cyrus-imapd and dovecot-imapd conflict in Debian (both are imap-server), so scripts/setup
# unpacks cyrus-imapd's programs beside cyrus-common instead of installing the package.
IMAPD_CANDIDATES = ("/usr/lib/cyrus/bin/imapd", "/opt/mailrouter-tests/cyrus-imapd/usr/lib/cyrus/bin/imapd")


def imapd_program() -> str | None:
    return next((p for p in IMAPD_CANDIDATES if os.access(p, os.X_OK)), None)
SASLPASSWD = "/usr/sbin/saslpasswd2"
NAMESPACE = "INBOX."


# Debian's Cyrus 3.6.1 names each new mailbox with rand(), seeded from the time in seconds: two
# imapd processes started in the same second give their first new mailboxes the same unique id,
# and those mailboxes then share one spool directory (seen here: info's INBOX showing sales's
# mail, a rep's forwards in the shared mailbox). Preloaded into the bed's Cyrus only, this mixes
# every seed with random bytes, so each process draws its own ids.
SEED_FIX_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/random.h>
void srand(unsigned int seed) {
    static void (*real)(unsigned int);
    unsigned int noise = 0;
    if (!real) real = (void (*)(unsigned int))dlsym(RTLD_NEXT, "srand");
    if (getrandom(&noise, sizeof noise, 0) != (ssize_t)sizeof noise) noise = 0;
    real(seed ^ noise);
}
"""


def cyrus_installed() -> bool:
    return (all(os.access(p, os.X_OK) for p in (MASTER, SASLPASSWD)) and imapd_program() is not None
            and shutil.which("gcc") is not None)


def build_seed_fix(directory: Path) -> Path:
    """The preload library, compiled into the bed's root (a fraction of a second)."""
    source, library = directory / "seedfix.c", directory / "seedfix.so"
    source.write_text(SEED_FIX_C)
    made = subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(library), str(source), "-ldl"],
                          capture_output=True, text=True, check=False)
    if made.returncode:
        raise TestBedError(f"cannot build {library}: {made.stderr.strip()}")
    library.chmod(0o755)
    return library


def imapd_conf(root: Path) -> str:
    """The whole imapd.conf; nothing is read from /etc/imapd.conf."""
    return f"""\
configdirectory: {root}/conf
partition-default: {root}/spool
admins: cyrus
allowplaintext: yes
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: {root}/sasldb2
sasl_mech_list: PLAIN LOGIN
# The Courier-style namespace: INBOX. prefix, '.' between levels.
altnamespace: no
unixhierarchysep: no
# user@domain logins, as the reps' and shared mailboxes' addresses.
virtdomains: userid
defaultdomain: localhost
# A mailbox is created on first login, with a Sent folder marked \\Sent (special-use).
autocreate_quota: 0
autocreate_post: yes
autocreate_inbox_folders: Sent
xlist-sent: Sent
# IDLE without the idled helper: imapd polls its mailbox every second.
imapidlepoll: 1
lmtp_downcase_rcpt: yes
"""


def cyrus_conf(root: Path, imap_port: int, lmtp_port: int) -> str:
    conf = root / "imapd.conf"
    return f"""\
START {{
  recover cmd="ctl_cyrusdb -C {conf} -r"
}}
SERVICES {{
  imap cmd="{imapd_program()} -C {conf}" listen="{HOST}:{imap_port}" prefork=0
  lmtp cmd="lmtpd -C {conf} -a" listen="{HOST}:{lmtp_port}" prefork=0
}}
EVENTS {{
}}
"""


class CyrusMaster:
    """One Cyrus `master` process group with its own config, spool, databases and log."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log_path = root / "master.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if not cyrus_installed():
            raise TestBedError(f"{MASTER}, imapd, saslpasswd2 or gcc not found; {INSTALL_HINT}")
        env = {**os.environ, "LD_PRELOAD": str(build_seed_fix(self.root))}
        # Own session: stop() signals the whole group, the service children included.
        self.process = subprocess.Popen(
            [MASTER, "-C", str(self.root / "imapd.conf"), "-M", str(self.root / "cyrus.conf"),
             "-p", str(self.root / "master.pid"), "-L", str(self.log_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, env=env,
        )

    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return "(no log output; Cyrus logs the rest to syslog)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        proc, self.process = self.process, None
        stop_group(proc, grace=5)


class CyrusBed(TestBed):
    """Cyrus IMAP + LMTP, and the bed's SMTP server delivering into it, on free loopback ports.

    Folder names are server-side: `INBOX.Routed.张伟`; `server_name()` maps a logical name."""

    def __init__(self, root: str | os.PathLike[str], addresses: Iterable[str], **options: Any) -> None:
        super().__init__(root, addresses, **options)
        self.namespace_prefix = NAMESPACE
        self.cyrus: CyrusMaster | None = None

    def server_name(self, logical: str) -> str:
        """`Routed/张伟` as this server names it: `INBOX.Routed.张伟`."""
        return logical if logical == "INBOX" else NAMESPACE + logical.replace("/", ".")

    def _start_server(self) -> None:
        self._prepare_cyrus_dirs()
        # dovecot_imap_port is what TestBed's capability proxy fronts: here, Cyrus's port
        self.dovecot_imap_port, self.lmtp_port = free_port(), free_port()
        self.imap_port = self.dovecot_imap_port
        (self.root / "cyrus.conf").write_text(cyrus_conf(self.root, self.imap_port, self.lmtp_port))
        self.cyrus = CyrusMaster(self.root)
        self.cyrus.start()
        self._wait_cyrus()
        for address in self.addresses:  # creates INBOX and Sent now, not at the first test's login
            self.imap(address).logout()

    def _stop_server(self) -> None:
        if self.cyrus is not None:
            self.cyrus.stop()
            self.cyrus = None

    def _prepare_cyrus_dirs(self) -> None:
        """Root-owned config, cyrus-owned spool, databases and sasldb."""
        try:
            cyrus = pwd.getpwnam("cyrus")
        except KeyError:
            raise TestBedError(f"no 'cyrus' user; {INSTALL_HINT}") from None
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        blocked = untraversable_parent(self.root)
        if blocked is not None:
            raise TestBedError(f"{blocked} is not enterable by the cyrus user (mode "
                               f"{oct(blocked.stat().st_mode & 0o777)}); chmod o+x it or use another root")
        for name in ("conf", "conf/socket", "conf/proc", "conf/log", "spool"):
            (self.root / name).mkdir(exist_ok=True)
            os.chown(self.root / name, cyrus.pw_uid, cyrus.pw_gid)
        (self.root / "imapd.conf").write_text(imapd_conf(self.root))
        sasldb = self.root / "sasldb2"
        for address in self.addresses:
            user, _, domain = address.partition("@")
            made = subprocess.run([SASLPASSWD, "-p", "-c", "-f", str(sasldb), "-u", domain, user],
                                  input=self.password.encode(), capture_output=True, check=False)
            if made.returncode:
                raise TestBedError(f"saslpasswd2 failed for {address}: {made.stderr.decode().strip()}")
        os.chown(sasldb, cyrus.pw_uid, cyrus.pw_gid)
        sasldb.chmod(0o600)

    def _wait_cyrus(self) -> None:
        """Until IMAP and LMTP both greet; fail early if master exits (bad config)."""
        assert self.cyrus is not None
        deadline = time.monotonic() + 30
        for port, greeting in ((self.imap_port, b"* OK"), (self.lmtp_port, b"220")):
            while not _greets(port, greeting):
                if self.cyrus.exited() or time.monotonic() > deadline:
                    state = "exited" if self.cyrus.exited() else "gave no greeting"
                    raise TestBedError(f"Cyrus {state} (port {port}); {INSTALL_HINT}\n"
                                       f"--- log tail ({self.root}) ---\n{self.cyrus.log_tail()}")
                time.sleep(0.05)

    def change_uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        raise TestBedError("change_uidvalidity needs doveadm: only the Dovecot bed offers it")
