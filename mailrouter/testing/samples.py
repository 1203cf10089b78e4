"""Realistic sample inquiries for the demo, the integration tests and the benchmarks.

Each sample says where it should end up under the example config.toml and rules/, so the
tests check the whole pipeline against the same mail a person sees in the demo.
"""
from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from datetime import datetime, timedelta, timezone

SALES = "sales@example.com"
INFO = "info@example.com"
AMERICA = "america@example.com"


@dataclass(frozen=True)
class Sample:
    label: str
    to: tuple[str, ...]  # shared mailboxes it is delivered to
    raw: bytes
    outcome: str  # expected first outcome: routed, unrecognized, ignored, quarantined
    target: str | None = None  # expected rep id, or "team:<id>" for any member of a team
    duplicate_in: str | None = None  # delivered to several mailboxes: one copy is a duplicate
    buyer: str | None = None  # the address a rep's Reply must reach, when not From/Reply-To

    @property
    def envelope_from(self) -> str:
        """MAIL FROM as the customer's server sends it; empty (null) only for bounces."""
        sender = parseaddr(_header(self.raw, b"From"))[1]
        return "" if sender.lower().startswith("mailer-daemon@") else sender


def compose(sender: str, subject: str, body: str, *, to: str = SALES, html: str | None = None,
          headers: dict[str, str] | None = None, attachment: tuple[str, bytes] | None = None,
          n: int = 0) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc) + timedelta(minutes=n))
    msg["Message-ID"] = f"<sample{n}.20261102@{sender.rpartition('@')[2].rstrip('>')}>"
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    if attachment:
        msg.add_attachment(attachment[1], maintype="application", subtype="pdf", filename=attachment[0])
    return msg.as_bytes()


GERMAN_REQUEST = ("Sehr geehrte Damen und Herren,\n\nwir suchen einen Lieferanten für mehrlagige "
                  "Leiterplatten für unsere Steuergeräte. Bitte senden Sie uns ein Angebot für 5000 "
                  "Stück inklusive Lieferzeit und Zahlungsbedingungen.\n\nMit freundlichen Grüßen\n")
GERMAN = GERMAN_REQUEST + "Klaus Becker\nEinkauf, Becker Elektronik GmbH\nTel. +49 89 1234567"


def german(name: str, company: str, phone: str) -> str:
    """The German request signed by another buyer (each company its own signature)."""
    return f"{GERMAN_REQUEST}{name}\nEinkauf, {company}\nTel. {phone}"
FRENCH = ("Bonjour,\n\nNous sommes un distributeur de luminaires à Lyon et nous cherchons des "
          "panneaux LED pour nos clients. Pourriez-vous nous envoyer votre catalogue et vos prix "
          "pour une commande de 2000 pièces ?\n\nCordialement,\nMarie Dubois")
SPANISH = ("Hola,\n\nSomos una empresa de construcción en Guadalajara y necesitamos válvulas de "
           "bola de acero inoxidable. ¿Podrían enviarnos una cotización para 300 unidades con "
           "entrega en Manzanillo?\n\nSaludos cordiales,\nJuan Pérez")
PORTUGUESE = ("Olá,\n\nSomos uma distribuidora em São Paulo e gostaríamos de receber uma cotação "
              "de válvulas industriais. Precisamos de 1000 peças por mês, entrega no porto de "
              "Santos.\n\nAtenciosamente,\nAna Souza")
RUSSIAN = ("Здравствуйте!\n\nНаша компания занимается поставками электроники в Москве. Нам нужны "
           "печатные платы для блоков питания, примерно 10000 штук в месяц. Пришлите, пожалуйста, "
           "прайс-лист и условия доставки.\n\nС уважением,\nИван Петров")
ITALIAN = ("Buongiorno,\n\nsiamo un'azienda di impianti idraulici a Milano e vorremmo ricevere un "
           "preventivo per valvole a sfera in ottone, 500 pezzi, consegna a Genova.\n\nCordiali "
           "saluti,\nLuca Rossi")
ENGLISH = ("Hello,\n\nWe are an importer of electronic components and we are looking for a new "
           "supplier. Could you please send us your catalogue and price list together with your "
           "minimum order quantity?\n\nBest regards,\nJohn Smith")
CHINESE = ("您好，\n\n我们是一家位于新加坡的贸易公司，想采购一批电路板，数量大约两千片。"
           "请提供报价和交货期，谢谢！\n\n李先生")
POLISH = ("Dzień dobry,\n\njesteśmy hurtownią elektroniki w Krakowie i szukamy dostawcy płytek "
          "drukowanych PCB. Prosimy o ofertę cenową na 3000 sztuk wraz z terminem dostawy.\n\n"
          "Z poważaniem,\nTomasz Nowak")
ENGLISH_LED = ("Dear Sir or Madam,\n\nWe are a lighting wholesaler in Manchester and would like a "
               "quotation for 2,000 LED panels, 600 x 600 mm, 40 W, delivered CIF Felixstowe. Please "
               "include your lead time and payment terms.\n\nKind regards,\nOliver Brown")
DUTCH = ("Goedendag,\n\nWij zijn een groothandel in verlichting in Rotterdam en zoeken een "
         "leverancier van LED lampen. Kunt u ons een offerte sturen voor 3000 stuks?\n\nMet "
         "vriendelijke groet,\nPieter de Vries")


def demo_samples() -> list[Sample]:
    """About two dozen inquiries covering the cases the router must get right."""
    s: list[Sample] = []

    def add(label, raw, outcome, target=None, to=(SALES,), duplicate_in=None, buyer=None):
        s.append(Sample(label, to, raw, outcome, target, duplicate_in, buyer))

    add("German PCB buyer", compose("Klaus Becker <k.becker@becker-elektronik.de>",
                                  "Anfrage Leiterplatten 5000 Stück", GERMAN, n=1), "routed", "zhang")
    add("Austrian PCB buyer, HTML only", compose(
        "Einkauf <einkauf@steuer-technik.at>", "Anfrage PCB",
        german("Anna Huber", "Steuer-Technik GmbH", "+43 1 5876543"),
        html="<html><body><p>" + german("Anna Huber", "Steuer-Technik GmbH", "+43 1 5876543")
        .replace("\n", "<br>") + "</p></body></html>", n=2),
        "routed", "zhang")
    add("French LED distributor", compose("Marie Dubois <m.dubois@lumiere-lyon.fr>",
                                        "Demande de prix panneaux LED", FRENCH, n=3), "routed", "team:europe")
    add("Italian valve buyer", compose("Luca Rossi <luca.rossi@idraulica-milano.it>",
                                     "Richiesta preventivo valvole", ITALIAN, n=4), "routed", "team:europe")
    add("Dutch LED wholesaler", compose("Pieter de Vries <pieter@verlichting-groothandel.nl>",
                                      "Offerte LED lampen", DUTCH, n=5), "routed", "team:europe")
    add("Mexican valve buyer", compose("Juan Pérez <compras@construcciones-gdl.com.mx>",
                                     "Cotización válvulas", SPANISH, n=6), "routed", "team:americas")
    add("Brazilian distributor", compose("Ana Souza <ana@distribuidora-sp.com.br>",
                                       "Cotação de válvulas", PORTUGUESE, n=7), "routed", "team:americas")
    add("Spanish speaker on gmail", compose("Carlos Gómez <carlos.gomez.compras@gmail.com>",
                                          "Consulta de precios", SPANISH, n=8), "routed", "team:americas")
    add("Russian PCB buyer", compose("Иван Петров <ivan@elektronika-msk.ru>",
                                   "Запрос: печатные платы", RUSSIAN, n=9), "routed", "chen")
    add("Russian speaker on mail.ru", compose("Ivan <ivan.petrov1980@mail.ru>",
                                            "Запрос цены", RUSSIAN, n=10), "routed", "chen")
    add("Chinese-speaking buyer", compose("李先生 <li@trading-sg.com>", "询价：电路板", CHINESE, n=11),
        "routed", "wang")
    add("US buyer via the america@ alias", compose("John Smith <john@components-usa.com>",
                                                 "Request for quotation", ENGLISH, to=AMERICA, n=12),
        "routed", "team:americas")  # the alias delivers into sales@; its To: is the routing signal
    add("German buyer with a drawing attached", compose(
        "Technik <technik@maschinenbau-koeln.de>", "Anfrage Leiterplatten nach Zeichnung",
        german("Jürgen Schmitz", "Maschinenbau Köln AG", "+49 221 7654321"),
        attachment=("Zeichnung-4711.pdf", b"%PDF-1.4\n" + b"0" * 20000), n=13), "routed", "zhang")
    add("Same inquiry to sales@ and info@", compose(
        "Sophie Martin <sophie.martin@eclairage-paris.fr>", "Demande de devis LED", FRENCH,
        to=f"{SALES}, {INFO}", n=14), "routed", "team:europe", to=(SALES, INFO), duplicate_in=INFO)
    add("English gmail sender, no product", compose("buyer.jones@gmail.com", "Price list please",
                                                  ENGLISH, n=15), "unrecognized")
    add("English .com importer", compose("Sam Lee <sam@global-imports.com>", "Catalogue request",
                                       ENGLISH, n=16), "unrecognized")
    add("Website contact form (buyer in Reply-To)", compose(
        "Website <noreply@example.com>", "New contact form submission",
        "Name: Giulia Bianchi\nCompany: Bianchi Illuminazione Srl\nCountry: Italy\n"
        "Email: giulia@bianchi-illuminazione.it\n\nMessage:\nBuongiorno, vorremmo un preventivo per "
        "lampade LED da incasso, 800 pezzi, consegna a Napoli. Grazie mille.",
        headers={"Reply-To": "Giulia Bianchi <giulia@bianchi-illuminazione.it>"}, n=17),
        "routed", "team:europe")
    add("B2B platform notification (buyer in fields)", compose(
        "Alibaba <inquiry@notice.alibaba.com>", "You have a new inquiry",
        "Buyer inquiry details\n\nName: Hans Müller\nCompany: Müller Antriebstechnik GmbH\n"
        "Country: Germany\nEmail: h.mueller@mueller-antriebe.de\n\nMessage:\nWir benötigen ein "
        "Angebot für Leiterplatten, 2000 Stück, mit Lieferung nach Hamburg. Bitte mit Preis und "
        "Lieferzeit.", n=18), "routed", "zhang", buyer="h.mueller@mueller-antriebe.de")
    add("Out-of-office auto-reply", compose(
        "Peter Braun <p.braun@kunde-gmbh.de>", "Abwesenheitsnotiz: Ihre Nachricht",
        "Ich bin bis zum 15. November nicht im Büro.", headers={"Auto-Submitted": "auto-replied"},
        n=19), "ignored")
    add("Delivery failure (bounce)", _bounce(n=20), "ignored")
    add("Newsletter", compose("Trade Fair News <news@fair-newsletter.com>", "November newsletter",
                            ENGLISH, headers={"List-Id": "<news.fair-newsletter.com>",
                                              "List-Unsubscribe": "<mailto:unsub@fair-newsletter.com>",
                                              "Precedence": "bulk"}, n=21), "ignored")
    add("Polish PCB wholesaler", compose("Tomasz Nowak <t.nowak@hurtownia-krakow.pl>",
                                         "Zapytanie ofertowe PCB", POLISH, n=24), "routed", "team:europe")
    add("Chilean valve buyer", compose("Diego Rojas <compras@minera-norte.cl>", "Cotización de válvulas",
                                       SPANISH, n=25), "routed", "team:americas")
    add("Kazakh buyer writing Russian", compose("Азамат <azamat@stroy-almaty.kz>", "Запрос цены",
                                                RUSSIAN, n=26), "routed", "chen")
    add("British LED wholesaler", compose("Oliver Brown <oliver@lighting-manchester.co.uk>",
                                          "RFQ: LED panels", ENGLISH_LED, n=27), "routed", "team:europe")
    add("Mail from our own rep", compose("Li Na <li@example.com>", "FYI customer list", ENGLISH, n=22,
                                         headers={"Authentication-Results":  # as our server stamps it
                                                  "mx.example.com; auth=pass smtp.auth=li@example.com"}),
        "ignored")
    add("Hostile subject with encoded CR/LF", compose(
        "Mallory <m@evil-buyer.de>", "=?utf-8?q?Anfrage=0D=0ABcc:_victim@example.org?=",
        german("Mallory", "Evil Buyer GmbH", "+49 30 9988776"),
        n=23), "routed", "zhang")
    add("Not an email at all", b"\x00\x01\x02 this is not a message \xff\xfe\n", "quarantined")
    return s


def _bounce(n: int) -> bytes:
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n"
        f"To: {SALES}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: <bounce{n}@mx.example.net>\r\nAuto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\nThe mail system could not deliver your message.\r\n"
        "--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
        "Final-Recipient: rfc822; nobody@customer.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "--b1--\r\n").encode()


def _header(raw: bytes, name: bytes) -> str:
    for line in raw.split(b"\n"):
        if line.lower().startswith(name.lower() + b":"):
            return line.split(b":", 1)[1].strip().decode("utf-8", "replace")
        if not line.strip():
            break
    return ""


# Buyers for bulk samples: (domain, language body, subject); all routable by the example rules.
_BULK_BUYERS = (
    ("de", GERMAN_REQUEST, "Anfrage Leiterplatten"), ("fr", FRENCH, "Demande de prix LED"),
    ("it", ITALIAN, "Richiesta preventivo valvole"), ("com.br", PORTUGUESE, "Cotação de válvulas"),
    ("com.mx", SPANISH, "Cotización válvulas"), ("ru", RUSSIAN, "Запрос: печатные платы"),
    ("nl", DUTCH, "Offerte LED lampen"), ("es", SPANISH, "Consulta de precios válvulas"),
)


def bulk_samples(count: int, start: int = 1000, attachment_every: int = 0,
                 attachment_size: int = 200_000) -> list[Sample]:
    """`count` distinct routable inquiries in several languages (for backlogs and benchmarks)."""
    result = []
    for i in range(count):
        tld, body, subject = _BULK_BUYERS[i % len(_BULK_BUYERS)]
        sender = f"Buyer {i} <buyer{i}@company{i}.{tld}>"
        attachment = None
        if attachment_every and i % attachment_every == 0:
            attachment = (f"RFQ-{i}.pdf", b"%PDF-1.4\n" + bytes(range(256)) * (attachment_size // 256))
        raw = compose(sender, f"{subject} #{i}", f"{body}\n\nRef. {i}", attachment=attachment, n=start + i)
        result.append(Sample(f"bulk {i}", (SALES,), raw, "routed"))
    return result
