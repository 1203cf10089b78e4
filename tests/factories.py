"""Builders for test data shared by the unit tests."""
from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from mailrouter.config.load import Config, load_config
from mailrouter.model import Inquiry

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_ENV = {"MAILROUTER_SALES_PASSWORD": "s", "MAILROUTER_INFO_PASSWORD": "i",
               "MAILROUTER_SMTP_PASSWORD": "p"}


def make_inquiry(**fields) -> Inquiry:
    base = Inquiry(
        message_id="<m1@buyer.example>", subject="Inquiry", from_address="buyer@acme.de",
        sender="buyer@acme.de", sender_name="Buyer", reply_to="buyer@acme.de", domain="acme.de",
        country="DE", free_mail=False, recipients=("sales@example.com",), text="Please quote.",
        signature="", language="de", language_confidence=0.99, products=(), attachments=(),
        date=None)
    return replace(base, **fields)


HANS = dict(message_id="<q1@buyer.de>", from_address="hans@buyer.de", sender="hans@buyer.de",
            sender_name="Hans Müller", reply_to="hans@buyer.de", domain="buyer.de")


def hans_inquiry(**fields) -> Inquiry:
    """An inquiry from Hans Müller of buyer.de, the buyer the classifier and forward tests use."""
    return make_inquiry(**{**HANS, **fields})


def example_config() -> Config:
    """The annotated config.toml and rules/ exactly as shipped."""
    return load_config(ROOT / "config.toml", environ=EXAMPLE_ENV)


def copy_example(tmp_path: Path) -> Path:
    """A private copy of config.toml and rules/ that a test may edit."""
    shutil.copy(ROOT / "config.toml", tmp_path / "config.toml")
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    return tmp_path / "config.toml"
