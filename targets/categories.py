"""Citizen Lab category codes (current and legacy) that a target's category_code may take."""

from __future__ import annotations

from typing import Final

# The current codes, from the test-lists legend 00-LEGEND-new_category_codes.csv; the lists
# (kz.csv, global.csv) use these.
CATEGORY_CODES: Final[dict[str, str]] = {
    "ALDR": "Alcohol & Drugs",
    "REL": "Religion",
    "PORN": "Pornography",
    "PROV": "Provocative Attire",
    "POLR": "Political Criticism",
    "HUMR": "Human Rights Issues",
    "ENV": "Environment",
    "MILX": "Terrorism and Militants",
    "HATE": "Hate Speech",
    "NEWS": "News Media",
    "XED": "Sex Education",
    "PUBH": "Public Health",
    "GMB": "Gambling",
    "ANON": "Anonymization and circumvention tools",
    "DATE": "Online Dating",
    "GRP": "Social Networking",
    "LGBT": "LGBT",
    "FILE": "File-sharing",
    "HACK": "Hacking Tools",
    "COMT": "Communication Tools",
    "MMED": "Media sharing",
    "HOST": "Hosting and Blogging Platforms",
    "SRCH": "Search Engines",
    "GAME": "Gaming",
    "CULTR": "Culture",
    "ECON": "Economics",
    "GOVT": "Government",
    "COMM": "E-commerce",
    "CTRL": "Control content",
    "IGO": "Intergovernmental Organizations",
    "MISC": "Miscellaneous content",
}

# The older codes of 00-LEGEND-category_codes.csv, still found in older lists and OONI data;
# accepted so that such lists import, mapped to their current code where the legend says so.
LEGACY_CATEGORY_CODES: Final[dict[str, str]] = {
    "FEXP": "Freedom of expression and media freedom",
    "POLT": "Political transformation",
    "POLR": "Political reform",
    "MILX": "Militants, extremists and separatists",
    "HUMR": "Human rights",
    "FREL": "Foreign relations and military",
    "MINR": "Minority rights and ethnic content",
    "WOMR": "Women's rights",
    "ENV": "Environment",
    "DEV": "Economic development",
    "HAL": "History, arts and literature",
    "HATE": "Hate speech",
    "XED": "Sex education and family planning",
    "PUBH": "Public health",
    "GAYL": "Gay & lesbian – no pornography",
    "PORN": "Pornography",
    "PROV": "Provocative attire",
    "DATE": "Online dating",
    "GMB": "Gambling",
    "GAME": "Online gaming",
    "ALDR": "Alcohol and drugs",
    "MINF": "Minority faiths",
    "REL": "Religious conversion, commentary and criticism",
    "ANON": "Anonymizers and censorship circumvention",
    "HACK": "Hacking",
    "BLGSERV": "Blogging services",
    "HOST": "Web hosting services",
    "VOIP": "Voice over Internet Protocol (VoIP)",
    "EMAIL": "Free email",
    "SRCH": "Search engines",
    "TRNS": "Translation",
    "MMED": "Multimedia sharing",
    "P2P": "Peer-to-peer file sharing",
    "GRP": "Groups & social networking",
    "COMM": "Commercial sites",
    "MISC": "Miscellaneous",
}

# Legacy code -> the current code that replaced it (from the "Replaces old code(s)" column).
CURRENT_CODE_FOR_LEGACY: Final[dict[str, str]] = {
    "FEXP": "NEWS",
    "POLT": "POLR",
    "MINR": "HUMR",
    "WOMR": "HUMR",
    "MINF": "HUMR",
    "FREL": "GOVT",
    "DEV": "ECON",
    "HAL": "CULTR",
    "GAYL": "LGBT",
    "P2P": "FILE",
    "VOIP": "COMT",
    "EMAIL": "COMT",
    "TRNS": "COMT",
    "BLGSERV": "HOST",
}


def is_known_category(code: str) -> bool:
    return code in CATEGORY_CODES or code in LEGACY_CATEGORY_CODES


def category_name(code: str) -> str | None:
    return CATEGORY_CODES.get(code) or LEGACY_CATEGORY_CODES.get(code)
