"""The forward as a rep sees it, read from the rep's mailbox on the test bed (issue 15 item 2,
done-when (b), and the zh forward in headless Chromium, done-when (e)).

The rep's list shows "Klaus Becker via Sales"; the body starts with the buyer's text and
signature under the From/Sent/To/Subject block a mail client puts on a forward, then one
context line, then the details; all in the rep's language (config `language` per rep).
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from mailrouter.intake.fingerprint import content_key
from mailrouter.testing.samples import demo_samples
from tests.mailcheck import attached_original, configure, forwards_by_original, parsed, route_all
from tests.test_reports_render import CHROMIUM, png_pixels

pytestmark = pytest.mark.integration

# (language, the forward's first line, the Subject label, the context line's start, a details label)
LAYOUT = {
    "en": ("---------- Forwarded message ----------", "Subject: Anfrage Leiterplatten 5000 Stück",
           "[DE][PCB] New customer · Germany · PCB · rule german-pcb", "Reason"),
    "zh": ("------------------ 原始邮件 ------------------", "主题：Anfrage Leiterplatten 5000 Stück",
           "[DE][PCB] 新客户 · 德国 · PCB · 规则 german-pcb", "原因"),
}
REASON = {"en": "Reason:      rule 'german-pcb': country DE (ccTLD .de) in region dach; product PCB",
          "zh": "原因：规则 'german-pcb'：国家 DE（ccTLD .de）属于区域 dach；产品 PCB"}
BUYER_TEXT = "wir suchen einen Lieferanten für mehrlagige Leiterplatten"
SIGNATURE = "Tel. +49 89 1234567"


def _in_order(body: str, *parts: str) -> list[int]:
    return [body.find(part) for part in parts]


@pytest.mark.parametrize("language", ["en", "zh"])
def test_forward_shows_the_buyer_first_in_the_reps_language(bed, tmp_path: Path, language: str) -> None:
    config = configure(bed, tmp_path, {"reps": {"zhang": {"language": language}}})
    sample = next(s for s in demo_samples() if s.label == "German PCB buyer")
    route_all(bed, config, [sample])
    (rep, forward), = forwards_by_original(bed, config)[str(parsed(sample.raw)["Message-ID"])]
    assert rep == "zhang"

    sender = forward["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == ("Klaus Becker via Sales", "sales@example.com")
    assert forward["Reply-To"].addresses[0].addr_spec == "k.becker@becker-elektronik.de"
    assert str(forward["Subject"]) == "Anfrage Leiterplatten 5000 Stück"

    first_line, subject_line, context, details = LAYOUT[language]
    text = "\n".join(forward.get_body(("plain",)).get_content().splitlines())
    assert text.startswith(first_line + "\nFrom: " if language == "en" else first_line + "\n发件人：")
    order = _in_order(text, subject_line, BUYER_TEXT, "Mit freundlichen Grüßen", SIGNATURE, context, details)
    assert -1 not in order and order == sorted(order), order
    html = forward.get_body(("html",)).get_content()
    order = _in_order(html, subject_line.replace(": ", ":</b> ").replace("：", "：</b>"), BUYER_TEXT, SIGNATURE,
                      context, details)
    assert -1 not in order and order == sorted(order), order
    assert content_key(attached_original(forward)) == content_key(sample.raw)  # the original, unchanged
    # why this rep, in the rep's language too: the rule's conditions in words (issue 15)
    assert REASON[language] in text.splitlines(), [line for line in text.splitlines() if details in line]

    if language == "zh":
        _zh_forward_renders_in_chromium(html, tmp_path)


def _zh_forward_renders_in_chromium(html: str, tmp_path: Path) -> None:
    """Done-when (e) for the forward: the HTML a zh rep opens, as a browser engine lays it out."""
    if CHROMIUM is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    page = tmp_path / "forward-zh.html"
    page.write_text(html, encoding="utf-8")
    shot = tmp_path / "forward-zh.png"
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}"]
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1000,700", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], check=True, capture_output=True,
                         timeout=120).stdout.decode("utf-8")
    # The browser's parse keeps the buyer's words, then the signature, then the context line,
    # each in its own element (an unescaped < in the buyer's text would have swallowed them).
    ids = re.findall(r'id="(original-header|buyer-text|buyer-signature|context|details)"', dom)
    assert ids == ["original-header", "buyer-text", "buyer-signature", "context", "details"], ids
    assert BUYER_TEXT in re.search(r'id="buyer-text"[^>]*>(.*?)</div>', dom, re.S)[1]
    assert "新客户 · 德国" in re.search(r'id="context"[^>]*>(.*?)</p>', dom, re.S)[1]
    bpp, rows = png_pixels(shot, max_rows=700)
    pixels = {row[i:i + 3] for row in rows for i in range(0, len(row), bpp)}
    assert len(pixels) > 20, "the page looks blank"
    inked = [y for y, row in enumerate(rows)
             if any(sum(row[i:i + 3]) < 300 for i in range(0, len(row), bpp))]  # rows with dark text
    assert len(inked) > 100, f"only {len(inked)} rows carry text"
