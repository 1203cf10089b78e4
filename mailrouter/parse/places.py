"""Country names and major cities as buyers write them in signatures -> ISO 3166 alpha-2.

Written for the project: names in the languages the product supports (en, zh, es, pt, fr, de,
ru, ar, tr, it, pl, ja, ko) and each country's own, and only the largest cities, in English,
the local form and Chinese. Names that are also common words or people's names ("Jordan",
"Nice", "Georgia"), and cities shared by several countries (Valencia, Córdoba, León, Guadalajara) are
left out on purpose, as are cities that are also first names or words (Sydney, Milan,
Porto, Essen): a wrong country is worse than none.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from mailrouter.parse.text import fold

# "|"-separated; the order inside an entry does not matter.
COUNTRY_NAMES: dict[str, str] = {
    "US": "United States|USA|U.S.A.|United States of America|Estados Unidos|États-Unis|Etats-Unis|"
          "Vereinigte Staaten|США|Соединённые Штаты|الولايات المتحدة|Amerika Birleşik Devletleri|ABD|"
          "Stati Uniti|Stany Zjednoczone|アメリカ|アメリカ合衆国|미국|美国|美國",
    "CA": "Canada|Canadá|Kanada|Канада|كندا|カナダ|캐나다|加拿大",
    "MX": "Mexico|México|Mexique|Mexiko|Мексика|المكسيك|Meksika|Messico|Meksyk|メキシコ|멕시코|墨西哥",
    "BR": "Brazil|Brasil|Brésil|Brasilien|Бразилия|البرازيل|Brezilya|Brasile|Brazylia|ブラジル|브라질|巴西",
    "AR": "Argentina|Argentine|Argentinien|Аргентина|الأرجنتين|Arjantin|Argentyna|アルゼンチン|아르헨티나|阿根廷",
    "CL": "Chile|Чили|تشيلي|Şili|Cile|チリ|칠레|智利",
    "CO": "Colombia|Colômbia|Colombie|Kolumbien|Колумбия|كولومبيا|Kolombiya|Kolumbia|コロンビア|콜롬비아|哥伦比亚",
    "PE": "Peru|Perú|Pérou|Перу|بيرو|ペルー|페루|秘鲁",
    "GB": "United Kingdom|UK|U.K.|Great Britain|England|Scotland|Wales|Reino Unido|Royaume-Uni|"
          "Vereinigtes Königreich|Großbritannien|Великобритания|Англия|المملكة المتحدة|Birleşik Krallık|"
          "İngiltere|Regno Unito|Inghilterra|Wielka Brytania|イギリス|英国|영국|英國",
    "IE": "Ireland|Irlanda|Irlande|Irland|Ирландия|أيرلندا|İrlanda|Irlandia|アイルランド|아일랜드|爱尔兰",
    "DE": "Germany|Deutschland|Alemania|Alemanha|Allemagne|Германия|ألمانيا|Almanya|Germania|Niemcy|"
          "ドイツ|독일|德国|德國",
    "FR": "France|Francia|França|Frankreich|Франция|فرنسا|Fransa|Francja|フランス|프랑스|法国|法國",
    "IT": "Italy|Italia|Itália|Italie|Italien|Италия|إيطاليا|İtalya|Włochy|イタリア|이탈리아|意大利",
    "ES": "Spain|España|Espanha|Espagne|Spanien|Испания|إسبانيا|İspanya|Spagna|Hiszpania|スペイン|스페인|西班牙",
    "PT": "Portugal|Portogallo|Portugalia|Португалия|البرتغال|Portekiz|ポルトガル|포르투갈|葡萄牙",
    "NL": "Netherlands|The Netherlands|Nederland|Países Bajos|Países Baixos|Pays-Bas|Niederlande|"
          "Нидерланды|هولندا|Hollanda|Paesi Bassi|Holandia|オランダ|네덜란드|荷兰",
    "BE": "Belgium|België|Belgique|Bélgica|Belgien|Бельгия|بلجيكا|Belçika|Belgio|Belgia|ベルギー|벨기에|比利时",
    "CH": "Switzerland|Schweiz|Suisse|Svizzera|Suiza|Suíça|Швейцария|سويسرا|İsviçre|Szwajcaria|スイス|스위스|瑞士",
    "AT": "Austria|Österreich|Áustria|Autriche|Австрия|النمسا|Avusturya|オーストリア|오스트리아|奥地利",
    "SE": "Sweden|Sverige|Suecia|Suécia|Suède|Schweden|Швеция|السويد|İsveç|Svezia|Szwecja|スウェーデン|스웨덴|瑞典",
    "NO": "Norway|Norge|Noruega|Norvège|Norwegen|Норвегия|النرويج|Norveç|Norvegia|Norwegia|ノルウェー|노르웨이|挪威",
    "DK": "Denmark|Danmark|Dinamarca|Danemark|Dänemark|Дания|الدنمارك|Danimarka|デンマーク|덴마크|丹麦",
    "FI": "Finland|Suomi|Finlandia|Finlândia|Finlande|Finnland|Финляндия|فنلندا|Finlandiya|フィンランド|핀란드|芬兰",
    "PL": "Poland|Polska|Polonia|Polônia|Pologne|Polen|Польша|بولندا|Polonya|ポーランド|폴란드|波兰",
    "CZ": "Czech Republic|Czechia|Česko|Česká republika|Chequia|Tchéquie|Tschechien|Чехия|التشيك|Çekya|"
          "Repubblica Ceca|Czechy|チェコ|체코|捷克",
    "HU": "Hungary|Magyarország|Hungría|Hungria|Hongrie|Ungarn|Венгрия|المجر|Macaristan|Ungheria|Węgry|ハンガリー|헝가리|匈牙利",
    "RO": "Romania|România|Rumania|Roumanie|Rumänien|Румыния|رومانيا|Romanya|Rumunia|ルーマニア|루마니아|罗马尼亚",
    "GR": "Greece|Ελλάδα|Grecia|Grécia|Grèce|Griechenland|Греция|اليونان|Yunanistan|Grecja|ギリシャ|그리스|希腊",
    "TR": "Turkey|Türkiye|Turquía|Turquia|Turquie|Türkei|Турция|تركيا|Turchia|Turcja|トルコ|튀르키예|터키|土耳其",
    "RU": "Russia|Russian Federation|Россия|Российская Федерация|Rusia|Rússia|Russie|Russland|روسيا|Rusya|"
          "Russia|Rosja|ロシア|러시아|俄罗斯|俄羅斯",
    "UA": "Ukraine|Україна|Украина|Ucrania|Ucrânia|أوكرانيا|Ukrayna|Ucraina|Ukraina|ウクライナ|우크라이나|乌克兰",
    "BY": "Belarus|Беларусь|Белоруссия|Bielorrusia|Biélorussie|Weißrussland|بيلاروسيا|Białoruś|ベラルーシ|벨라루스|白俄罗斯",
    "KZ": "Kazakhstan|Казахстан|Қазақстан|Kazajistán|Kasachstan|كازاخستان|Kazakistan|Kazachstan|カザフスタン|카자흐스탄|哈萨克斯坦",
    "UZ": "Uzbekistan|Oʻzbekiston|Узбекистан|Uzbekistán|Usbekistan|أوزبكستان|Özbekistan|ウズベキスタン|우즈베키스탄|乌兹别克斯坦",
    "IL": "Israel|ישראל|Израиль|Israël|إسرائيل|İsrail|Izrael|イスラエル|이스라엘|以色列",
    "SA": "Saudi Arabia|KSA|Kingdom of Saudi Arabia|السعودية|المملكة العربية السعودية|Arabia Saudita|"
          "Arábia Saudita|Arabie saoudite|Saudi-Arabien|Саудовская Аравия|Suudi Arabistan|Arabia Saudyjska|"
          "サウジアラビア|사우디아라비아|沙特阿拉伯|沙特",
    "AE": "United Arab Emirates|UAE|U.A.E.|الإمارات|الإمارات العربية المتحدة|Emiratos Árabes Unidos|"
          "Emirados Árabes Unidos|Émirats arabes unis|Vereinigte Arabische Emirate|ОАЭ|"
          "Объединённые Арабские Эмираты|Birleşik Arap Emirlikleri|Emirati Arabi Uniti|"
          "Zjednoczone Emiraty Arabskie|アラブ首長国連邦|아랍에미리트|阿联酋|阿拉伯联合酋长国",
    "QA": "Qatar|قطر|Katar|Катар|カタール|카타르|卡塔尔",
    "KW": "Kuwait|الكويت|Koweït|Кувейт|Kuveyt|クウェート|쿠웨이트|科威特",
    "EG": "Egypt|مصر|Egipto|Egito|Égypte|Ägypten|Египет|Mısır|Egitto|Egipt|エジプト|이집트|埃及",
    "MA": "Morocco|المغرب|Marruecos|Marrocos|Maroc|Marokko|Марокко|Marocco|Maroko|モロッコ|모로코|摩洛哥",
    "DZ": "Algeria|الجزائر|Argelia|Argélia|Algérie|Algerien|Алжир|Cezayir|Algieria|アルジェリア|알제리|阿尔及利亚",
    "NG": "Nigeria|Nigéria|Нигерия|نيجيريا|Nijerya|ナイジェリア|나이지리아|尼日利亚",
    "KE": "Kenya|Kenia|Quénia|Кения|كينيا|ケニア|케냐|肯尼亚",
    "ZA": "South Africa|Sudáfrica|África do Sul|Afrique du Sud|Südafrika|ЮАР|Южная Африка|جنوب أفريقيا|"
          "Güney Afrika|Sudafrica|Republika Południowej Afryki|南アフリカ|남아프리카 공화국|南非",
    "IN": "India|Índia|Inde|Indien|Индия|الهند|Hindistan|インド|인도|印度",
    "PK": "Pakistan|Paquistán|Paquistão|Пакистан|باكستان|パキスタン|파키스탄|巴基斯坦",
    "BD": "Bangladesh|Бангладеш|بنغلاديش|Bangladeş|バングラデシュ|방글라데시|孟加拉国|孟加拉",
    "IR": "Iran|ایران|إيران|Irán|Irã|Иран|İran|イラン|이란|伊朗",
    "IQ": "Iraq|العراق|Irak|Iraque|Ирак|イラク|이라크|伊拉克",
    "CN": "China|People's Republic of China|P.R. China|P.R.China|PRC|Chine|Китай|الصين|Çin|Cina|Chiny|"
          "中国|中華人民共和国|中华人民共和国|중국",
    "HK": "Hong Kong|Гонконг|هونغ كونغ|Hongkong|香港|홍콩",
    "TW": "Taiwan|Taiwán|Taïwan|Тайвань|تايوان|Tayvan|Tajwan|台湾|台灣|臺灣|대만",
    "JP": "Japan|Japón|Japão|Japon|Япония|اليابان|Japonya|Giappone|Japonia|日本|일본",
    "KR": "South Korea|Republic of Korea|Korea|Corea del Sur|Coreia do Sul|Corée du Sud|Südkorea|"
          "Южная Корея|Корея|كوريا الجنوبية|Güney Kore|Corea del Sud|Korea Południowa|韓国|韩国|대한민국|한국",
    "VN": "Vietnam|Viet Nam|Việt Nam|Вьетнам|فيتنام|ベトナム|베트남|越南",
    "TH": "Thailand|ประเทศไทย|Tailandia|Tailândia|Thaïlande|Таиланд|تايلاند|Tayland|Tajlandia|タイ王国|태국|泰国",
    "MY": "Malaysia|Malasia|Malásia|Malaisie|Малайзия|ماليزيا|Malezya|Malesia|Malezja|マレーシア|말레이시아|马来西亚",
    "SG": "Singapore|Singapur|Singapura|Сингапур|سنغافورة|シンガポール|싱가포르|新加坡",
    "ID": "Indonesia|Indonésia|Indonésie|Indonesien|Индонезия|إندونيسيا|Endonezya|Indonezja|インドネシア|인도네시아|印度尼西亚|印尼",
    "PH": "Philippines|Filipinas|Philippinen|Филиппины|الفلبين|Filipinler|Filippine|Filipiny|フィリピン|필리핀|菲律宾",
    "AU": "Australia|Austrália|Australie|Australien|Австралия|أستراليا|Avustralya|オーストラリア|호주|澳大利亚|澳洲",
    "NZ": "New Zealand|Nueva Zelanda|Nova Zelândia|Nouvelle-Zélande|Neuseeland|Новая Зеландия|نيوزيلندا|"
          "Yeni Zelanda|Nuova Zelanda|Nowa Zelandia|ニュージーランド|뉴질랜드|新西兰",
}

CITY_NAMES: dict[str, str] = {
    "US": "New York|Los Angeles|Chicago|Houston|Philadelphia|San Diego|Dallas|"
          "Miami|Atlanta|Seattle|Boston|San Francisco|Detroit|纽约|洛杉矶|芝加哥|休斯顿|Нью-Йорк",
    "CA": "Toronto|Montreal|Montréal|Vancouver|Calgary|Ottawa|多伦多|温哥华",
    "MX": "Ciudad de México|CDMX|Monterrey|Puebla|Tijuana|墨西哥城",
    "BR": "São Paulo|Rio de Janeiro|Brasília|Belo Horizonte|Curitiba|Porto Alegre|Manaus|圣保罗",
    "AR": "Buenos Aires|布宜诺斯艾利斯",
    "CL": "Santiago de Chile|Valparaíso|Antofagasta|圣地亚哥",
    "CO": "Bogotá|Medellín|Barranquilla|Cartagena de Indias|波哥大",
    "PE": "Lima|Arequipa|利马",
    "GB": "London|Manchester|Birmingham|Glasgow|Liverpool|Leeds|Edinburgh|Bristol|Londres|Londra|Londyn|"
          "Лондон|لندن|伦敦|ロンドン|런던",
    "IE": "Dublin|Baile Átha Cliath|都柏林",
    "DE": "Berlin|Hamburg|München|Munich|Köln|Cologne|Frankfurt am Main|Frankfurt|Stuttgart|Düsseldorf|"
          "Leipzig|Dortmund|Bremen|Dresden|Hannover|Nürnberg|Берлин|Мюнхен|柏林|汉堡|慕尼黑|法兰克福|"
          "ベルリン|베를린",
    "FR": "Paris|Marseille|Lyon|Toulouse|Bordeaux|Lille|Strasbourg|Nantes|Париж|باريس|巴黎|パリ|파리",
    "IT": "Roma|Rome|Milano|Napoli|Naples|Torino|Turin|Bologna|Firenze|Genova|Venezia|"
          "Рим|Милан|罗马|米兰|ミラノ",
    "ES": "Madrid|Barcelona|Sevilla|Seville|Bilbao|Zaragoza|Málaga|Alicante|Murcia|Мадрид|Барселона|"
          "مدريد|马德里|巴塞罗那|マドリード|마드리드",
    "PT": "Lisboa|Lisbon|Braga|Coimbra|Лиссабон|里斯本",
    "NL": "Amsterdam|Rotterdam|Den Haag|The Hague|Utrecht|Eindhoven|Амстердам|阿姆斯特丹",
    "BE": "Brussels|Bruxelles|Brussel|Antwerpen|Antwerp|Anvers|Gent|Ghent|Liège|Брюссель|布鲁塞尔",
    "CH": "Zürich|Zurich|Genève|Geneva|Genf|Basel|Bâle|Bern|Berne|Lausanne|Цюрих|苏黎世",
    "AT": "Wien|Vienna|Vienne|Graz|Linz|Salzburg|Innsbruck|Вена|维也纳",
    "SE": "Stockholm|Göteborg|Gothenburg|Malmö|Стокгольм|斯德哥尔摩",
    "NO": "Oslo|Bergen|Stavanger|Trondheim|Осло|奥斯陆",
    "DK": "København|Copenhagen|Aarhus|Odense|Копенгаген|哥本哈根",
    "FI": "Helsinki|Helsingfors|Espoo|Tampere|Хельсинки|赫尔辛基",
    "PL": "Warszawa|Warsaw|Kraków|Krakow|Łódź|Wrocław|Poznań|Gdańsk|Katowice|Варшава|华沙",
    "CZ": "Praha|Prague|Prag|Brno|Ostrava|Прага|布拉格",
    "HU": "Budapest|Debrecen|Будапешт|布达佩斯",
    "RO": "București|Bucharest|Cluj-Napoca|Timișoara|Iași|Бухарест|布加勒斯特",
    "GR": "Αθήνα|Athens|Athen|Atenas|Θεσσαλονίκη|Thessaloniki|Афины|雅典",
    "TR": "İstanbul|Istanbul|Ankara|İzmir|Izmir|Bursa|Antalya|Konya|Gaziantep|Стамбул|إسطنبول|伊斯坦布尔|이스탄불",
    "RU": "Москва|Moscow|Moskau|Moscou|Moscú|Санкт-Петербург|Saint Petersburg|St. Petersburg|Новосибирск|"
          "Екатеринбург|Казань|Нижний Новгород|Челябинск|Самара|Омск|Ростов-на-Дону|Уфа|Красноярск|"
          "Воронеж|Пермь|Краснодар|Владивосток|موسكو|莫斯科|圣彼得堡|モスクワ|모스크바",
    "UA": "Київ|Киев|Kyiv|Kiev|Харків|Харьков|Kharkiv|Одеса|Одесса|Odesa|Дніпро|Днепр|Львів|Львов|Lviv|基辅",
    "BY": "Мінск|Минск|Minsk|明斯克",
    "KZ": "Алматы|Almaty|Астана|Astana|Шымкент|Караганда|阿拉木图",
    "UZ": "Ташкент|Toshkent|Tashkent|Самарканд|塔什干",
    "IL": "תל אביב|Tel Aviv|ירושלים|Jerusalem|חיפה|Haifa|Тель-Авив|特拉维夫",
    "SA": "الرياض|Riyadh|جدة|Jeddah|Jiddah|الدمام|Dammam|مكة|Mecca|المدينة المنورة|Медина|Эр-Рияд|利雅得|吉达",
    "AE": "دبي|Dubai|Dubái|Dubaï|Дубай|أبوظبي|أبو ظبي|Abu Dhabi|الشارقة|Sharjah|迪拜|阿布扎比|ドバイ|두바이",
    "QA": "الدوحة|Doha|Доха|多哈",
    "KW": "مدينة الكويت|Kuwait City|科威特城",
    "EG": "القاهرة|Cairo|El Cairo|Le Caire|Kairo|Каир|الإسكندرية|开罗",
    "MA": "الدار البيضاء|Casablanca|الرباط|Rabat|Marrakech|Tanger|Tangier|卡萨布兰卡",
    "DZ": "Alger|Algiers|Oran|وهران|阿尔及尔",
    "NG": "Lagos|Abuja|Kano|Ibadan|Port Harcourt|拉各斯",
    "KE": "Nairobi|Mombasa|内罗毕",
    "ZA": "Johannesburg|Cape Town|Durban|Pretoria|约翰内斯堡",
    "IN": "Mumbai|Delhi|New Delhi|Bangalore|Bengaluru|Chennai|Hyderabad|Kolkata|Pune|Ahmedabad|孟买|新德里",
    "PK": "Karachi|Lahore|Islamabad|Faisalabad|卡拉奇",
    "BD": "Dhaka|Chittagong|Chattogram|达卡",
    "IR": "تهران|Tehran|Teherán|Téhéran|Teheran|Тегеран|德黑兰",
    "IQ": "بغداد|Baghdad|Bagdad|Багдад|البصرة|Basra|Erbil|أربيل|巴格达",
    "CN": "Beijing|Shanghai|Guangzhou|Shenzhen|Tianjin|Chongqing|Hangzhou|Ningbo|Xiamen|Dongguan|Foshan|"
          "北京|上海|广州|深圳|天津|重庆|杭州|宁波|厦门|东莞|佛山|苏州|义乌|Пекин|Шанхай|Гуанчжоу|Шэньчжэнь",
    "TW": "Taipei|Kaohsiung|Taichung|Tainan|Hsinchu|台北|臺北|高雄|台中|臺中|台南|臺南|新竹",
    "JP": "Tokyo|Osaka|Yokohama|Nagoya|Kyoto|Fukuoka|Sapporo|東京|大阪|横浜|名古屋|京都|神戸|福岡|札幌|"
          "Токио|طوكيو|도쿄",
    "KR": "Seoul|Busan|Incheon|Daegu|Daejeon|Gwangju|Ulsan|서울|부산|인천|대구|대전|광주|울산|首尔|釜山|"
          "ソウル|Сеул",
    "VN": "Hà Nội|Hanoi|Ha Noi|Hồ Chí Minh|Ho Chi Minh|Saigon|Sài Gòn|Hải Phòng|Da Nang|Đà Nẵng|河内|胡志明",
    "TH": "Bangkok|กรุงเทพ|Chiang Mai|เชียงใหม่|曼谷",
    "MY": "Kuala Lumpur|Penang|Johor Bahru|吉隆坡",
    "ID": "Jakarta|Surabaya|Bandung|Medan|Semarang|雅加达",
    "PH": "Manila|Quezon City|Cebu|Davao|马尼拉",
    "AU": "Melbourne|Brisbane|Perth|悉尼|墨尔本",
    "NZ": "Auckland|Wellington|Christchurch|奥克兰",
}

_MAX_WORDS = 4  # the longest name in words ("Republika Południowej Afryki")
_WORDS = re.compile(r"[^\W\d_]+(?:[.'’-][^\W\d_]+)*\.?")
_WIDE = re.compile(r"[\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


@dataclass(frozen=True)
class Place:
    """A country or city name found in text."""

    country: str  # ISO alpha-2
    kind: str  # "name" | "city"
    written: str  # as it stands in the table, for the evidence line


@dataclass(frozen=True)
class _Table:
    by_words: dict[str, Place]  # folded, space-joined words -> place
    wide: tuple[tuple[str, Place], ...]  # names in scripts without spaces, matched as substrings


@functools.cache
def _table() -> _Table:
    by_words: dict[str, Place] = {}
    wide: list[tuple[str, Place]] = []
    for kind, table in (("city", CITY_NAMES), ("name", COUNTRY_NAMES)):  # names override cities
        for code, names in table.items():
            for name in names.split("|"):
                place = Place(code, kind, name)
                if _WIDE.search(name):
                    wide.append((name, place))
                else:
                    by_words[_key(name)] = place
    # Longest first, so 中华人民共和国 is reported rather than the 中国 inside a longer name.
    return _Table(by_words, tuple(sorted(wide, key=lambda w: -len(w[0]))))


def _key(name: str) -> str:
    return " ".join(w.rstrip(".") for w in _WORDS.findall(fold(name)))


def find_places(text: str) -> tuple[Place, ...]:
    """Country names and cities in `text`, in order of appearance, each place once."""
    table = _table()
    found: dict[Place, int] = {}
    words = [w.rstrip(".") for w in _WORDS.findall(fold(text))]
    start = 0
    while start < len(words):
        step = 1
        for size in range(min(_MAX_WORDS, len(words) - start), 0, -1):
            place = table.by_words.get(" ".join(words[start:start + size]))
            if place is not None:
                found.setdefault(place, start)
                step = size  # the words of a long name are not names of their own
                break
        start += step
    if _WIDE.search(text):
        for name, place in table.wide:
            if (at := text.find(name)) >= 0:
                found.setdefault(place, at)
    return tuple(found)
