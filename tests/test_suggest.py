"""suggest-rules: traits that manual assignments share become candidate rules (pure)."""
from dataclasses import replace

from mailrouter.commands.suggest import ManualCase, suggest


def case(rep, country="VN", language="vi", products=(), sender="a@x.com.vn"):
    return ManualCase(rep, country, language, tuple(products), sender)


def test_a_consistent_trait_becomes_a_rule():
    cases = [case("chen")] * 42 + [case("li")] * 8 + [case("li", "DE", "de", sender="b@y.de")] * 3
    found = suggest(cases)
    top = found[0]
    assert (top.rep, top.hits, top.total) == ("chen", 42, 50)
    assert top.sentence(53) == "42 of 50 manually assigned inquiries from VN went to chen (of the last 53)"
    assert 'country = ["VN"]' in top.toml() and 'rep = "chen"' in top.toml()
    assert any(s.condition == 'sender_domain = ["x.com.vn"]' for s in found)
    assert any(s.rep == "li" and s.condition == 'country = ["DE"]' for s in found)


def test_mixed_or_rare_traits_are_not_suggested():
    cases = [case("chen")] * 5 + [case("li")] * 5 + [case("zhang", "BR", "pt", sender="c@d.com.br")] * 2
    assert [s for s in suggest(cases) if s.condition.startswith("country")] == []


def test_never_a_public_suffix_nor_free_mail():
    cases = ([case("li", "SG", "en", sender="a@gmail.com")] * 2 + [case("li", "US", "en", sender="b@global-imports.com")]
             + [case("li", "SG", "en", sender="c@trading-sg.com")] + [case("li", "SG", "en", sender="d@com")] * 3)
    found = suggest(cases, min_hits=1, free_mail=frozenset({"gmail.com"}))
    domains = [s.condition for s in found if s.condition.startswith("sender_domain")]
    assert domains == ['sender_domain = ["global-imports.com"]', 'sender_domain = ["trading-sg.com"]']


def test_a_suggestion_says_what_else_it_would_catch(sessions):
    from datetime import datetime, timezone

    from mailrouter.commands.suggest import also_caught
    from mailrouter.store import MessageRow

    at = datetime(2026, 11, 17, 2, 0, tzinfo=timezone.utc)
    with sessions.begin() as s:
        for n, (country, sender) in enumerate([("VN", "a@x.com.vn")] * 3 + [("VN", "b@y.vn"), ("DE", "c@x.com.vn")]):
            s.add(MessageRow(mailbox="sales", uidvalidity=1, uid=n, raw_sha256=f"{n:064}", content_key=f"{n:064}",
                             state="filed", outcome="routed", folder="F", country=country, sender=sender,
                             received_at=at, decided_at=at))
    [top] = [x for x in suggest([case("chen", sender="a@x.com.vn")] * 3) if x.condition.startswith("country")]
    with sessions() as s:
        assert also_caught(s, top) == 1  # b@y.vn: four VN messages, three were the manual cases
    assert "it would also catch 1 other past message(s)" in replace(top, also=1).sentence(3)


def test_suggestions_in_chinese():
    from mailrouter.commands.suggest import format_suggestions

    [top, *_] = suggest([case("chen")] * 3)
    text = format_suggestions([replace(top, also=2)], 3, "zh")
    assert text.startswith("# 最近 3 个手动分配中，来自 VN的 3 个询盘有 3 个分给了 chen；该规则还会命中 2 封其他历史邮件\n[[rule]]")
    assert format_suggestions([], 5, "zh") == "最近 5 个手动分配中，没有足够多的共同特征可以写成规则。"
