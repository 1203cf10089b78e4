"""Password commands, OAuth2 token sources (against a real loopback HTTP endpoint), XOAUTH2."""
from __future__ import annotations

import base64
import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from mailrouter.runtime import logsetup
from mailrouter.config.credentials import (CommandSource, CredentialError, RefreshTokenSource,
                                    StaticSource, credential_path, read_source, xoauth2_base64,
                                    xoauth2_string)


@pytest.fixture(autouse=True)
def no_leftover_secrets() -> Iterator[None]:
    yield
    logsetup.forget_secrets()


# -- commands

def test_command_string_through_shell() -> None:
    source = CommandSource("mailbox[0].password_command", "printf 's3cret-pw\\nsecond line\\n'")
    assert source.get() == "s3cret-pw"
    assert source.kind == "password"


def test_command_argv_without_shell() -> None:
    assert CommandSource("k", ["printf", "%s", "tok en"]).get() == "tok en"


def test_value_is_registered_for_redaction() -> None:
    CommandSource("k", ["printf", "registered-pw"]).get()
    assert "registered-pw" not in logsetup.redact("login with registered-pw")


def test_failing_command_names_key_never_the_output() -> None:
    source = CommandSource("mailbox[1].password_command", "printf 'leaked-secret'; exit 3")
    with pytest.raises(CredentialError) as err:
        source.get()
    assert str(err.value).startswith("mailbox[1].password_command: ")
    assert "exit status 3" in str(err.value)
    assert "leaked-secret" not in str(err.value)


def test_missing_program() -> None:
    with pytest.raises(CredentialError, match=r"^smtp.password_command: cannot run the command"):
        CommandSource("smtp.password_command", ["/nonexistent/pass", "show"]).get()


def test_empty_output() -> None:
    with pytest.raises(CredentialError, match="printed nothing"):
        CommandSource("k", "printf '\\n'").get()


def test_timeout_kills_the_whole_pipeline() -> None:
    source = CommandSource("k", "sleep 20; echo late", timeout=0.3)
    with pytest.raises(CredentialError, match="did not finish within 0.3 s"):
        source.get()


# -- OAuth2 refresh token against a loopback token endpoint

class TokenEndpoint(BaseHTTPRequestHandler):
    calls: list[dict[str, str]] = []
    answer: tuple[int, dict[str, Any]] = (200, {})

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        length = int(self.headers["Content-Length"])
        form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
        type(self).calls.append(form)
        status, body = type(self).answer
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[type[TokenEndpoint]]:
    handler = type("Endpoint", (TokenEndpoint,), {"calls": [], "answer": (200, {})})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}/token"
    yield handler
    server.shutdown()
    server.server_close()
    thread.join()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def refresh_source(endpoint: type[TokenEndpoint], clock: FakeClock) -> RefreshTokenSource:
    return RefreshTokenSource("mailbox[0].oauth2_token_url", endpoint.url, "client-1",
                              "client-secret-x", "refresh-1", scope="https://mail.google.com/",
                              clock=clock)


def test_refresh_posts_the_grant_and_caches_until_expiry(endpoint: type[TokenEndpoint]) -> None:
    endpoint.answer = (200, {"access_token": "ya29.first", "expires_in": 3600, "token_type": "Bearer"})
    clock = FakeClock()
    source = refresh_source(endpoint, clock)
    assert source.get() == "ya29.first" and source.kind == "xoauth2"
    assert endpoint.calls == [{"grant_type": "refresh_token", "refresh_token": "refresh-1",
                               "client_id": "client-1", "client_secret": "client-secret-x",
                               "scope": "https://mail.google.com/"}]
    clock.now += 3600 - 61
    endpoint.answer = (200, {"access_token": "ya29.second", "expires_in": 3600})
    assert source.get() == "ya29.first"  # still cached
    clock.now += 1
    assert source.get() == "ya29.second"  # 60 s before expiry: renewed
    assert len(endpoint.calls) == 2


def test_rotated_refresh_token_is_used_next_time(endpoint: type[TokenEndpoint]) -> None:
    endpoint.answer = (200, {"access_token": "at-1", "expires_in": 100, "refresh_token": "refresh-2"})
    source = refresh_source(endpoint, FakeClock())
    source.get()
    source.invalidate()
    source.get()
    assert [c["refresh_token"] for c in endpoint.calls] == ["refresh-1", "refresh-2"]


def test_refused_refresh_token_explains_without_secrets(endpoint: type[TokenEndpoint]) -> None:
    endpoint.answer = (400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
    with pytest.raises(CredentialError) as err:
        refresh_source(endpoint, FakeClock()).get()
    text = str(err.value)
    assert text.startswith("mailbox[0].oauth2_token_url: token endpoint")
    assert "400: invalid_grant (Token has been expired or revoked.)" in text
    assert "refresh-1" not in text and "client-secret-x" not in text


def test_answer_without_token(endpoint: type[TokenEndpoint]) -> None:
    endpoint.answer = (200, {"token_type": "Bearer"})
    with pytest.raises(CredentialError, match="no access_token"):
        refresh_source(endpoint, FakeClock()).get()


def test_unreachable_endpoint() -> None:
    source = RefreshTokenSource("k", "http://127.0.0.1:9/token", "c", "", "r", timeout=2)
    with pytest.raises(CredentialError, match="^k: cannot reach token endpoint"):
        source.get()


@pytest.mark.parametrize("url", ["http://oauth2.example.com/token", "ftp://x/y", "token"])
def test_token_url_must_be_https_off_loopback(url: str) -> None:
    with pytest.raises(CredentialError, match="must be an https://"):
        RefreshTokenSource("k", url, "c", "", "r")


# -- XOAUTH2

def test_xoauth2_string() -> None:
    assert xoauth2_string("sales@example.com", "ya29.x") == "user=sales@example.com\x01auth=Bearer ya29.x\x01\x01"
    decoded = base64.b64decode(xoauth2_base64("a@b", "t")).decode()
    assert decoded == "user=a@b\x01auth=Bearer t\x01\x01"


# -- reading a config table

def test_read_source_kinds(tmp_path: Path) -> None:
    (tmp_path / "refresh").write_text("refresh-from-file\n")
    (tmp_path / "refresh").chmod(0o600)
    env = {"PW": "env-password"}
    assert read_source({"password_env": "PW"}, "mailbox[0].", env, tmp_path).source.get() == "env-password"
    command = read_source({"password_command": ["printf", "x1"]}, "p.", env, tmp_path).source
    assert isinstance(command, CommandSource) and command.get() == "x1"
    oauth = read_source({"auth": "xoauth2", "oauth2_token_url": "https://oauth2.googleapis.com/token",
                         "oauth2_client_id": "id", "oauth2_client_secret_env": "PW",
                         "oauth2_refresh_token_file": "refresh"}, "p.", env, tmp_path).source
    assert isinstance(oauth, RefreshTokenSource) and oauth.refresh_token == "refresh-from-file"
    token_cmd = read_source({"auth": "xoauth2", "oauth2_token_command": "printf tok"}, "p.", env, tmp_path).source
    assert token_cmd is not None and token_cmd.kind == "xoauth2"
    assert isinstance(read_source({}, "smtp.", env, tmp_path).source, StaticSource)


def test_read_source_reports_every_problem(tmp_path: Path) -> None:
    result = read_source({"auth": "xoauth2", "oauth2_token_url": "http://idp.example.com/t",
                          "oauth2_refresh_token_env": "MISSING"}, "mailbox[2].", {}, tmp_path)
    keys = [key for key, _ in result.problems]
    assert result.source is None
    assert keys == ["mailbox[2].oauth2_client_id", "mailbox[2].oauth2_refresh_token_env"]
    both = read_source({"password_env": "A", "password_command": "x"}, "smtp.", {}, tmp_path)
    assert both.problems[0][0] == "smtp.password_command"
    bad = read_source({"auth": "kerberos"}, "smtp.", {}, tmp_path)
    assert bad.problems == [("smtp.auth", 'must be "password" or "xoauth2", not \'kerberos\'')]


def test_credentials_directory(tmp_path: Path) -> None:
    env = {"CREDENTIALS_DIRECTORY": "/run/credentials/mailrouter.service"}
    assert credential_path("$CREDENTIALS_DIRECTORY/sales", env, tmp_path) == \
        Path("/run/credentials/mailrouter.service/sales")
    assert credential_path("${CREDENTIALS_DIRECTORY}/sales", {}, tmp_path) is None
    assert credential_path("pw", {}, tmp_path) == tmp_path / "pw"
    result = read_source({"password_file": "$CREDENTIALS_DIRECTORY/sales"}, "mailbox[0].", {}, tmp_path)
    assert "LoadCredential" in result.problems[0][1]


def test_a_password_file_others_can_read_is_refused(tmp_path):
    """Review: a world-readable password file was accepted silently."""
    secret = tmp_path / "pw"
    secret.write_text("hunter2\n")
    for mode, who in ((0o644, "everyone"), (0o640, "its group")):
        secret.chmod(mode)
        result = read_source({"password_file": str(secret)}, "mailbox[0].", {}, tmp_path)
        assert result.source is None
        assert any(key == "mailbox[0].password_file" and who in message and "chmod 600" in message
                   for key, message in result.problems), result.problems
    secret.chmod(0o600)
    assert read_source({"password_file": str(secret)}, "mailbox[0].", {}, tmp_path).source.get() == "hunter2"


def test_a_command_that_prints_without_end_is_stopped():
    """Review: `yes` as password_command was read into memory without limit (1.4 GB in 2 s)."""
    command = CommandSource("mailbox[0].password_command", "yes", timeout=10)
    with pytest.raises(CredentialError, match="printed more than 64 KiB"):
        command.get()


def test_a_command_that_hangs_is_stopped_at_its_timeout():
    command = CommandSource("mailbox[0].password_command", ["sleep", "30"], timeout=0.5)
    with pytest.raises(CredentialError, match="did not finish within 0.5 s"):
        command.get()
