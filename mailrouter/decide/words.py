"""The words a decision's reason is made of, in each language a person may read it in (en, zh).

The reason reaches people: the rep in the forward (their `language`), the manager in `explain`
(`--language`). The log line and the database keep the English one. Quoted values (rule and
team ids, country codes, keywords, the parser's evidence) stay as written.
"""
from __future__ import annotations

WORDS: dict[str, dict[str, str]] = {
    "en": {
        # rules.py: one phrase per kind of condition
        "field_in": "{name} {value} in {where}", "region": "region {names}",
        "product": "product {hits}", "sender": "sender {hits}", "recipient": "recipient {hits}",
        "tier": "tier", "sender_domain": "sender domain {host} matches {hit}",
        "free_mail": "free-mail sender", "corporate": "corporate sender", "score": "score {score} >= {minimum}",
        "keywords": "keywords {found}{where}", "keywords_where": " in {places}",
        "country_in": "country {country}{evidence} in {where}", "evidence": " ({evidence})", "no_evidence": "",
        "country_source": "country from {source}",
        "country_confidence": "country confidence {confidence:.2f} >= {minimum:g}",
        "language_in": "language {language} ({confidence:.2f})",
        "main_product": "main product {product}: {evidence}", "every": "matches every message",
        "and": "; ", "list": ", ",
        # assign.py and examine.py: how the rep was chosen
        "rule": "rule {name!r}: {why}", "no_rule": "no rule matched", "but": "; but {why}",
        "then": "; {why}", "inactive": "rep {rep} is inactive", "away": "rep {rep} is away",
        "full": "rep {rep} has {open} unreplied (cap {cap})", "so_team": ", so their team",
        "no_member": "team {team} has no available member",
        "least_loaded": "team {team} least loaded: {rep} has {open} open",
        "round_robin": "team {team} round robin", "blocked": "sender blocked: {why}",
        "owner_away": "owner {rep} is not available ({why}); {how}",
        "manual": "moved into {folder} by a manager", "not_inquiry": "not an inquiry: {why}",
        "reassigned": "reassigned from {rep}", "reassign_note": "from {rep}: no reply after {minutes} min",
        # a registry match: what matched, whose customer it is
        "email": "same address {detail}", "domain": "same domain as {detail}",
        "site": "web site {detail} in the signature", "company+phone": "same company and phone: {detail}",
        "owned": "{what}, owned by {rep}", "no_owner": "{what}, no owner",
        "lapsed": "; ownership lapsed: last contact {date}, quiet for more than {days} days",
    },
    "zh": {
        "field_in": "{name} {value} 属于 {where}", "region": "区域 {names}",
        "product": "产品 {hits}", "sender": "发件人 {hits}", "recipient": "收件地址 {hits}",
        "tier": "等级", "sender_domain": "发件域名 {host} 匹配 {hit}",
        "free_mail": "免费邮箱发件人", "corporate": "企业邮箱发件人", "score": "线索评分 {score} ≥ {minimum}",
        "keywords": "关键词 {found}{where}", "keywords_where": "（位于{places}）",
        "country_in": "国家 {country}{evidence}属于{where}", "evidence": "（{evidence}）", "no_evidence": " ",
        "country_source": "国家依据：{source}",
        "country_confidence": "国家置信度 {confidence:.2f} ≥ {minimum:g}",
        "language_in": "语言 {language}（{confidence:.2f}）",
        "main_product": "主要产品 {product}：{evidence}", "every": "匹配所有邮件",
        "and": "；", "list": "、",
        "rule": "规则 {name!r}：{why}", "no_rule": "没有匹配的规则", "but": "；但{why}",
        "then": "；{why}", "inactive": "业务员 {rep} 已停用", "away": "业务员 {rep} 休假中",
        "full": "业务员 {rep} 有 {open} 封未回复（上限 {cap}）", "so_team": "，由其团队接手",
        "no_member": "团队 {team} 没有可分配的成员",
        "least_loaded": "团队 {team} 按负载最少分配：{rep} 有 {open} 封待回复",
        "round_robin": "团队 {team} 轮流分配", "blocked": "发件人已屏蔽：{why}",
        "owner_away": "负责人 {rep} 无法接收（{why}）；{how}",
        "manual": "主管移入 {folder}", "not_inquiry": "非询盘：{why}",
        "reassigned": "由 {rep} 转派", "reassign_note": "由 {rep} 转来：{minutes} 分钟未回复",
        "email": "同一邮箱 {detail}", "domain": "与 {detail} 同一域名",
        "site": "签名中的网址 {detail}", "company+phone": "同一公司和电话：{detail}",
        "owned": "{what}，负责人 {rep}", "no_owner": "{what}，无负责人",
        "lapsed": "；负责关系已失效：最近联系 {date}，超过 {days} 天无联系",
    },
}

# Names of the parts of a mail and of the kinds of country evidence, for the zh phrases.
PLACES = {"zh": {"subject": "主题", "body": "正文", "signature": "签名"}}
SOURCES = {"zh": {"form": "表单", "cctld": "域名后缀", "phone": "电话", "name": "国家名", "city": "城市",
                  "language": "语言"}}
LANGUAGES = tuple(WORDS)


def words(language: str | None) -> dict[str, str]:
    """The phrase table for `language`; English for anything else."""
    return WORDS.get(language or "en", WORDS["en"])


def place(part: str, language: str | None) -> str:
    return PLACES.get(language or "en", {}).get(part, part)


def source(kind: str | None, language: str | None) -> str:
    return SOURCES.get(language or "en", {}).get(kind or "", kind or "-")
