"""suggest-rules: traits that manual assignments share become candidate rules (pure)."""
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
    assert any(s.condition == 'sender_domain = [".vn"]' for s in found)
    assert any(s.rep == "li" and s.condition == 'country = ["DE"]' for s in found)


def test_mixed_or_rare_traits_are_not_suggested():
    cases = [case("chen")] * 5 + [case("li")] * 5 + [case("zhang", "BR", "pt", sender="c@d.com.br")] * 2
    assert [s for s in suggest(cases) if s.condition.startswith("country")] == []
