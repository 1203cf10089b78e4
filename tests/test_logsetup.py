"""Log formats (journald text, JSON) and secret redaction."""
from __future__ import annotations

import io
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailrouter.runtime import logsetup
from mailrouter.runtime.logsetup import journal_attached, redact, register_secret, setup_logging

log = logging.getLogger("mailrouter.route")


@pytest.fixture(autouse=True)
def clean_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    for handler in logsetup._installed:
        root.removeHandler(handler)
    logsetup._installed.clear()
    logsetup.forget_secrets()
    root.setLevel(level)


def test_json_line_carries_decision_fields() -> None:
    out = io.StringIO()
    setup_logging("INFO", "json", out)
    log.info("routed %s", "<a@b>", extra={"message_id": "<a@b>", "sender": "k@becker.de",
                                          "rule": "german-pcb", "rep": "zhang",
                                          "folder": "Routed/张伟", "latency": 0.25})
    entry = json.loads(out.getvalue())
    assert entry["message"] == "routed <a@b>"
    assert entry["level"] == "INFO" and entry["logger"] == "mailrouter.route"
    assert entry["folder"] == "Routed/张伟" and entry["latency"] == 0.25 and entry["rule"] == "german-pcb"
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$", entry["time"])


def test_json_one_object_per_line_with_exception() -> None:
    out = io.StringIO()
    setup_logging("INFO", "json", out)
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        log.exception("failed")
    log.info("next")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert "RuntimeError: boom" in json.loads(lines[0])["exception"]


def test_text_outside_journal_has_iso_time() -> None:
    out = io.StringIO()
    setup_logging("INFO", "text", out, environ={})
    log.warning("hello")
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} WARNING mailrouter.route: hello$",
                    out.getvalue().strip())


def test_text_into_journal_has_priority_and_no_time(tmp_path: Path) -> None:
    with (tmp_path / "journal").open("w+") as stream:
        st = os.fstat(stream.fileno())
        setup_logging("INFO", "text", stream, environ={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        log.error("cannot log in")
        stream.seek(0)
        assert stream.read() == "<3>ERROR mailrouter.route: cannot log in\n"


def test_journal_stream_of_another_file_is_ignored(tmp_path: Path) -> None:
    other = os.stat(tmp_path)
    with (tmp_path / "f").open("w") as stream:
        assert not journal_attached(stream, {"JOURNAL_STREAM": f"{other.st_dev}:{other.st_ino}"})
    assert not journal_attached(io.StringIO(), {"JOURNAL_STREAM": "1:2"})


def test_second_setup_replaces_the_first() -> None:
    first, second = io.StringIO(), io.StringIO()
    setup_logging("INFO", "text", first)
    setup_logging("DEBUG", "json", second)
    log.debug("only once")
    assert first.getvalue() == "" and json.loads(second.getvalue())["message"] == "only once"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_registered_secret_is_redacted_everywhere(fmt: str) -> None:
    out = io.StringIO()
    setup_logging("INFO", fmt, out)
    register_secret("hunter2-imap")
    log.info("login as sales with %s", "hunter2-imap", extra={"error": "bad hunter2-imap"})
    try:
        raise ValueError("refused hunter2-imap")
    except ValueError:
        log.exception("oops")
    assert "hunter2" not in out.getvalue()
    assert out.getvalue().count("***") >= 3


@pytest.mark.parametrize("text, hidden", [
    ("connect password=s3cr3t host=x", "s3cr3t"),
    ('{"access_token": "ya29.abc", "expires_in": 3599}', "ya29.abc"),
    ("POST token=abc123&grant_type=refresh_token", "abc123"),
    ("refresh_token=1//0gXYZ client_secret=GOCSPX-q", "GOCSPX-q"),
    ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
    ("user=a@b.com\x01auth=Bearer ya29.tok\x01\x01", "ya29.tok"),
])
def test_secret_looking_patterns(text: str, hidden: str) -> None:
    assert hidden not in redact(text)
    assert "***" in redact(text)


def test_short_values_are_not_registered() -> None:
    register_secret("ab")
    assert redact("a tab and a cab") == "a tab and a cab"


def test_ordinary_line_unchanged() -> None:
    line = "routed <x@y> from k@becker.de -> zhang; rule 'german-pcb'; filed in Routed/张伟 (0.25s)"
    assert redact(line) == line


def test_debug_never_logs_the_mail_libraries_echo():
    """Review D18: at DEBUG, imapclient logged whole FETCH responses (message bodies)."""
    import io
    import logging

    out = io.StringIO()
    logsetup.setup_logging("DEBUG", "text", stream=out, environ={})
    logging.getLogger("imapclient.imaplib").debug("< * 1 FETCH (BODY[] {120} please quote 500 pcs")
    logging.getLogger("aiosmtplib").debug("sending DATA: please quote 500 pcs")
    logging.getLogger("mailrouter.route").debug("own debug line")
    logsetup.setup_logging("INFO", "text", stream=io.StringIO(), environ={})
    assert "please quote" not in out.getvalue()
    assert "own debug line" in out.getvalue()
