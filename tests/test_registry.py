"""Registry matching, recording, ownership and lead scores, on a real SQLite file."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailrouter.model import Attachment
from mailrouter.parse import DEFAULT_FREE_MAIL_DOMAINS
from mailrouter.registry.match import match_sender
from mailrouter.registry.record import RegistryError, handover, record_routed, set_status, transfer
from mailrouter.registry.score import ScoreSettings, score_inquiry
from mailrouter.registry.models import CustomerRow, InquiryHistoryRow, OwnerHistoryRow
from mailrouter.registry.normalise import (company_candidates, company_key, extract_phones,
                                           normalise_phone)
from tests.factories import make_inquiry

FREE = DEFAULT_FREE_MAIL_DOMAINS
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=timezone.utc)
SIGNATURE = "Best regards\nHans Müller\nAcme Industrietechnik GmbH\nTel. +49 30 12345678"


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as s:
        yield s


def match(session: Session, now: datetime = T0, quiet_days: int = 180, **fields):
    return match_sender(session, make_inquiry(**fields), FREE, now, quiet_days)


def test_company_key_ignores_case_accents_punctuation_and_legal_forms() -> None:
    assert company_key("ACME Co., Ltd.") == company_key("Acmé GmbH") == "acme"
    assert company_key("Foo S.r.l.") == company_key("foo sp. z o.o.") == "foo"
    assert company_key("深圳宏达电子股份有限公司") == company_key("深圳宏达电子有限公司")
    assert company_key("ООО Ромашка") == "ромашка"


def test_phone_normalised_to_e164_with_country() -> None:
    phone = normalise_phone("030 1234 5678", "DE")
    assert phone is not None and (phone.e164, phone.country) == ("+493012345678", "DE")
    assert normalise_phone("0086 138 0013 8000").e164 == "+8613800138000"  # type: ignore[union-attr]
    assert normalise_phone("12", "DE") is None


def test_signature_gives_phones_and_company_lines() -> None:
    assert [p.e164 for p in extract_phones(SIGNATURE, "DE")] == ["+493012345678"]
    assert "Acme Industrietechnik GmbH" in company_candidates(SIGNATURE)


def test_new_inquiry_creates_customer_owned_by_assigned_rep(session: Session) -> None:
    recorded = record_routed(session, make_inquiry(signature=SIGNATURE), "zhang", T0)
    row = session.get_one(CustomerRow, recorded.customer_id)
    assert recorded.created and row.owner == "zhang" and row.source == "Email"
    assert row.company == "Acme Industrietechnik GmbH"
    assert {e.email for e in row.emails} == {"buyer@acme.de"}
    assert {d.domain for d in row.domains} == {"acme.de"}
    assert {p.e164 for p in row.phones} == {"+493012345678"}


def test_exact_email_matches_first(session: Session) -> None:
    record_routed(session, make_inquiry(), "zhang", T0)
    found = match(session)
    assert found is not None and (found.how, found.owner) == ("email", "zhang")
    assert found.evidence == "same address buyer@acme.de, owned by zhang"
    assert not found.lapsed


def test_colleague_at_same_corporate_domain_matches(session: Session) -> None:
    record_routed(session, make_inquiry(), "zhang", T0)
    found = match(session, sender="einkauf@mail.acme.de", from_address="einkauf@mail.acme.de")
    assert found is not None and found.how == "domain"
    assert found.evidence == "same domain as acme.de, owned by zhang"


def test_gmail_sender_never_matched_by_domain(session: Session) -> None:
    gmail = dict(sender="a.buyer@gmail.com", domain="gmail.com", free_mail=True, country=None)
    record_routed(session, make_inquiry(**gmail), "zhang", T0)
    other = dict(gmail, sender="someone.else@gmail.com")
    assert match(session, **other) is None
    # even if the parse stage had not flagged it, the free-mail list keeps it out
    assert match(session, **dict(other, free_mail=False)) is None
    assert session.scalars(select(CustomerRow)).one().domains == []


def test_company_and_phone_must_agree(session: Session) -> None:
    record_routed(session, make_inquiry(signature=SIGNATURE), "li", T0)
    free = dict(sender="hans.m@gmail.com", domain="gmail.com", free_mail=True)
    found = match(session, signature="Hans\nACME Industrietechnik\n+49 (0)30 1234-5678", **free)
    assert found is not None and (found.how, found.owner) == ("company+phone", "li")
    assert "same company and phone: company 'Acme Industrietechnik GmbH' + phone +493012345678" in found.evidence
    assert match(session, signature="Hans\nOther Corp\n+49 30 12345678", **free) is None
    assert match(session, signature="Hans\nAcme Industrietechnik GmbH", **free) is None


def test_ownership_lapses_after_quiet_period(session: Session) -> None:
    record_routed(session, make_inquiry(), "zhang", T0)
    assert not match(session, now=T0 + timedelta(days=180)).lapsed
    later = match(session, now=T0 + timedelta(days=181))
    assert later.lapsed and "ownership lapsed" in later.evidence
    assert match(session, now=T0 + timedelta(days=181), quiet_days=365).lapsed is False


def test_reinquiry_renews_contact_and_keeps_history(session: Session) -> None:
    first = record_routed(session, make_inquiry(), "zhang", T0)
    colleague = make_inquiry(sender="kauf@acme.de", message_id="<m2@acme.de>")
    again = record_routed(session, colleague, "zhang", T0 + timedelta(days=170))
    assert again == type(again)(first.customer_id, False)
    assert not match(session, now=T0 + timedelta(days=300)).lapsed
    row = session.get_one(CustomerRow, first.customer_id)
    assert {e.email for e in row.emails} == {"buyer@acme.de", "kauf@acme.de"}
    history = session.scalars(select(InquiryHistoryRow.message_id)
                              .order_by(InquiryHistoryRow.at)).all()
    assert history == ["<m1@buyer.example>", "<m2@acme.de>"]


def test_lapsed_customer_routed_elsewhere_changes_owner(session: Session) -> None:
    cid = record_routed(session, make_inquiry(), "zhang", T0).customer_id
    record_routed(session, make_inquiry(), "li", T0 + timedelta(days=200))
    row = session.get_one(CustomerRow, cid)
    assert row.owner == "li"
    last = session.scalars(select(OwnerHistoryRow).order_by(OwnerHistoryRow.id.desc())).first()
    assert (last.from_rep, last.to_rep, last.reason) == ("zhang", "li", "ownership lapsed")


def test_handover_and_transfer_are_recorded(session: Session) -> None:
    a = record_routed(session, make_inquiry(), "zhang", T0).customer_id
    b = record_routed(session, make_inquiry(sender="x@beta.fr", domain="beta.fr"), "zhang", T0).customer_id
    handover(session, a, "li", "zhang on leave", T0 + timedelta(days=1))
    assert transfer(session, "zhang", "chen", T0 + timedelta(days=2)) == 1
    owners = {r.id: r.owner for r in session.scalars(select(CustomerRow))}
    assert owners == {a: "li", b: "chen"}
    steps = session.execute(select(OwnerHistoryRow.customer_id, OwnerHistoryRow.from_rep,
                                   OwnerHistoryRow.to_rep, OwnerHistoryRow.reason)
                            .order_by(OwnerHistoryRow.id)).all()
    assert steps[-2:] == [(a, "zhang", "li", "zhang on leave"), (b, "zhang", "chen", "transfer from zhang")]


def test_set_status_by_domain_and_reported_on_match(session: Session) -> None:
    record_routed(session, make_inquiry(), "zhang", T0)
    set_status(session, "acme.de", "rejected", "price too low for us")
    found = match(session)
    assert (found.status, found.status_reason) == ("rejected", "price too low for us")
    with pytest.raises(RegistryError, match="unknown status"):
        set_status(session, "acme.de", "maybe")
    with pytest.raises(RegistryError, match="no customer"):
        set_status(session, "nobody@nowhere.example", "active")


def test_score_rich_rfq_from_corporate_domain_is_tier_a() -> None:
    inquiry = make_inquiry(
        subject="RFQ: 5000 pcs M8 bolts", text="Please quote FOB Shanghai, 5000 pcs, 8 mm.",
        signature=SIGNATURE, attachments=(Attachment("drawing.dwg", "application/acad", 100),))
    score = score_inquiry(inquiry, ScoreSettings(countries={"DE": 5}), reinquiry=True)
    assert score.tier == "A" and score.points == 100
    assert score.reasons == (
        "+15 corporate domain acme.de", "+10 incoterm FOB", '+15 quantity "5000 pcs"',
        '+5 specification "8 mm"', "+15 drawing attached (drawing.dwg)",
        "+10 RFQ in subject or file name", "+5 phone in signature", "+5 company named",
        "+15 re-inquiry (known customer)", "+5 country DE")


def test_score_reasons_are_worded_for_a_chinese_rep_and_stay_english_for_logs() -> None:
    """Issue 15 item 2: the zh forward showed the lead score's reasons in English."""
    from mailrouter.decide.examine import with_score
    from mailrouter.model import Decision, Outcome

    inquiry = make_inquiry(subject="RFQ: 5000 pcs", text="Please quote FOB Shanghai, 5000 pcs.")
    score = score_inquiry(inquiry, ScoreSettings(countries={"DE": 5}))
    assert score.reasons_in("zh") == ("+15 企业域名 acme.de", "+10 贸易术语 FOB", "+15 数量“5000 pcs”",
                                      "+10 主题或文件名含 RFQ", "+5 国家 DE")
    assert score.reasons_in("en") == score.reasons == (
        "+15 corporate domain acme.de", "+10 incoterm FOB", '+15 quantity "5000 pcs"',
        "+10 RFQ in subject or file name", "+5 country DE")
    routed = Decision(Outcome.ROUTED, "rule", rep="zhang")
    assert dict(with_score(routed, score, "zh").notes)["Lead score"] == (
        "55 (B)：+15 企业域名 acme.de；+10 贸易术语 FOB；+15 数量“5000 pcs”；+10 主题或文件名含 RFQ；+5 国家 DE")
    assert dict(with_score(routed, score).notes)["Lead score"].startswith("55 (B): +15 corporate domain acme.de; ")


def test_score_vague_free_mail_inquiry_is_tier_c() -> None:
    score = score_inquiry(make_inquiry(sender="x@gmail.com", domain="gmail.com", free_mail=True,
                                       text="hello, price?"))
    assert (score.points, score.tier, score.reasons) == (0, "C", ("-5 free-mail address",))


def test_key_account_domain_scores() -> None:
    score = score_inquiry(make_inquiry(), ScoreSettings(key_account_domains=frozenset({"acme.de"})))
    assert "+30 key account acme.de" in score.reasons and score.tier == "B"


def test_registry_section_validated_with_every_problem() -> None:
    from mailrouter.config.reader import Problem, Reader
    from mailrouter.registry.settings import read_registry_section

    problems: list[Problem] = []
    settings = read_registry_section(Reader("config.toml", problems), {
        "quiet_days": 90, "position": "sideways", "colour": "red",
        "score": {"drawing": 20, "tier_a": 20, "tier_b": 50, "countries": {"DE": 5, "Atlantis": 3},
                  "key_account_domains": ["Bosch.de"]}})
    assert settings.quiet_days == 90 and settings.score.drawing == 20
    assert settings.score.countries == {"DE": 5}
    assert settings.score.key_account_domains == frozenset({"bosch.de"})
    assert sorted(p.key for p in problems) == [
        "registry.colour", "registry.position", "registry.score.countries.Atlantis",
        "registry.score.tier_b"]
