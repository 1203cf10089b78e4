"""Streaming DATA: the chunked transform equals aiosmtplib's, and a real SMTP server gets the message."""
from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import aiosmtplib
import pytest
from aiosmtpd.controller import Controller
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

from mailrouter.act.smtpstream import DotStuffer, send_streamed, size_refusal
from mailrouter.testing.testbed import HOST, free_port


def whole_message_transform(message: bytes) -> bytes:
    """What aiosmtplib's execute_data_command writes after DATA (5.1)."""
    return PERIOD_REGEX.sub(b"..", normalize_message_line_endings(message)) + b".\r\n"


def stuffed(chunks: list[bytes]) -> bytes:
    stuffer = DotStuffer()
    return b"".join([stuffer.feed(c) for c in chunks] + [stuffer.finish()])


@pytest.mark.parametrize("chunks", [
    [b"Subject: x\r\n\r\n.hidden\r\n"],  # a line starting with "."
    [b".first line\r\n", b".second\r\n"],
    [b"a\r\n", b".b"],  # "." opening a chunk, after a line end
    [b"a", b".b\r\n"],  # "." opening a chunk in the middle of a line: not stuffed
    [b"bare\nlf\n.dot\n"],  # bare LF
    [b"a\r", b"\n.b"],  # CR LF split across chunks, then a dot
    [b"a\r", b".b"],  # a lone CR at a chunk's end, then a dot
    [b"a\r", b"", b"\nb"],  # an empty chunk between CR and LF
    [b"no final line end"],
    [b"ends with cr\r"],
    [b""],
    [],
    [b"..", b".", b"\r\n", b"."],
])
def test_dot_stuffer_equals_the_whole_message_transform(chunks: list[bytes]) -> None:
    assert stuffed(chunks) == whole_message_transform(b"".join(chunks))


def test_dot_stuffer_on_random_splits() -> None:
    rnd = random.Random(7)
    pieces = [b"a", b"\r", b"\n", b"\r\n", b".", b"..", b" ", b"\r\n.", b"\n."]
    for _ in range(3000):
        message = b"".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 20)))
        cuts = sorted(rnd.randint(0, len(message)) for _ in range(rnd.randint(0, 5)))
        chunks = [message[a:b] for a, b in zip([0, *cuts], [*cuts, len(message)])]
        assert stuffed(chunks) == whole_message_transform(message), chunks


class Recorder:
    def __init__(self, answer: str = "250 OK") -> None:
        self.answer = answer
        self.received: list[bytes] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.received.append(envelope.original_content)
        return self.answer


@pytest.fixture
def smtp_server(request) -> Iterator[tuple[Controller, Recorder]]:
    limit, answer = getattr(request, "param", (33_554_432, "250 OK"))
    recorder = Recorder(answer)
    controller = Controller(recorder, hostname=HOST, port=free_port(), data_size_limit=limit)
    controller.start()
    yield controller, recorder
    controller.stop()


def send(controller: Controller, message: bytes, chunk: int = 1000) -> aiosmtplib.SMTPResponse:
    async def run() -> aiosmtplib.SMTPResponse:
        client = aiosmtplib.SMTP(hostname=HOST, port=controller.port, timeout=10)
        await client.connect()
        try:
            pieces = (message[i:i + chunk] for i in range(0, len(message), chunk))
            return await send_streamed(client, "sales@example.com", "zhang@example.com", pieces,
                                       len(message), 10)
        finally:
            client.close()

    return asyncio.run(run())


MESSAGE = (b"From: sales@example.com\r\nTo: zhang@example.com\r\nSubject: big\r\n\r\n"
           + b"".join(b".line %d with a leading dot\r\nand a plain one\r\n" % i for i in range(20_000)))


def test_a_streamed_message_arrives_whole(smtp_server) -> None:
    controller, recorder = smtp_server
    response = send(controller, MESSAGE, chunk=4096)
    assert response.code == 250
    assert recorder.received == [MESSAGE]


def test_a_bare_lf_message_arrives_as_sendmail_would_send_it(smtp_server) -> None:
    controller, recorder = smtp_server
    message = MESSAGE.replace(b"\r\n", b"\n")
    send(controller, message, chunk=777)
    assert recorder.received == [normalize_message_line_endings(message)]


@pytest.mark.parametrize("smtp_server", [(33_554_432, "552 5.3.4 Message too big for policy")], indirect=True)
def test_a_refusal_after_data_raises_with_the_servers_code(smtp_server) -> None:
    controller, _recorder = smtp_server
    with pytest.raises(aiosmtplib.SMTPDataError) as info:
        send(controller, MESSAGE)
    assert info.value.code == 552


@pytest.mark.parametrize("smtp_server", [(100_000, "250 OK")], indirect=True)
def test_size_refusal_reads_the_servers_ehlo_size(smtp_server) -> None:
    controller, _recorder = smtp_server

    async def run() -> tuple[str | None, str | None]:
        client = aiosmtplib.SMTP(hostname=HOST, port=controller.port, timeout=10)
        await client.connect()
        try:
            return await size_refusal(client, 100_000), await size_refusal(client, 100_001)
        finally:
            client.close()

    fits, too_big = asyncio.run(run())
    assert fits is None
    assert too_big is not None and "100,001" in too_big and "100,000" in too_big and "SIZE" in too_big
