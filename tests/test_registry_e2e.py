"""One client, one rep — on the real mail test bed, with the clock moved instead of slept."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from mailrouter.commands.cli import main
from mailrouter.testing.samples import FRENCH, GERMAN, SPANISH, Sample, compose
from tests.mailcheck import MovableClock, configure, forwards_by_original, parsed, route_all

pytestmark = pytest.mark.integration

START = datetime(2026, 10, 20, 9, 0, tzinfo=timezone.utc)



def inquiry(sender: str, subject: str, body: str, n: int) -> Sample:
    return Sample(subject, ("sales@example.com",), compose(sender, subject, body, n=n), "routed")


def forward_of(bed, config, sample):
    (rep, fwd), = forwards_by_original(bed, config)[str(parsed(sample.raw)["Message-ID"])]
    return rep, fwd


def test_colleague_at_the_same_company_reaches_the_same_rep(bed, tmp_path):
    config = configure(bed, tmp_path)
    clock = MovableClock(START)
    first = inquiry("Marie Dubois <m.dubois@lumiere-lyon.fr>", "Demande de prix LED", FRENCH, 301)
    route_all(bed, config, [first], clock)
    owner, _ = forward_of(bed, config, first)

    clock.now = START + timedelta(days=30)  # "last month"
    # round robin alone would now give the other member of the team
    colleague = inquiry("Paul Martin <p.martin@lumiere-lyon.fr>", "Nouvelle demande LED", FRENCH, 302)
    route_all(bed, config, [colleague], clock)
    rep, fwd = forward_of(bed, config, colleague)
    assert rep == owner
    assert str(fwd["X-Mailrouter-Labels"]).startswith("[再次询盘][FR]")
    assert fwd["Importance"] == "high"
    body = fwd.get_body(("plain",)).get_content()
    assert "same domain as lumiere-lyon.fr" in body and f"owned by {config.reps[owner].name}" in body


def test_free_mail_senders_are_never_matched_by_domain(bed, tmp_path):
    config = configure(bed, tmp_path)
    clock = MovableClock(START)
    first = inquiry("Carlos <carlos.compras@gmail.com>", "Consulta de precios", SPANISH, 311)
    other = inquiry("Lucia <lucia.ventas@gmail.com>", "Consulta de precios", SPANISH, 312)
    route_all(bed, config, [first], clock)
    clock.now += timedelta(days=1)
    route_all(bed, config, [other], clock)
    _, fwd = forward_of(bed, config, other)
    assert "再次询盘" not in str(fwd["X-Mailrouter-Labels"] or "") and fwd["Importance"] is None
    assert "spanish-portuguese" in fwd["X-Mailrouter"]  # decided by the rules, not the registry


def test_trade_show_contact_writing_from_free_mail_reaches_the_importing_owner(bed, tmp_path, capsys):
    config = configure(bed, tmp_path)
    sheet = tmp_path / "canton-fair.csv"
    sheet.write_text("姓名,公司,电话,国家\n"
                     "Klaus Becker,Becker Elektronik GmbH,+49 89 1234567,德国\n", encoding="utf-8-sig")
    assert main(["-c", str(config.path), "registry", "import", str(sheet),
                 "--source", "Canton Fair 2025", "--owner", "li"]) == 0
    assert "created 1" in capsys.readouterr().out.replace(":", "")
    # GERMAN ends with the signature "Becker Elektronik GmbH / Tel. +49 89 1234567";
    # the rules alone would give a German PCB inquiry to zhang.
    mail = inquiry("Klaus <klaus.becker.1970@gmail.com>", "Anfrage Leiterplatten", GERMAN, 321)
    route_all(bed, config, [mail], MovableClock(START))
    rep, fwd = forward_of(bed, config, mail)
    assert rep == "li"
    assert str(fwd["X-Mailrouter-Labels"]).startswith("[再次询盘]")


def test_ownership_lapses_after_the_quiet_period(bed, tmp_path):
    config = configure(bed, tmp_path)
    clock = MovableClock(START)
    first = inquiry("Marie Dubois <m.dubois@lumiere-lyon.fr>", "Demande de prix LED", FRENCH, 331)
    route_all(bed, config, [first], clock)
    owner, _ = forward_of(bed, config, first)

    clock.now = START + timedelta(days=config.registry.quiet_days + 1)
    again = inquiry("Paul Martin <p.martin@lumiere-lyon.fr>", "Nouvelle demande LED", FRENCH, 332)
    route_all(bed, config, [again], clock)
    rep, fwd = forward_of(bed, config, again)
    assert "再次询盘" not in str(fwd["X-Mailrouter-Labels"] or "")
    assert rep != owner  # the rules decided again: round robin moved on to the other member
    assert "rule=europe" in fwd["X-Mailrouter"]


def test_bilingual_registry_company_recognised_from_its_english_name_and_phone(bed, tmp_path, capsys):
    """Issue 16 (b): imported under its Chinese name with an English alias; the buyer writes
    from gmail in English, signing with the English name and the same phone."""
    config = configure(bed, tmp_path)
    sheet = tmp_path / "customers.csv"
    sheet.write_text("公司,别名,电话,国家,负责人\n"
                     '深圳市某某科技有限公司,"Shenzhen Mou Technology Co., Ltd.；深圳某某",'
                     "+86 755 8888 6666,中国,chen\n", encoding="gbk")
    assert main(["-c", str(config.path), "registry", "import", str(sheet), "--source", "CRM"]) == 0
    assert "created 1" in capsys.readouterr().out.replace(":", "")
    body = ("Hello,\n\nplease quote 2,000 pcs of 4-layer PCB, 1.6 mm, ENIG.\n\nBest regards\n"
            "Tom Lee\nPurchasing Manager\nShenzhen Mou Technology Co., Ltd.\nTel: +86 755 8888 6666\n")
    mail = inquiry("Tom Lee <tom.lee.sz@gmail.com>", "RFQ 4-layer PCB", body, 341)
    route_all(bed, config, [mail], MovableClock(START))
    rep, fwd = forward_of(bed, config, mail)
    assert rep == "chen"  # the owner; no rule gives an English PCB inquiry to chen
    assert str(fwd["X-Mailrouter-Labels"]).startswith("[再次询盘]")
    text = fwd.get_body(("plain",)).get_content()
    assert "alias 'Shenzhen Mou Technology Co., Ltd.' + phone +8675588886666" in " ".join(text.split())


def test_a_manual_assignment_teaches_the_company_s_second_name(bed, tmp_path):
    """Issue 16 item 3: the manager's Assign/ move makes both names the mail signs with known,
    so a colleague signing with the Chinese name and the same phone needs no manager."""
    from tests.mailcheck import folder_of, run_until, shared_copies
    from tests.test_manager_e2e import move

    config = configure(bed, tmp_path)
    signed = ("Hello,\n\nplease send your catalogue and price list.\n\nBest regards\nSam Lee\n"
              "Global Imports Trading Co., Ltd.\n环球进口贸易有限公司\nTel: +852 2123 4567\n")
    first = Sample("Catalogue", ("sales@example.com",),
                   compose("Sam Lee <sam.lee.gi@gmail.com>", "Catalogue", signed, n=351), "unrecognized")
    route_all(bed, config, [first])
    assert folder_of(shared_copies(bed, "sales@example.com"), first) == ["Unrecognized"]
    move(bed, "sales@example.com", "Unrecognized", "Assign/张伟")
    run_until(config, lambda: folder_of(shared_copies(bed, "sales@example.com"), first) == ["Routed/张伟"],
              "the assigned copy to be filed")

    colleague = inquiry("李明 <liming.gi@163.com>", "询价",
                        "您好，\n\n请发产品目录和价格。\n\n李明\n环球进口贸易有限公司\n电话：+852 2123 4567\n", 352)
    route_all(bed, config, [colleague])
    rep, fwd = forward_of(bed, config, colleague)
    assert rep == "zhang" and str(fwd["X-Mailrouter-Labels"]).startswith("[再次询盘]")
    assert "alias '环球进口贸易有限公司' + phone +85221234567" in " ".join(fwd.get_body(("plain",)).get_content().split())
