"""Rules and assignment as pure functions: an inquiry in, a decision with its reason out."""
from dataclasses import replace
from datetime import timedelta

import pytest

from mailrouter.decide.assign import TeamState, decide, next_in_rotation
from mailrouter.model import Outcome
from tests.factories import example_config, make_inquiry


@pytest.fixture(scope="module")
def config():
    return example_config()


def test_german_pcb_goes_to_zhang_with_reason(config):
    d = decide(make_inquiry(country="DE", products=("PCB",)), config, TeamState())
    assert (d.outcome, d.rep, d.rule) == (Outcome.ROUTED, "zhang", "german-pcb")
    assert d.reason == "rule 'german-pcb': country DE in region dach; product PCB"


def test_first_match_wins_in_file_order(config):
    # america-alias comes first, so it beats german-pcb
    q = make_inquiry(country="DE", products=("PCB",), recipients=("america@example.com",))
    d = decide(q, config, TeamState())
    assert d.rule == "america-alias" and d.team == "americas"


def test_no_rule_means_unrecognized(config):
    d = decide(make_inquiry(country=None, language="en", products=()), config, TeamState())
    assert d.outcome is Outcome.UNRECOGNIZED and d.reason == "no rule matched"


def test_round_robin_continues_after_the_last_assignee(config):
    q = make_inquiry(country="FR", language="fr")
    first = decide(q, config, TeamState())
    second = decide(q, config, TeamState(last_assigned={"europe": first.rep}))
    assert {first.rep, second.rep} == {"zhang", "li"}
    assert "team europe round robin" in second.reason


def test_least_loaded_picks_fewest_open(config):
    q = make_inquiry(country="BR", language="pt")
    d = decide(q, config, TeamState(open_counts={"chen": 4, "li": 1}))
    assert d.rep == "li" and "Li Na has 1 open" in d.reason
    d = decide(q, config, TeamState(open_counts={"chen": 0, "li": 1}))
    assert d.rep == "chen"


def test_inactive_rep_is_skipped_by_team(config):
    li_away = replace(config, reps={**config.reps, "li": replace(config.reps["li"], active=False)})
    q = make_inquiry(country="FR", language="fr")
    for last in ("zhang", "li", None):
        assert decide(q, li_away, TeamState(last_assigned={"europe": last} if last else {})).rep == "zhang"


def test_unavailable_direct_target_is_covered_by_their_team(config):
    off = replace(config, reps={**config.reps, "chen": replace(config.reps["chen"], active=False)})
    d = decide(make_inquiry(country="RU", language="ru"), off, TeamState())
    assert (d.outcome, d.rep, d.team) == (Outcome.ROUTED, "li", "americas")
    assert "rep Chen Jie is inactive, so their team" in d.reason
    away = decide(make_inquiry(country="RU", language="ru"), config, TeamState(away=frozenset({"chen"})))
    assert away.rep == "li" and "rep Chen Jie is away" in away.reason


def test_unavailable_direct_target_without_a_team_goes_to_manager(config):
    off = replace(config, reps={**config.reps, "wang": replace(config.reps["wang"], active=False)})
    d = decide(make_inquiry(country=None, language="zh"), off, TeamState())
    assert d.outcome is Outcome.UNRECOGNIZED and "rep Wang Fang 王芳 is inactive" in d.reason


def test_auto_reply_is_ignored_before_rules(config):
    q = make_inquiry(country="DE", products=("PCB",), headers={"auto-submitted": "auto-replied"})
    d = decide(q, config, TeamState())
    assert d.outcome is Outcome.IGNORED and d.rep is None


def test_own_rep_mail_is_ignored_when_our_server_vouches_for_it(config):
    q = make_inquiry(from_address="li@example.com", sender="li@example.com",
                     headers={"authentication-results": "mx.example.com; auth=pass smtp.auth=li@example.com"})
    trusting = replace(config, authserv_ids=frozenset({"mx.example.com"}))
    decision = decide(q, trusting, TeamState())
    assert decision.outcome is Outcome.IGNORED and "authenticated by mx.example.com" in decision.reason


def test_own_rep_mail_nobody_vouches_for_goes_to_the_manager(config):
    """issue 14 item 7 (security D15): From a rep's address from outside was silently Ignored."""
    q = make_inquiry(from_address="li@example.com", sender="li@example.com",
                     headers={"authentication-results": "mx.attacker.test; dmarc=pass header.from=example.com"})
    decision = decide(q, replace(config, authserv_ids=frozenset({"mx.example.com"})), TeamState())
    assert decision.outcome is Outcome.UNRECOGNIZED and "possibly forged" in decision.reason


def test_sender_domain_exact_and_suffix(config):
    from mailrouter.decide.rules import SenderDomain
    cond = SenderDomain("sender_domain", ("acme.de", ".gov.cn"))
    assert cond.matches(make_inquiry(sender="a@acme.de"))
    assert cond.matches(make_inquiry(sender="a@mail.acme.de"))
    assert not cond.matches(make_inquiry(sender="a@notacme.de"))
    assert cond.matches(make_inquiry(sender="a@customs.gov.cn"))
    assert "matches .gov.cn" in cond.describe(make_inquiry(sender="a@customs.gov.cn"))


def test_rotation_wraps_and_skips_unavailable():
    from mailrouter.config.load import TeamConfig
    team = TeamConfig("t", ("a", "b", "c"), "round_robin", None)
    assert next_in_rotation(team, ["a", "b", "c"], "c") == "a"
    assert next_in_rotation(team, ["a", "c"], "a") == "c"
    assert next_in_rotation(team, ["a", "b", "c"], "gone") == "a"


def test_the_decision_path_imports_no_database_layer() -> None:
    """decide/examine.py is pure: explain, dry-run and the daemon share it, and it gets the
    registry's match and the duplicate verdict as data (issue 11 item 2)."""
    import subprocess
    import sys

    probe = ("import sys, mailrouter.decide.examine; "
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'sqlalchemy', 'imapclient', 'aiosmtplib'}))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _words(text: str) -> set[str]:
    import re
    return set(re.findall(r"\w+", text))


def test_a_reassigned_inquiry_names_the_previous_rep_by_name_not_id(config):
    """Issue 15 item 2: the new rep's forward said "reassigned from zhang" (an id nobody uses)."""
    from mailrouter.decide.examine import examine_reassignment
    from mailrouter.parse.process import Parsed

    d = examine_reassignment(Parsed(make_inquiry()), config, "zhang", "li", "europe", "german-pcb",
                             timedelta(minutes=35, seconds=20)).decision
    assert (d.rep, d.how) == ("li", "reassign")
    assert d.reason == "reassigned from Zhang Wei 张伟"
    assert dict(d.notes)["Reassigned 转派"] == "from Zhang Wei 张伟: no reply after 35 min"
    assert "zhang" not in _words(d.reason + str(d.notes))
    # to a zh rep, the note is in Chinese too: it is written for the forward alone
    to_zh = examine_reassignment(Parsed(make_inquiry()), config, "li", "zhang", "europe", None,
                                 timedelta(minutes=31)).decision
    assert dict(to_zh.notes)["Reassigned 转派"] == "由 Li Na 转来：31 分钟未回复"
    assert to_zh.reason_in("zh") == "由 Li Na 转派" and to_zh.reason == "reassigned from Li Na"


def test_a_manual_assignment_to_a_team_names_the_chosen_rep(config):
    from mailrouter.decide.examine import ManualTarget, examine_manual
    from mailrouter.parse.process import Parsed

    team = ManualTarget("team", "americas")  # least loaded: the reason says who has how many
    d = examine_manual(Parsed(make_inquiry()), config, TeamState(open_counts={"chen": 4, "li": 1}), team,
                       "Assign/americas").decision
    assert d.rep == "li" and "Li Na has 1 open" in d.reason and "li" not in _words(d.reason)


def test_reasons_name_unavailable_reps_and_owners_by_name(config):
    off = replace(config, reps={**config.reps, "chen": replace(config.reps["chen"], active=False)})
    d = decide(make_inquiry(country="RU", language="ru"), off, TeamState())
    assert "rep Chen Jie is inactive, so their team" in d.reason and "chen" not in _words(d.reason)


def test_a_rules_reason_is_worded_in_chinese_for_a_chinese_reader(config):
    """Issue 15: the zh forward and `explain --language zh` showed the rule's reason in English."""
    q = make_inquiry(country="DE", products=("PCB",))
    d = decide(q, config, TeamState(), language="zh")
    assert (d.outcome, d.rep, d.rule) == (Outcome.ROUTED, "zhang", "german-pcb")  # the same decision
    assert d.reason == "规则 'german-pcb'：国家 DE 属于区域 dach；产品 PCB"
    away = decide(make_inquiry(country="RU", language="ru"), config, TeamState(away=frozenset({"chen"})),
                  language="zh")
    assert away.reason == ("规则 'russian-speaking'：语言 ru（0.99）；业务员 Chen Jie 休假中，由其团队接手；"
                           "团队 americas 按负载最少分配：Li Na 有 0 封待回复")


def test_examine_words_the_reason_in_the_chosen_reps_language(config):
    from mailrouter.decide.examine import examine
    from mailrouter.parse.process import Parsed

    d = examine(Parsed(make_inquiry(country="DE", products=("PCB",))), config, TeamState()).decision
    assert d.rep == "zhang" and config.reps["zhang"].language == "zh"
    assert d.reason.startswith("rule 'german-pcb': country DE in region dach")  # the log and database: English
    assert d.reason_in("zh").startswith("规则 'german-pcb'：国家 DE 属于区域 dach") and d.reason_in("en") == d.reason


def _match(owner: str = "zhang", lapsed: bool = False):
    from datetime import datetime, timezone

    from mailrouter.registry.verdict import DOMAIN, CustomerSummary, RegistryMatch

    at = datetime(2026, 1, 5, tzinfo=timezone.utc)
    return RegistryMatch(7, owner, "active", "", DOMAIN, f"same domain as acme.de, owned by {owner}", lapsed,
                         CustomerSummary("Acme", "", "DE", "CRM", at, at, at, at), detail="acme.de")


def test_a_registry_decision_names_the_owner_and_speaks_the_readers_language(config):
    """Issue 15 item 2: the forward told the rep "owned by zhang"; a zh rep read it in English."""
    q = make_inquiry(country="FR", language="fr", sender="buyer@acme.de")
    en = decide(q, config, TeamState(), _match())
    assert (en.rep, en.how) == ("zhang", "registry")
    assert en.reason == "same domain as acme.de, owned by Zhang Wei 张伟"
    assert decide(q, config, TeamState(), _match(), language="zh").reason == "与 acme.de 同一域名，负责人 Zhang Wei 张伟"
    lapsed = decide(q, config, TeamState(), _match(lapsed=True), language="zh")
    assert lapsed.how == "rule" and "；负责关系已失效：最近联系 2026-01-05，超过" in lapsed.reason
