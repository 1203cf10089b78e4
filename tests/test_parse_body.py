"""Body text: quoted history and signatures split off."""
from __future__ import annotations

from mailrouter.parse.body import drop_quoted, split_reply


def test_outlook_style_history_is_dropped() -> None:
    text = "Hi, need a price for 200 pcs.\n\n-----Original Message-----\nFrom: a@b.com\nSent: Monday\nTo: x\nSubject: y\n\nold"
    assert split_reply(text)[0] == "Hi, need a price for 200 pcs."


def test_chinese_client_history_marker_is_dropped() -> None:
    text = "请报价五百块。\n\n------------------ 原始邮件 ------------------\n发件人: li@f.cn\n旧的内容"
    assert split_reply(text)[0] == "请报价五百块。"


def test_hyphen_lists_are_not_mistaken_for_signatures() -> None:
    text = "We need:\n- 500 pcs PCB\n- 200 pcs cable\nThanks"
    assert "- 200 pcs cable" in split_reply(text)[0]


def test_quoted_lines_and_their_attribution_go_but_earlier_colons_stay() -> None:
    text = "Please quote the following:\nitem A\n\nOn Mon, Li wrote:\n> old\n> older\n"
    assert drop_quoted(text) == "Please quote the following:\nitem A"


def test_fully_quoted_mail_gives_empty_text() -> None:
    assert split_reply("> only\n> quotes\n") == ("", "")
