"""Routing on the evidence in a message, against the real test bed (issue 16, test a)."""
from __future__ import annotations

from pathlib import Path

import pytest

from mailrouter.testing.samples import Sample, compose
from mailrouter.testing.testbed import TestBed
from tests.mailcheck import configure, forwards_by_original, parsed, route_all

pytestmark = pytest.mark.integration

SPANISH_GMAIL = ("Buenos días,\n\nnecesitamos una cotización para 500 válvulas de bola de acero "
                 "inoxidable, DN25, con el plazo de entrega.\n\nSaludos cordiales,\n"
                 "Carlos Ruiz\nCompras\nTel. +34 954 21 30 45\n")


def test_gmail_buyer_with_a_spanish_phone_is_routed_by_the_europe_rule(bed: TestBed, tmp_path: Path):
    # Before issue 16 the country was unknown (gmail.com) and the Spanish language sent this
    # buyer to the Americas team; the +34 in the signature makes it Spain, so rule "europe".
    raw = compose("Carlos Ruiz <carlos.ruiz.compras@gmail.com>", "Cotización válvulas", SPANISH_GMAIL, n=1601)
    sample = Sample("gmail +34", ("sales@example.com",), raw, "routed", "team:europe")
    config = configure(bed, tmp_path)
    route_all(bed, config, [sample])
    (rep, forward), = forwards_by_original(bed, config)[str(parsed(raw)["Message-ID"])]
    assert rep in config.teams["europe"].members
    assert f"rule=europe; rep={rep}" in forward["X-Mailrouter"]  # then the marker's signature
    assert str(forward["X-Mailrouter-Labels"]).startswith("[ES]")
    text = "\n".join(p.get_content() for p in forward.walk() if p.get_content_type() == "text/plain")
    # the reason, with its evidence, in the forward, worded in the rep's language
    assert {"en": "country ES (phone +34", "zh": "国家 ES（phone +34"}[config.reps[rep].language] in text, text
