"""Country names as buyers type them into forms -> ISO 3166 alpha-2.

A compact table of the main trading partners (English, native and Chinese names); pycountry
is not a dependency, and a form's free text needs aliases it would not have anyway.
"""
from __future__ import annotations

from mailrouter.parse.places import find_places
from mailrouter.parse.text import fold

_NAMES: dict[str, tuple[str, ...]] = {
    "US": ("United States", "USA", "United States of America", "America", "美国"),
    "CA": ("Canada", "加拿大"),
    "MX": ("Mexico", "México", "墨西哥"),
    "BR": ("Brazil", "Brasil", "巴西"),
    "AR": ("Argentina", "阿根廷"),
    "CL": ("Chile", "智利"),
    "CO": ("Colombia", "哥伦比亚"),
    "PE": ("Peru", "Perú", "秘鲁"),
    "VE": ("Venezuela", "委内瑞拉"),
    "EC": ("Ecuador", "厄瓜多尔"),
    "GB": ("United Kingdom", "UK", "Great Britain", "Britain", "England", "Scotland", "英国"),
    "IE": ("Ireland", "爱尔兰"),
    "DE": ("Germany", "Deutschland", "德国"),
    "FR": ("France", "法国"),
    "IT": ("Italy", "Italia", "意大利"),
    "ES": ("Spain", "España", "西班牙"),
    "PT": ("Portugal", "葡萄牙"),
    "NL": ("Netherlands", "The Netherlands", "Holland", "Nederland", "荷兰"),
    "BE": ("Belgium", "België", "Belgique", "比利时"),
    "CH": ("Switzerland", "Schweiz", "Suisse", "瑞士"),
    "AT": ("Austria", "Österreich", "奥地利"),
    "SE": ("Sweden", "Sverige", "瑞典"),
    "NO": ("Norway", "Norge", "挪威"),
    "DK": ("Denmark", "Danmark", "丹麦"),
    "FI": ("Finland", "Suomi", "芬兰"),
    "PL": ("Poland", "Polska", "波兰"),
    "CZ": ("Czech Republic", "Czechia", "Česko", "捷克"),
    "SK": ("Slovakia", "斯洛伐克"),
    "HU": ("Hungary", "Magyarország", "匈牙利"),
    "RO": ("Romania", "România", "罗马尼亚"),
    "BG": ("Bulgaria", "保加利亚"),
    "GR": ("Greece", "希腊"),
    "TR": ("Turkey", "Türkiye", "土耳其"),
    "RU": ("Russia", "Russian Federation", "Россия", "俄罗斯"),
    "UA": ("Ukraine", "Україна", "乌克兰"),
    "BY": ("Belarus", "白俄罗斯"),
    "KZ": ("Kazakhstan", "哈萨克斯坦"),
    "UZ": ("Uzbekistan", "乌兹别克斯坦"),
    "IL": ("Israel", "以色列"),
    "SA": ("Saudi Arabia", "KSA", "沙特阿拉伯", "沙特"),
    "AE": ("United Arab Emirates", "UAE", "Emirates", "阿联酋"),
    "QA": ("Qatar", "卡塔尔"),
    "KW": ("Kuwait", "科威特"),
    "IR": ("Iran", "伊朗"),
    "IQ": ("Iraq", "伊拉克"),
    "EG": ("Egypt", "埃及"),
    "MA": ("Morocco", "摩洛哥"),
    "DZ": ("Algeria", "阿尔及利亚"),
    "NG": ("Nigeria", "尼日利亚"),
    "KE": ("Kenya", "肯尼亚"),
    "ZA": ("South Africa", "南非"),
    "ET": ("Ethiopia", "埃塞俄比亚"),
    "GH": ("Ghana", "加纳"),
    "IN": ("India", "印度"),
    "PK": ("Pakistan", "巴基斯坦"),
    "BD": ("Bangladesh", "孟加拉国", "孟加拉"),
    "LK": ("Sri Lanka", "斯里兰卡"),
    "CN": ("China", "中国", "中华人民共和国"),
    "HK": ("Hong Kong", "香港"),
    "TW": ("Taiwan", "台湾"),
    "JP": ("Japan", "日本"),
    "KR": ("South Korea", "Korea", "Republic of Korea", "韩国"),
    "VN": ("Vietnam", "Viet Nam", "越南"),
    "TH": ("Thailand", "泰国"),
    "MY": ("Malaysia", "马来西亚"),
    "SG": ("Singapore", "新加坡"),
    "ID": ("Indonesia", "印度尼西亚", "印尼"),
    "PH": ("Philippines", "菲律宾"),
    "AU": ("Australia", "澳大利亚"),
    "NZ": ("New Zealand", "新西兰"),
}
_BY_NAME = {fold(name): code for code, names in _NAMES.items() for name in names}
_CODES = frozenset(_NAMES)


def country_code(value: str) -> str | None:
    """ISO alpha-2 for a country name or code as typed into a form, None if unknown."""
    text = value.strip().strip(".").strip()
    if len(text) == 2 and text.isascii() and text.upper() in _CODES:
        return text.upper()
    if code := _BY_NAME.get(fold(text)):
        return code
    # "Sevilla, España", "Россия": the multilingual table of country names (cities are not
    # enough for a field that names a country).
    names = [p.country for p in find_places(text) if p.kind == "name"]
    return names[0] if names else None
