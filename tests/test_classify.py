from __future__ import annotations


import pytest

from mailrouter.decide.classify import OUT_OF_OFFICE_SUBJECTS, not_an_inquiry
from mailrouter.model import Inquiry
from tests.factories import hans_inquiry

def make_inquiry(**overrides: object) -> Inquiry:
    """tests.factories.hans_inquiry with this file's defaults."""
    return hans_inquiry(**{**dict(
        subject="Inquiry: LED panels 600x600",
        text="Please quote 500 pcs.",
        language="en",
        products=("LED",),
        headers={"from": "Hans Müller <hans@buyer.de>", "subject": "Inquiry: LED panels 600x600"},
    ), **overrides})


def reason_for(**overrides: object) -> str | None:
    return not_an_inquiry(make_inquiry(**overrides))


def test_an_ordinary_inquiry_passes() -> None:
    assert reason_for() is None


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"content_type": "multipart/report",
             "headers": {"content-type": 'multipart/report; report-type="delivery-status"; boundary="x"'}},
            "bounce: multipart/report delivery-status",
        ),
        (
            {"content_type": "multipart/report",
             "headers": {"content-type": "multipart/report; report-type=disposition-notification"}},
            "read receipt: multipart/report disposition-notification",
        ),
        ({"from_address": "mailer-daemon@mx.buyer.de"}, "bounce: from mailer-daemon@mx.buyer.de"),
        ({"from_address": "postmaster@buyer.de"}, "bounce: from postmaster@buyer.de"),
        ({"headers": {"x-failed-recipients": "a@b.c"}}, "bounce: x-failed-recipients: a@b.c"),
        ({"headers": {"return-path": "<>"}}, "bounce: Return-Path <>"),
        ({"headers": {"auto-submitted": "auto-replied"}}, "auto-reply: Auto-Submitted: auto-replied"),
        ({"headers": {"auto-submitted": "Auto-Generated; owner-email=x@y"}},
         "auto-reply: Auto-Submitted: auto-generated"),
        ({"headers": {"x-autoreply": "yes"}}, "auto-reply: x-autoreply: yes"),
        ({"headers": {"x-autorespond": ""}}, "auto-reply: x-autorespond: (empty)"),
        ({"headers": {"precedence": "auto_reply"}}, "auto-reply: Precedence: auto_reply"),
        ({"headers": {"precedence": "bulk"}}, "bulk: Precedence: bulk"),
        ({"headers": {"precedence": "list", "list-unsubscribe": "<mailto:u@x>"}},
         "bulk: Precedence: list with List-Unsubscribe"),
        ({"headers": {"precedence": "junk"}}, "bulk: Precedence: junk"),
        ({"headers": {"list-id": "Trade news <news.example.org>"}},
         "mailing list: List-Id Trade news <news.example.org>"),
    ],
)
def test_not_an_inquiry_reasons(overrides: dict[str, object], expected: str) -> None:
    assert reason_for(**overrides) == expected


def test_auto_reply_reason_wins_over_null_return_path() -> None:
    # RFC 3834 responders send with the null sender; "auto-reply" is the more telling reason.
    headers = {"return-path": "<>", "auto-submitted": "auto-replied"}
    assert reason_for(headers=headers) == "auto-reply: Auto-Submitted: auto-replied"


@pytest.mark.parametrize(
    "headers",
    [
        {"auto-submitted": "no"},
        {"x-autoreply": "no"},
        {"return-path": "<hans@buyer.de>"},
        {"precedence": "normal"},
        # Buyers' sales tools add List-Unsubscribe to one-off RFQs: not enough on its own.
        {"list-unsubscribe": "<https://crm.buyer.de/u/1>"},
    ],
)
def test_harmless_headers_do_not_fire(headers: dict[str, str]) -> None:
    assert reason_for(headers=headers) is None


def test_form_sender_with_bulk_headers_is_still_an_inquiry() -> None:
    headers = {"precedence": "bulk", "list-id": "<notify.platform.example>"}
    assert reason_for(headers=headers, via_form="Platform") is None


@pytest.mark.parametrize("phrase", OUT_OF_OFFICE_SUBJECTS)
def test_every_out_of_office_phrase_fires_at_subject_start(phrase: str) -> None:
    for subject in (f"{phrase}: Re: Inquiry", f"{phrase.upper()} - Hans", phrase.title()):
        reason = reason_for(subject=subject)
        assert reason is not None and reason.startswith("out-of-office subject: "), subject


@pytest.mark.parametrize(
    "subject",
    [
        "Automatic reply: Inquiry LED panels",
        "Out of Office AutoReply: Inquiry",
        "Auto-Reply: your message",
        "Autoreply: your message",
        "[EXTERNAL] Automatic reply: your message",
        "自动回复：询价",
        "自动回复: Inquiry",
        "【外部邮件】自动答复: Inquiry",
        "外出：3月1日返回",
        "休假",
        "Abwesenheitsnotiz: Anfrage LED",
        "Automatische Antwort: Anfrage",
        "Respuesta automática: Consulta",
        "Respuesta automatica: Consulta",
        "Fuera de la oficina: Consulta",
        "Автоответ: Запрос",
        "Автоматический ответ: Запрос",
        "Нет на месте: Запрос",
        "Réponse automatique : Demande de prix",
        "RÉPONSE AUTOMATIQUE: Demande",
        "Absence : Demande",
        "Resposta automática: Pedido",
        "Risposta automatica: Richiesta",
        "Otomatik yanıt: Teklif",
        "Automatisch antwoord: Offerte",
    ],
)
def test_out_of_office_subjects(subject: str) -> None:
    reason = reason_for(subject=subject)
    assert reason is not None and reason.startswith("out-of-office subject: ")


@pytest.mark.parametrize(
    "subject",
    [
        "Inquiry about out-of-office furniture",
        "Out-of-office furniture catalogue request",
        "Out of office chairs: price list",
        "外出旅游用品询价",  # "outdoor travel goods inquiry" starts with 外出 ("out")
        "休假村项目灯具采购",  # a holiday-resort lighting project
        "Автоответчики: запрос цены",  # answering machines are a product, not an auto-reply
        "Absence sensor quotation",
        "Re: Automatic reply from your website",
        "Automatic replying machine parts",
    ],
)
def test_ordinary_subjects_are_not_out_of_office(subject: str) -> None:
    assert reason_for(subject=subject) is None


def test_out_of_office_reason_quotes_a_shortened_subject() -> None:
    reason = reason_for(subject="Abwesenheitsnotiz: " + "x" * 100)
    assert reason is not None
    assert reason.startswith("out-of-office subject: 'Abwesenheitsnotiz: ")
    assert reason.endswith("…'")
