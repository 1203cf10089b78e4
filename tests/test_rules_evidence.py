"""Rule conditions on the evidence: country source and confidence, main product, where keywords
are looked for, and Traditional Chinese under a "zh" rule."""
from __future__ import annotations

from pathlib import Path

import pytest

from mailrouter.config.load import ConfigError, load_config
from mailrouter.decide.assign import TeamState, decide
from mailrouter.model import Outcome
from tests.factories import EXAMPLE_ENV, copy_example, make_inquiry

EVIDENCE_RULES = '''
[[rule]]
name = "sure-spain"
country = ["ES"]
country_source = ["phone", "form", "cctld"]
country_min_confidence = 0.8
rep = "li"

[[rule]]
name = "valves-first"
main_product = ["VALVE"]
rep = "chen"

[[rule]]
name = "signature-says-distributor"
keywords = ["distributor"]
keywords_in = ["signature"]
rep = "wang"

[[rule]]
name = "taiwan"
language = ["zh-TW"]
rep = "zhang"
'''


def load_with(tmp_path: Path, extra: str):
    path = copy_example(tmp_path)
    (tmp_path / "rules" / "40-evidence.toml").write_text(extra, encoding="utf-8")
    return load_config(path, environ=EXAMPLE_ENV)


@pytest.fixture()
def config(tmp_path):
    return load_with(tmp_path, EVIDENCE_RULES)


def gmail(**fields):
    return make_inquiry(**{"sender": "buyer@gmail.com", "domain": "gmail.com", "free_mail": True,
                           "language": "en", **fields})


def test_reason_shows_the_country_evidence(config):
    q = gmail(country="ES", country_source="phone", country_confidence=0.94,
              country_evidence="phone +34 in signature; 'España' in signature")
    d = decide(q, config, TeamState())
    assert d.rule == "sure-spain"
    assert d.reason.startswith("rule 'sure-spain': country ES (phone +34 in signature; 'España' in signature)")
    assert "country from phone" in d.reason and "country confidence 0.94 >= 0.8" in d.reason


def test_country_from_a_weak_source_or_low_confidence_does_not_satisfy_the_rule(config):
    by_city = gmail(country="ES", country_source="city", country_confidence=0.9)
    unsure_phone = gmail(country="ES", country_source="phone", country_confidence=0.5)
    assert decide(by_city, config, TeamState()).rule != "sure-spain"
    assert decide(unsure_phone, config, TeamState()).rule != "sure-spain"


def test_main_product_condition_takes_only_the_best_scored_line(config):
    mostly_valves = gmail(country=None, products=("VALVE", "PCB"), product_evidence="VALVE 5 (valve x2) over PCB 1")
    mostly_pcbs = gmail(country=None, products=("PCB", "VALVE"))
    d = decide(mostly_valves, config, TeamState())
    assert (d.rule, d.rep) == ("valves-first", "chen")
    assert "main product VALVE: VALVE 5 (valve x2) over PCB 1" in d.reason
    assert decide(mostly_pcbs, config, TeamState()).rule != "valves-first"


def test_keywords_in_the_signature_only(config):
    in_signature = gmail(country=None, signature="Purchasing, ACME (authorised distributor)")
    in_body = gmail(country=None, text="Are you looking for a distributor?")
    d = decide(in_signature, config, TeamState())
    assert d.rule == "signature-says-distributor" and "keywords distributor in signature" in d.reason
    assert decide(in_body, config, TeamState()).rule != "signature-says-distributor"


def test_default_keywords_ignore_the_signature(tmp_path):
    config = load_with(tmp_path, '[[rule]]\nname = "urgent"\nkeywords = ["urgent"]\nrep = "li"\n')
    assert decide(gmail(country=None, signature="URGENT: our hours"), config, TeamState()).rule != "urgent"
    assert decide(gmail(country=None, subject="Urgent RFQ"), config, TeamState()).rule == "urgent"


def test_zh_rule_takes_traditional_chinese_and_zh_tw_rule_only_that(config):
    traditional = gmail(country=None, language="zh-TW")
    simplified = gmail(country=None, language="zh")
    assert decide(traditional, config, TeamState()).rule == "taiwan"
    d = decide(simplified, config, TeamState())
    assert (d.rule, d.outcome) == ("chinese-speaking", Outcome.ROUTED)


def test_mistakes_in_the_new_keys_name_file_rule_and_key(tmp_path):
    bad = ('[[rule]]\nname = "bad"\ncountry_source = ["rumour"]\ncountry_min_confidence = 2\n'
           'main_product = ["TOASTER"]\nkeywords_in = ["footer"]\nkeywords = ["x"]\nrep = "li"\n'
           '[products.X]\nkeywords = ["x"]\nweight = 0\n')
    with pytest.raises(ConfigError) as info:
        load_with(tmp_path, bad)
    found = [str(p) for p in info.value.problems]
    file = tmp_path / "rules" / "40-evidence.toml"
    assert any(p.startswith(f"{file}: rule 'bad': country_source: unknown source(s) ['rumour']") for p in found)
    assert f"{file}: rule 'bad': country_min_confidence: must be a number from 0 to 1, not 2" in found
    assert any(p.startswith(f"{file}: rule 'bad': main_product: unknown product line 'TOASTER'") for p in found)
    assert any(p.startswith(f"{file}: rule 'bad': keywords_in: unknown part(s) ['footer']") for p in found)
    assert any(p.startswith(f"{file}: products.X.weight: must be a number above 0") for p in found)


def test_explain_prints_the_country_and_product_evidence():
    from mailrouter.commands.explain import explain_bytes
    from mailrouter.testing.samples import compose
    from tests.factories import example_config

    body = ("Buenos días, necesitamos 500 válvulas de bola y dos válvulas de retención; "
            "también una placa de circuito.\n\nCarlos Ruiz\nSevilla, España\nTel. +34 954 21 30 45\n")
    text = explain_bytes(example_config(), compose("carlos@gmail.com", "Cotización", body))
    assert "Country:    ES (0.98 from phone: phone +34" in text and "'España'" in text
    assert "Products:   VALVE, PCB (main: VALVE" in text
    assert "Rule:       europe" in text and "country ES (phone +34" in text


def test_explain_shows_the_subject_the_buyer_gets_back_and_the_labels_apart():
    from mailrouter.commands.explain import explain_bytes
    from mailrouter.testing.samples import GERMAN, compose
    from tests.factories import example_config

    text = explain_bytes(example_config(), compose("Klaus Becker <k.becker@becker-elektronik.de>",
                                                   "Anfrage Leiterplatten", GERMAN))
    assert "Forward:    Anfrage Leiterplatten" in text.splitlines()
    assert "Labels:     [DE][PCB] (the rep's view only)" in text.splitlines()
