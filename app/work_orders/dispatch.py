"""Who a matter goes to when 110 must act: 110, the local government and the responsible department.

The notice's annex, part 3: 12345 "应第一时间移交110报警服务台，同时将诉求事项转办至属地政府和相关职能部门"
(hand the matter to 110 at once, and at the same time pass it to the local government and the
department concerned). The same holds for any danger to life heard on a call.

The routing categories say who takes a call, not which department handles the matter, so the
responsible department (职能部门) of each category is named here, from the annex's wording of it.
A site with other department names changes this table.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

HANDOVER_ACTIONS = frozenset({"handover_110", "transfer_110"})

# category code -> (department, its English name)
DEPARTMENTS: dict[str, tuple[str, str]] = {
    "A01": ("住房和城乡建设局", "Housing and Urban-Rural Development Bureau"),
    "A02": ("城市管理综合执法局", "Urban Management and Law Enforcement Bureau"),
    "A03": ("城市管理综合执法局（园林绿化）", "Urban Management Bureau (parks and greenery)"),
    "A04": ("住房和城乡建设局", "Housing and Urban-Rural Development Bureau"),
    "A05": ("交通运输局", "Transport Bureau"),
    "A06": ("生态环境局", "Ecology and Environment Bureau"),
    "A07": ("市场监督管理局", "Market Supervision Administration"),
    "A08": ("市场监督管理局", "Market Supervision Administration"),
    "A09": ("文化旅游体育局", "Culture, Tourism and Sports Bureau"),
    "A10": ("卫生健康委员会", "Health Commission"),
    "A11": ("教育局", "Education Bureau"),
    "A12": ("民政局", "Civil Affairs Bureau"),
    "A13": ("林业和草原局", "Forestry and Grassland Bureau"),
    "A14": ("应急管理局", "Emergency Management Bureau"),
    "A15": ("政务服务局（12345直接办理）", "Government Services Bureau (12345 handles it)"),
    "A16": ("政务服务局（12345协调）", "Government Services Bureau (12345 coordinates)"),
    "B1": ("公安局", "Public Security Bureau"),
    "B2": ("公安局", "Public Security Bureau"),
    "B3": ("公安局交通管理支队", "Traffic Police Detachment"),
    "B4": ("应急管理局", "Emergency Management Bureau"),
    "B5": ("公安局", "Public Security Bureau"),
    "B6": ("应急管理局", "Emergency Management Bureau"),
    "B7": ("公安局督察支队", "Police Inspection Detachment"),
    "C1": ("卫生健康委员会（心理危机干预）", "Health Commission (crisis intervention)"),
    "C2": ("信访局", "Petitions Bureau"),
    "C3": ("信访局", "Petitions Bureau"),
    "C4": ("司法局（矛盾纠纷调处）", "Justice Bureau (dispute mediation)"),
    "D1": ("公安局交通管理支队", "Traffic Police Detachment"),
    "D2": ("城市管理综合执法局", "Urban Management and Law Enforcement Bureau"),
    "D3": ("生态环境局", "Ecology and Environment Bureau"),
    "D4": ("文化旅游体育局", "Culture, Tourism and Sports Bureau"),
    "D5": ("公安局", "Public Security Bureau"),
    "D6": ("住房和城乡建设局", "Housing and Urban-Rural Development Bureau"),
    "D7": ("应急管理局", "Emergency Management Bureau"),
}

_DIVISION_SUFFIXES = ("区", "县", "旗")
# Words that end a place's name when read backwards from 区/县/旗 ("我家在临河区" -> 临河区).
_BEFORE_A_NAME = set("在住是到去于市盟的和与及，。,.!?！？；;：:、 ")
_NOT_A_DIVISION = ("小区", "社区", "园区", "校区", "片区", "景区", "街区", "厂区", "矿区", "市区",
                   "郊区", "山区", "牧区", "灾区", "禁区", "服务区", "停车区", "办公区", "生活区", "住宅区",
                   "商业区", "营业区", "居民区")
_NOT_A_NAME = ("我", "你", "他", "她", "这", "那", "本", "该", "哪", "咱", "各", "每")
_LONGEST_NAME = 4  # characters before the suffix: 乌拉特前旗


def needs_dispatch(action: str, life_threat: bool) -> bool:
    return action in HANDOVER_ACTIONS or life_threat


def known_districts(phrases: Iterable[str]) -> tuple[str, ...]:
    """The site's own district, county and banner names (``site.toml`` ``[transcription] phrases``)."""
    return tuple(p for p in phrases if p.endswith(_DIVISION_SUFFIXES) and not p.endswith(_NOT_A_DIVISION))


def _guess(text: str) -> str | None:
    for i, ch in enumerate(text):
        if ch not in _DIVISION_SUFFIXES:
            continue
        head = text[max(0, i - _LONGEST_NAME):i]
        for j in range(len(head) - 1, -1, -1):
            if head[j] in _BEFORE_A_NAME or not "\u4e00" <= head[j] <= "\u9fa5":
                head = head[j + 1:]
                break
        name = head + ch
        if len(head) >= 2 and not name.endswith(_NOT_A_DIVISION) and not name.startswith(_NOT_A_NAME):
            return name
    return None


def district_of(texts: Iterable[str], known: Iterable[str] = ()) -> str | None:
    """The county-level division (district, county or banner) the caller named: one of the site's
    ``known`` names when one occurs, else the first word ending in 区/县/旗 that reads as a name."""
    texts = [t for t in texts if t]
    for name in known:
        if any(name in t for t in texts):
            return name
    for t in texts:
        if found := _guess(t):
            return found
    return None


def department_of(category_code: str | None) -> tuple[str, str] | None:
    return DEPARTMENTS.get(category_code or "")


def dispatch_for(action: str, life_threat: bool, category_code: str | None, places: Iterable[str],
                 districts: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Empty unless the matter is handed to 110 or a life is in danger; then 110, the local government
    (named when the caller said the district, county or banner) and the responsible department (named
    when the category is known). An unnamed one stays in the list with ``name: null`` so the operator
    sees what is missing."""
    if not needs_dispatch(action, life_threat):
        return []
    district = district_of(places, districts)
    dept = department_of(category_code)
    return [
        {"to": "110", "name": "110报警服务台", "name_en": "110 police desk"},
        {"to": "local_government", "district": district,
         "name": f"{district}人民政府" if district else None,
         "name_en": f"{district} government" if district else None},
        {"to": "department", "category": category_code,
         "name": dept[0] if dept else None, "name_en": dept[1] if dept else None},
    ]
