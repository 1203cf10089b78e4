"""Accuracy of language, country and main product on the labelled set, run by hand:

    PYTHONPATH=$PWD python bench/accuracy.py

Prints the Markdown tables in docs/ACCURACY.md (per language; short and long texts; the
length curve that sets classify.min_language_chars; country and product).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailrouter.testing.accuracy import Tally, length_curve, load_set, measure
from tests.factories import example_config


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def row(name: str, now: Tally, before: Tally | None = None) -> str:
    cells = [name, str(now.total), pct(now.right, now.total), pct(now.none, now.total),
             pct(now.wrong, now.total)]
    if before is not None:
        cells += [pct(before.right, before.total), pct(before.wrong, before.total)]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    items = load_set()
    report = measure(example_config().parse, items)
    print(f"{len(items)} labelled inquiries\n")
    print("| language | texts | right | none | wrong | langdetect alone: right | wrong |")
    print("|---|---|---|---|---|---|---|")
    keys = sorted(k for k in report.language if k not in ("short", "long", "all"))
    for key in [*keys, "short", "long", "all"]:
        print(row(key, report.language[key], report.langdetect_alone[key]))
    print("\nLength curve (Latin-script texts cut to their first N letters, langdetect):\n")
    print("| N letters | right |")
    print("|---|---|")
    for n, (right, tried) in length_curve(items).items():
        print(f"| {n} | {pct(right, tried)} ({right}/{tried}) |")
    print("\n| field | labelled | right | none | wrong |")
    print("|---|---|---|---|---|")
    print(row("country", report.country))
    print(row("main product", report.product))
    mistakes = [m for t in (report.language["all"], report.country, report.product) for m in t.mistakes]
    if mistakes:
        print("\nWrong answers:\n")
        print("\n".join(f"- {m}" for m in mistakes))


if __name__ == "__main__":
    main()
