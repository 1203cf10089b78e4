"""`mailrouter demo`: the real daemon on a throwaway local mail server, with sample inquiries.

The same glue (a config pointed at the test bed) serves the integration tests and benchmarks,
so what the demo shows is what the tests check.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import tomli_w
from sqlalchemy import select

from mailrouter.config.load import load_config
from mailrouter.config.schema import Config
from mailrouter.runtime.daemon import Daemon
from mailrouter.reports.render import width
from mailrouter.runtime.logsetup import setup_logging
from mailrouter.intake.fingerprint import content_key
from mailrouter.testing.samples import Sample, demo_samples
from mailrouter.store import ADOPTED, FILED, MessageRow, open_database
from mailrouter.testing.testbed import TestBed


def testbed_users(config_path: Path) -> list[str]:
    """Every address the example config names: shared mailboxes, aliases and reps."""
    data = tomllib.loads(config_path.read_text(encoding="utf-8"))
    users = [m["address"] for m in data.get("mailbox", [])]
    users += [r["email"] for r in data.get("reps", {}).values()]
    extra = ["america@example.com", "manager@example.com"]
    return list(dict.fromkeys(users + extra))


TESTBED_AUTHSERV_ID = "mx.example.com"


def write_testbed_config(config_path: Path, bed: TestBed, workdir: Path,
                         overrides: dict | None = None, **daemon: object) -> Path:
    """Copy a config with its servers pointed at the test bed; return the new file's path.

    `overrides` are merged into the TOML tables (e.g. {"sla": {"sweep_interval": 0.1}}).
    """
    data = tomllib.loads(config_path.read_text(encoding="utf-8"))
    _merge(data, overrides or {})
    password_file = workdir / "password"
    password_file.write_text(bed.password, encoding="utf-8")
    password_file.chmod(0o600)
    loopback = {"host": bed.host, "tls": "none", "timeout": 30}
    for mailbox in data["mailbox"]:
        mailbox.pop("password_env", None)
        mailbox.update(loopback, port=bed.imap_port, password_file=str(password_file))
    smtp = data["smtp"]
    for key in ("password_env", "user"):  # the bed's SMTP server takes unauthenticated mail on loopback
        smtp.pop(key, None)
    smtp.update(loopback, port=bed.smtp_port, retry_initial=1)
    # the bed plays our mail server: the samples' mail from our own reps carries its stamp
    classify = data.setdefault("classify", {})
    classify["trusted_authserv_ids"] = classify.get("trusted_authserv_ids") or [TESTBED_AUTHSERV_ID]
    section = data.setdefault("daemon", {})
    section["database"] = f"sqlite:///{workdir / 'mailrouter.db'}"
    section["rules_dir"] = str((config_path.parent / section.get("rules_dir", "rules")).resolve())
    section.update(daemon)
    forward = data.get("forward", {})
    if "template_dir" in forward:
        forward["template_dir"] = str((config_path.parent / forward["template_dir"]).resolve())
    out = workdir / "config.toml"
    out.write_text(tomli_w.dumps(data), encoding="utf-8")
    return out


def _merge(into: dict, extra: dict) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def rep_reply_sources(config_path: Path, bed: TestBed, password_file: Path,
                      poll_interval: float = 0.2) -> list[dict]:
    """[[reply_source]] tables watching every rep's own Sent folder on the test bed."""
    data = tomllib.loads(config_path.read_text(encoding="utf-8"))
    return [{"kind": "rep_mailbox", "rep": rep_id, "host": bed.host, "port": bed.imap_port,
             "tls": "none", "user": rep["email"], "password_file": str(password_file),
             "poll_interval": poll_interval} for rep_id, rep in data["reps"].items()]


def deliver_samples(bed: TestBed, samples: list[Sample]) -> int:
    """Deliver each sample over LMTP as a customer's server would; return copies delivered."""
    copies = 0
    for sample in samples:
        for rcpt in sample.to:
            bed.deliver(rcpt, sample.raw, mail_from=sample.envelope_from)
            copies += 1
    return copies


def wait_until_filed(config: Config, expected: int, timeout: float = 120.0,
                     progress: Callable[[int], None] | None = None) -> bool:
    """Poll the database until `expected` messages are filed; `progress` gets the count."""
    sessions = open_database(config.database)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sessions() as session:
            rows = session.scalars(select(MessageRow.state)).all()
        if progress:
            progress(sum(state == FILED for state in rows))
        rows = [state for state in rows if state != ADOPTED]  # adopted mail stays where it is, by design
        if len(rows) >= expected and all(state == FILED for state in rows):
            return True
        time.sleep(0.2)
    return False


@dataclass(frozen=True)
class TableRow:
    label: str
    outcome: str
    rep: str
    folder: str
    reason: str


def routing_table(config: Config, samples: list[Sample]) -> list[TableRow]:
    sessions = open_database(config.database)
    with sessions() as session:
        rows = session.scalars(select(MessageRow).order_by(MessageRow.id)).all()
    by_key: dict[str, list[MessageRow]] = {}
    for row in rows:
        by_key.setdefault(row.content_key, []).append(row)
    table = []
    for sample in samples:
        for row in by_key.get(content_key(sample.raw), []):
            table.append(TableRow(f"{sample.label} [{row.mailbox}]", row.outcome, row.rep or "-",
                                  row.folder, row.reason))
    return table


# What the demo prints, per language (issue 15 item 6); sample labels and folders stay as they are.
LABELS = {
    "en": {"headers": ("message", "decision", "rep", "filed in"),
           "start": "Demo: a throwaway Dovecot + SMTP server on {host}, {samples} sample inquiries "
                    "({copies} copies: some were sent to two mailboxes); logs in {log}",
           "done": "All {copies} copies handled in {seconds:.1f}s",
           "not_done": "NOT all {copies} copies handled in {seconds:.1f}s",
           "routing": "Routing… {filed}/{total} filed", "inboxes": "Forwards in the reps' INBOXes:",
           "kept": "Demo files kept in {workdir}"},
    "zh": {"headers": ("邮件", "结果", "业务员", "归档到"),
           "start": "演示：在 {host} 上临时运行 Dovecot + SMTP 服务器，{samples} 封示例询盘"
                    "（{copies} 份：有些同时发到两个邮箱）；日志在 {log}",
           "done": "全部 {copies} 份已处理，用时 {seconds:.1f} 秒",
           "not_done": "{copies} 份未能全部处理，用时 {seconds:.1f} 秒",
           "routing": "分配中… 已归档 {filed}/{total}", "inboxes": "业务员收件箱中的转发：",
           "kept": "演示文件保留在 {workdir}"},
}


def labels(language: str) -> dict:
    return LABELS["zh" if language == "zh" else "en"]


def format_table(rows: list[TableRow], language: str = "en") -> str:
    from mailrouter.commands.status import OUTCOMES_ZH

    headers = labels(language)["headers"]
    cells = [(r.label, OUTCOMES_ZH.get(r.outcome, r.outcome) if language == "zh" else r.outcome, r.rep, r.folder)
             for r in rows]
    widths = [max(width(x) for x in col) for col in zip(headers, *cells)]
    lines = [_line(headers, widths), _line(tuple("-" * w for w in widths), widths)]
    lines += [_line(c, widths) for c in cells]
    return "\n".join(lines)


def _line(cells: tuple[str, ...], widths: list[int]) -> str:
    return "  ".join(c + " " * (w - width(c)) for c, w in zip(cells, widths)).rstrip()


def run_demo(config_path: Path, keep: bool = False, log_level: str = "INFO", language: str | None = None) -> int:
    """Route the samples on a test bed; stdout gets a progress line and the table, and every
    log line (the daemon's and the test SMTP server's chatter) goes to a file it names."""
    workdir = Path(tempfile.mkdtemp(prefix="mailrouter-demo-"))
    workdir.chmod(0o755)  # Dovecot runs as its own user and must reach the mail store
    log_path = workdir / "demo.log" if keep else Path(tempfile.mkstemp(prefix="mailrouter-demo-", suffix=".log")[1])
    try:
        with _logging_to(log_path, log_level), TestBed(workdir / "mail", testbed_users(config_path)) as bed:
            config = load_config(write_testbed_config(config_path, bed, workdir))
            language = language or config.language
            t = labels(language)
            samples = demo_samples()
            copies = deliver_samples(bed, samples)
            print(t["start"].format(host=bed.host, samples=len(samples), copies=copies, log=log_path), flush=True)
            started = time.monotonic()
            daemon = Daemon(config)
            daemon.start()
            done = wait_until_filed(config, copies, progress=_progress_line(copies, t))
            daemon.stop()
            erase = "\r" + " " * 40 + "\r" if sys.stdout.isatty() else ""
            print(erase + t["done" if done else "not_done"].format(
                copies=copies, seconds=time.monotonic() - started) + "\n", flush=True)
            print(format_table(routing_table(config, samples), language))
            print_rep_inboxes(bed, config, t)
            return 0 if done else 1
    finally:
        if keep:
            print("\n" + labels(language or "en")["kept"].format(workdir=workdir))
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _progress_line(total: int, t: dict) -> Callable[[int], None]:
    """One line rewritten in place on a terminal; nothing when stdout is a file or a pipe."""
    def show(filed: int) -> None:
        if sys.stdout.isatty():
            print("\r" + t["routing"].format(filed=filed, total=total), end="", flush=True)
    return show


@contextmanager
def _logging_to(path: Path, level: str) -> Iterator[None]:
    """Every logger to `path` for the demo's length, then back to stderr."""
    with path.open("a", encoding="utf-8") as stream:
        setup_logging(level, "text", stream=stream)
        try:
            yield
        finally:
            setup_logging(level, "text")


def print_rep_inboxes(bed: TestBed, config: Config, t: dict = LABELS["en"]) -> None:
    print("\n" + t["inboxes"])
    for rep in config.reps.values():
        count = len(bed.fetch_all(rep.email))
        print(f"  {rep.name} <{rep.email}>: {count}")
