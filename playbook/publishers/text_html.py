"""A message's plain-text body as HTML, the same on every channel that shows one (email, status page).

Blank lines part paragraphs, line breaks are kept, lines opening with "- ", "• " or "* " make a list;
everything is escaped, and web addresses (http and https only), email addresses and international phone
numbers become links, so the alternatives a message lists are one tap away.
"""

from __future__ import annotations

import re
from functools import lru_cache

from markupsafe import Markup, escape

from playbook.textsafe import web_link

_LINK = re.compile(r"(?P<url>https?://[^\s<>\"']+)|(?P<email>[\w.%+-]+@[\w-]+(?:\.[\w-]+)+)"
                   r"|(?P<phone>\+\d[\d .-]{5,}\d)")
_BULLET = re.compile(r"[-•*]\s+(.*)")
# "see https://example.com/chat." ends the sentence, not the address.
_TRAILING = ".,;:!?)]»”’"


def text_to_html(text: str) -> Markup:
    """`text` as safe HTML: paragraphs, line breaks, lists and links, as the module says."""
    # Plain strings joined, rather than Markup.format: an email list converts one body per recipient.
    parts: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []

    def flush() -> None:
        if paragraph:
            parts.append("<p>" + "<br>\n".join(paragraph) + "</p>")
            paragraph.clear()
        if items:
            parts.append("<ul>\n" + "\n".join(f"<li>{item}</li>" for item in items) + "\n</ul>")
            items.clear()

    for raw in text.strip().splitlines():
        line = raw.strip()
        bullet = _BULLET.fullmatch(line)
        if bullet:
            if paragraph:
                flush()
            items.append(_linked(bullet.group(1)))
        elif not line:
            flush()
        else:
            if items:
                flush()
            paragraph.append(_linked(line))
    flush()
    return Markup("\n".join(parts))


# The lines of a template's body recur from one recipient to the next, but for a greeting or two.
@lru_cache(maxsize=4096)
def _linked(line: str) -> str:
    """One line of text, escaped, its web and email addresses and international phone numbers made links."""
    out: list[str] = []
    position = 0
    for match in _LINK.finditer(line):
        if match.group("url"):
            target = match.group().rstrip(_TRAILING)
            href = web_link(target)
            if href is None:
                continue
        elif match.group("phone"):
            target = match.group()
            href = "tel:+" + re.sub(r"\D", "", target)
        else:
            target = match.group()
            href = f"mailto:{target}"
        out.append(escape(line[position:match.start()]))
        out.append(f'<a href="{escape(href)}">{escape(target)}</a>')
        position = match.start() + len(target)
    out.append(escape(line[position:]))
    return "".join(out)
