"""Registry matching that knows companies (issue 16 item 3): aliases and second-script names,
legal forms across scripts, web sites from the signature, evidence, learning from Assign/."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailrouter.parse import DEFAULT_FREE_MAIL_DOMAINS
from mailrouter.registry.match import match_sender
from mailrouter.registry.models import CustomerAliasRow, CustomerRow
from mailrouter.registry.normalise import company_key, company_names, split_aliases
from mailrouter.registry.record import find_customer, record_routed
from tests.factories import make_inquiry
from tests.test_registry_import import counts, run_import, write

FREE = DEFAULT_FREE_MAIL_DOMAINS
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
GMAIL = dict(sender="buyer.2026@gmail.com", from_address="buyer.2026@gmail.com", domain="gmail.com",
             free_mail=True, country=None)


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as s:
        yield s


def match(session: Session, **fields):
    return match_sender(session, make_inquiry(**{**GMAIL, **fields}), FREE, T0, 180)


@pytest.mark.parametrize("names", [
    ("Acme Iberica, S.L.", "ACME IBÉRICA SL", "Acme Iberica Sociedad Limitada"),
    ("Rossi S.R.L.", "Rossi SRL", "Rossi s.r.l"),
    ("ООО «СветТехСнаб»", "АО СветТехСнаб", "СветТехСнаб ООО"),
    ("Shenzhen Mou Technology Co., Ltd.", "SHENZHEN MOU TECHNOLOGY CO LTD", "Shenzhen Mou Technology Inc."),
    ("深圳市某某科技有限公司", "深圳市某某科技股份有限公司", "深圳市某某科技"),
    ("トヨタ株式会社", "株式会社トヨタ", "トヨタ（株）"),
    ("삼성전자 주식회사", "주식회사 삼성전자", "(주)삼성전자"),
    ("Müller GmbH & Co. KG", "MÜLLER GMBH & CO KG", "Müller GmbH"),
    ("Dubois S.A.S.", "Dubois SAS", "Dubois S.A."),
    ("Maju Jaya PT", "PT. Maju Jaya", "PT Maju Jaya Tbk"),
])
def test_legal_forms_and_punctuation_normalise_across_scripts(names) -> None:
    keys = {company_key(n) for n in names}
    assert len(keys) == 1 and "" not in keys, keys


def test_a_trailing_name_in_another_script_is_a_second_name_a_city_is_not() -> None:
    assert company_names("SvetTechSnab LLC (ООО «СветТехСнаб»)") == ("SvetTechSnab LLC", "ООО «СветТехСнаб»")
    assert company_names("深圳市某某科技有限公司（Shenzhen Mou Technology Co., Ltd.）") == (
        "深圳市某某科技有限公司", "Shenzhen Mou Technology Co., Ltd.")
    assert company_names("Huawei Technologies (Shenzhen) Co., Ltd.") == ("Huawei Technologies (Shenzhen) Co., Ltd.",)
    assert company_names("Acme Ltd (Shenzhen)") == ("Acme Ltd (Shenzhen)",)


def test_alias_cells_split_on_both_semicolons_and_newlines() -> None:
    assert split_aliases("Acme Iberica; ACME España ；阿克米\n Acme ES ;") == (
        "Acme Iberica", "ACME España", "阿克米", "Acme ES")


BILINGUAL = ("公司,别名,电话,国家,负责人\n"
             '深圳市某某科技有限公司,"Shenzhen Mou Technology Co., Ltd.；深圳某某",+86 755 8888 6666,中国,li\n'
             '"SvetTechSnab LLC (ООО «СветТехСнаб»)",,+7 495 123-45-67,RU,zhang\n')


def test_imported_alias_and_phone_recognise_a_free_mail_buyer(session, tmp_path) -> None:
    assert counts(run_import(session, write(tmp_path, "b.csv", BILINGUAL))) == (2, 0, 0, 0, 0)
    found = match(session, signature="Best regards\nTom Lee\nShenzhen Mou Technology Co., Ltd\n"
                                     "Tel: +86 755 8888 6666")
    assert found is not None and (found.how, found.owner) == ("company+phone", "li")
    assert "alias 'Shenzhen Mou Technology Co., Ltd.' + phone +8675588886666" in found.evidence
    # the Chinese name itself with the phone, too
    found = match(session, signature="深圳市某某科技有限公司\n电话：+86 755 8888 6666")
    assert found is not None and "company '深圳市某某科技有限公司' + phone" in found.evidence


def test_a_company_imported_with_its_second_script_name_matches_either(session, tmp_path) -> None:
    run_import(session, write(tmp_path, "b.csv", BILINGUAL))
    for signature in ("SvetTechSnab LLC\n+7 495 123 45 67", "ООО «СветТехСнаб»\nтел. +7 (495) 123-45-67"):
        found = match(session, signature=signature)
        assert found is not None and found.owner == "zhang", signature
    assert match(session, signature="SvetTechSnab LLC") is None  # the name alone is not enough
    assert match(session, signature="Other LLC\n+7 495 123 45 67") is None


def test_aliases_are_stored_shown_and_exported(session, tmp_path) -> None:
    run_import(session, write(tmp_path, "b.csv", BILINGUAL))
    row = find_customer(session, "Shenzhen Mou Technology")
    assert row.company == "深圳市某某科技有限公司"
    assert sorted(a.alias for a in row.aliases) == ["Shenzhen Mou Technology Co., Ltd.", "深圳某某"]
    svet = find_customer(session, "ООО СветТехСнаб")
    assert [a.alias for a in svet.aliases] == ["ООО «СветТехСнаб»"]


def test_web_site_in_the_signature_finds_the_customer_by_domain(session) -> None:
    record_routed(session, make_inquiry(sender="compras@acme-iberica.es", from_address="compras@acme-iberica.es",
                                        domain="acme-iberica.es", country="ES"), "li", T0)
    found = match(session, signature="Ana García\nDpto. Compras\nwww.acme-iberica.es")
    assert found is not None and (found.how, found.owner) == ("site", "li")
    assert "web site acme-iberica.es in the signature" in found.evidence
    # the shared mailbox's own site, quoted by the buyer, is not theirs
    assert match(session, signature="saw you on https://www.example.com/led",
                 recipients=("sales@example.com",)) is None


def test_a_manual_assignment_teaches_the_registry_a_new_company_name(session) -> None:
    known = dict(sender="ivan@svet.ru", from_address="ivan@svet.ru", domain="svet.ru", country="RU")
    record_routed(session, make_inquiry(**known, company="SvetTechSnab LLC"), "zhang", T0)
    # a manager moves a mail signed with the Russian name into Assign/zhang
    manual = make_inquiry(**known, signature="Иван\nООО «СветТехСнаб»\n+7 495 123-45-67")
    record_routed(session, manual, "zhang", T0, learn_aliases=True)
    row = session.scalars(select(CustomerRow)).one()
    assert [a.alias for a in row.aliases] == ["ООО «СветТехСнаб»"]
    found = match(session, signature="ООО «СветТехСнаб»\n+7 495 123 45 67")
    assert found is not None and found.customer_id == row.id
    # routing by rules learns no names: a signature is not a manager's word
    record_routed(session, make_inquiry(**known, signature="Svet Trading Ltd\n+7 495 123-45-67"), "zhang", T0)
    assert session.scalar(select(CustomerAliasRow.id).where(CustomerAliasRow.alias == "Svet Trading Ltd")) is None


def test_the_upgrade_recomputes_company_keys_written_by_older_code(tmp_path: Path) -> None:
    """Revision 0004: a customer stored with the old key still matches after the upgrade."""
    from alembic import command
    from sqlalchemy import create_engine, text

    from mailrouter.migrations import _config
    from mailrouter.store import open_database

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.connect() as connection:
        command.upgrade(_config(connection), "0003")
        connection.execute(text(
            "INSERT INTO customers (id, company, company_key, contact_name, status, status_reason, source, "
            "first_seen, last_contact, owner_since, owner) VALUES (1, 'Acme Iberica Sociedad Limitada', "
            "'acmeibericasociedadlimitada', '', 'active', '', '', '2026-11-30 00:00:00', '2026-11-30 00:00:00', "
            "'2026-11-30 00:00:00', 'zhang')"))
        connection.execute(text("INSERT INTO customer_phones (customer_id, e164) VALUES (1, '+34600123456')"))
        connection.commit()
    engine.dispose()
    with open_database(url, migrate=True)() as upgraded:
        assert upgraded.scalar(select(CustomerRow.company_key)) == "acmeiberica"
        found = match(upgraded, signature="Acme Iberica S.L.\n+34 600 123 456")
        assert found is not None and found.owner == "zhang"
