"""Product-line keyword matching."""
from __future__ import annotations

from mailrouter.model import ProductLine
from mailrouter.parse.products import (
    KeywordMatcher,
    match_products,
    product_evidence,
    rank_products,
)

LINES = (
    ProductLine("VALVE", ("valve", "valvula", "válvula", "Ventil", "клапан", "阀门")),
    ProductLine("PCB", ("PCB", "printed circuit board", "Leiterplatte", "线路板")),
    ProductLine("CABLE", ("cable", "Kabel", "电缆")),
)


def test_subject_mention_outranks_a_body_mention_of_another_line() -> None:
    assert match_products("RFQ: PCB", "we also buy cable sometimes", LINES) == ("PCB", "CABLE")


def test_repeating_a_word_in_the_body_does_not_beat_the_subject() -> None:
    body = "cable cable cable cable cable"
    assert match_products("PCB order", body, LINES)[0] == "PCB"


def test_matching_is_accent_and_case_insensitive() -> None:
    assert match_products("", "Necesitamos VALVULAS y una válvula", LINES) == ("VALVE",)
    assert match_products("", "precio de la valvula", (ProductLine("V", ("válvula",)),)) == ("V",)


def test_whole_words_only_with_simple_plurals() -> None:
    assert match_products("", "Quote for 200 PCBs please", LINES) == ("PCB",)
    assert match_products("", "the pcbway website", LINES) == ()
    assert match_products("", "a multicable adapter", LINES) == ()


def test_multi_word_keyword_spans_line_breaks_and_spaces() -> None:
    assert match_products("", "printed\n  circuit   boards", LINES) == ("PCB",)


def test_cjk_keyword_matches_inside_a_sentence() -> None:
    assert match_products("", "我们需要采购一批线路板，请报价。", LINES) == ("PCB",)


def test_ties_keep_configuration_order() -> None:
    assert match_products("", "cable and valve", LINES) == ("VALVE", "CABLE")


def test_no_keywords_no_products() -> None:
    assert match_products("Hello", "General question", LINES) == ()


def test_keyword_matcher_reports_found_keywords_in_given_order() -> None:
    matcher = KeywordMatcher(["urgent", "Muster", "样品"])
    assert matcher.find("Need MUSTER and 样品 samples, urgent!") == ("urgent", "Muster", "样品")
    assert matcher.find("nothing here") == ()
    assert hash(matcher) == hash(KeywordMatcher(("urgent", "Muster", "样品")))


# Exact-case keywords, weights, and the main product with its evidence.


LED_EXACT = ProductLine("LED", ("led strip", "luminaire"), exact_case=("LED",))


def test_exact_case_keyword_does_not_match_the_verb() -> None:
    assert match_products("Partnership", "Your reputation has led us to contact you.", (LED_EXACT,)) == ()
    assert match_products("", "Quote for 200 LEDs and one LED panel", (LED_EXACT,)) == ("LED",)
    assert match_products("", "a led strip", (LED_EXACT,)) == ("LED",)  # the folded list still folds


def test_mostly_valves_with_one_pcb_mention_has_valve_as_main_product() -> None:
    body = ("We need ball valves DN50, 200 valves in total, and butterfly valves DN100. "
            "The valves are for a water plant. Our controller PCB supplier is already chosen.")
    ranked = rank_products("Inquiry", body, LINES)
    assert [s.id for s in ranked] == ["VALVE", "PCB"]
    assert product_evidence(ranked) == "VALVE 2 (valve x2) over PCB 1 (PCB x1)"


def test_weight_favours_a_line_when_both_are_named_equally() -> None:
    lines = (ProductLine("PCB", ("pcb",)), ProductLine("VALVE", ("valve",), weight=2.0))
    assert match_products("", "one pcb and one valve", lines) == ("VALVE", "PCB")


def test_singular_and_plural_keywords_count_a_place_once() -> None:
    lines = (ProductLine("VALVE", ("válvula", "válvulas")), ProductLine("PCB", ("pcb",)))
    ranked = rank_products("", "Necesitamos válvulas, y un pcb pcb", lines)
    assert [(s.id, s.points) for s in ranked] == [("PCB", 2), ("VALVE", 1)]
    assert ranked[1].hits == ("válvula x1",)
