"""A credential command that starts failing after start (issue 13 item 5), on the test bed."""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from mailrouter.commands.demo import deliver_samples, wait_until_filed
from mailrouter.config.credentials import CommandSource
from mailrouter.runtime.daemon import Daemon
from mailrouter.store import MessageRow, OutboxRow, open_database
from mailrouter.testing.samples import demo_samples
from tests.mailcheck import configure, route_all, wait_for

pytestmark = pytest.mark.integration


def failing_command(tmp_path: Path, status: int) -> list[str]:
    script = tmp_path / "pass-show"
    script.write_text(f"#!/bin/sh\necho 'vault locked' >&2\nexit {status}\n")
    script.chmod(0o700)
    return [str(script)]


def test_a_failing_smtp_password_command_is_retried_until_the_deadline_without_a_traceback(bed, tmp_path, caplog):
    # before: the CredentialError escaped the SMTP lane, the round ended with a traceback and
    # the IMAP session was dropped, every round, and the retry deadline never applied
    config = configure(bed, tmp_path, {"smtp": {"retry_max": 1, "retry_deadline": 4}})
    server = replace(config.smtp.server, user="forwarder",
                     credentials=CommandSource("smtp.password_command", failing_command(tmp_path, 7), 5.0))
    config = replace(config, smtp=replace(config.smtp, server=server))
    sample = demo_samples()[0]
    caplog.set_level(logging.INFO)
    route_all(bed, config, [sample])  # until it is filed: Undeliverable once the deadline passed

    with open_database(config.database)() as session:
        row = session.scalars(select(MessageRow)).one()
        item = session.scalars(select(OutboxRow)).one()
    assert row.outcome == "undeliverable" and "retry deadline passed" in row.reason
    assert "smtp.password_command: the command failed with exit status 7" in row.reason
    assert item.attempts >= 2  # retried with backoff first
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert not [r for r in caplog.records if "not connected" in r.getMessage() or "unexpected" in r.getMessage()]
    deferred = [r.getMessage() for r in caplog.records if "deferred" in r.getMessage()]
    assert deferred and all("\n" not in line and "exit status 7" in line for line in deferred)


def test_a_failing_imap_password_command_is_one_line_per_retry_and_routing_resumes_when_it_works(bed, tmp_path, caplog):
    # before: "sales: unexpected error, retrying" with a traceback on every reconnect
    locked = tmp_path / "locked"
    locked.touch()
    script = tmp_path / "pass-show"
    script.write_text(f"#!/bin/sh\nif [ -e {locked} ]; then echo 'vault locked' >&2; exit 5; fi\n"
                      f"cat {tmp_path / 'password'}\n")
    script.chmod(0o700)
    config = configure(bed, tmp_path)
    sales = replace(config.mailboxes[0], server=replace(
        config.mailboxes[0].server, credentials=CommandSource("mailbox[0].password_command", [str(script)], 5.0)))
    config = replace(config, mailboxes=(sales, *config.mailboxes[1:]))
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="mailrouter.connection")  # a retry in the same outage is said at DEBUG
    daemon = Daemon(config)
    daemon.start()
    try:
        wait_for(lambda: len(trouble(caplog)) >= 2, "two retries of the failing command", timeout=30)
        locked.unlink()  # the vault is open again
        sample = demo_samples()[0]
        deliver_samples(bed, [sample])
        assert wait_until_filed(config, 1, timeout=60)
    finally:
        daemon.stop()
    lines = trouble(caplog)
    assert [r.levelname for r in caplog.records if r.getMessage() in lines][0] == "WARNING"  # once, then quietly
    assert all("mailbox[0].password_command: the command failed with exit status 5" in line for line in lines)
    assert all("\n" not in line for line in lines)
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


def trouble(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("mailbox sales: ")
            and "not connected" in r.getMessage()]
