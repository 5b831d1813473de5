"""The lab's HTML: each site's page, the doctored page of http.diff, and the blockpage."""

from __future__ import annotations

import functools
import hashlib
import html
import secrets
import time

# The phrase Kazakh ISPs' blockpages carry (Russian), with its Kazakh counterpart.
BLOCKPAGE_PHRASE = "Доступ к запрашиваемому ресурсу ограничен"
BLOCKPAGE_PHRASE_KK = "Сұралған ресурсқа қол жеткізу шектелген"

BLOCKPAGE_HTML = f"""<!DOCTYPE html>
<html lang="ru"><head><meta charset="utf-8"><title>Доступ ограничен</title></head>
<body><h1>{BLOCKPAGE_PHRASE}</h1>
<p>{BLOCKPAGE_PHRASE_KK}.</p>
<p>Доступ к информационному ресурсу ограничен на основании решения уполномоченного органа
в соответствии с законодательством Республики Казахстан.</p>
<p>blockmon lab blockpage server</p>
</body></html>
"""

_WORDS = (
    "report news region election court rights media freedom press society economy "
    "culture opinion analysis interview archive river steppe city council budget "
    "school health energy transport weather sport history language market"
).split()


def _paragraphs(hostname: str) -> list[str]:
    """Deterministic filler so a site's body is stable between fetches, 2-8 KB by hostname."""
    digest = hashlib.sha256(hostname.encode()).digest()
    count = 13 + digest[0] % 34
    paragraphs = []
    for index in range(count):
        words = [
            _WORDS[(digest[(index + k) % 32] + 7 * k + index) % len(_WORDS)] for k in range(22)
        ]
        paragraphs.append(" ".join(words).capitalize() + ".")
    return paragraphs


@functools.lru_cache(maxsize=8192)
def _body_html(hostname: str) -> str:
    # The same for every page of a site: made once, not per request (it was ~6% of the lab's CPU).
    return "\n".join(f"<p>{p}</p>" for p in _paragraphs(hostname))


def render_site_page(hostname: str, path: str) -> str:
    """The real page of a lab site; its title names the host."""
    name = html.escape(hostname)
    body = _body_html(hostname)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{name}</title></head>\n<body><h1>{name}</h1>\n"
        f"<p>You are reading {html.escape(path)} on {name}, a site of the blockmon lab.</p>\n"
        f"{body}\n</body></html>\n"
    )


def render_dynamic_page(hostname: str, path: str) -> str:
    """The page of a `dynamic` site: same as any other plus a timestamp and a random token."""
    page = render_site_page(hostname, path)
    stamp = f"<p>Generated at {time.time():.6f}, token {secrets.token_hex(8)}.</p>\n</body>"
    return page.replace("</body>", stamp, 1)


def render_doctored_page(hostname: str, path: str) -> str:
    """What http.diff serves the censored vantage: a short page with another title, no blockpage."""
    name = html.escape(hostname)
    return (
        '<!DOCTYPE html>\n<html lang="ru"><head><meta charset="utf-8">'
        f"<title>Новости дня</title></head>\n<body><h1>Новости дня</h1>\n"
        f"<p>Страница {html.escape(path)} временно недоступна. Читайте официальные новости.</p>\n"
        f"<!-- {name} -->\n</body></html>\n"
    )


# Every lab site serves a large resource under LARGE_PATH, to measure a rate on (a target's
# throughput_url): a home page of 2-8 KB is over before a rate can be told.
LARGE_PATH = "/large"
LARGE_PAGE_BYTES = 256 * 1024


def render_large_page(hostname: str) -> bytes:
    """The site's page padded with its own filler to LARGE_PAGE_BYTES."""
    page = render_site_page(hostname, LARGE_PATH).encode()
    filler = " ".join(_paragraphs(hostname)).encode()
    repeats = LARGE_PAGE_BYTES // (len(filler) + 8) + 1
    padding = b"".join(b"<p>" + filler + b"</p>\n" for _ in range(repeats))
    return (page.replace(b"</body>", padding + b"</body>", 1))[: LARGE_PAGE_BYTES - 15] + b"</body></html>\n"
