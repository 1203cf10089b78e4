"""How the outbox reads an SMTP failure: permanent or not, and whether it only ended the session."""
import aiosmtplib
import pytest

from mailrouter.act.outbox import classify_smtp_error, session_closed


@pytest.mark.parametrize("exc, permanent, closed", [
    (aiosmtplib.SMTPSenderRefused(421, "too many messages in this connection", "sales@example.com"), False, True),
    (aiosmtplib.SMTPConnectResponseError(421, "service not available"), False, True),
    (aiosmtplib.SMTPDataError(451, "4.3.0 try again later"), False, False),
    (aiosmtplib.SMTPDataError(550, "5.7.1 refused"), True, False),
    (aiosmtplib.SMTPServerDisconnected("connection lost"), False, False),
])
def test_only_a_421_counts_as_the_session_ending(exc, permanent, closed):
    result = classify_smtp_error(exc)
    assert (result.ok, result.permanent, session_closed(result)) == (False, permanent, closed)
