"""A model card as one self-contained HTML page: no script, every string escaped.

>>> from taxiway.models.card import CardSection, CardTable, VersionCard
>>> card = VersionCard("churn", 1, [CardSection("Intended use", ["<script>x</script>"],
...     [CardTable(["a"], [["<b>"]])])], [])
>>> page = render_card_html(card)
>>> "<script" in page, "&lt;script&gt;" in page, "<td>&lt;b&gt;</td>" in page
(False, True, True)
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taxiway.models.card import CardTable, VersionCard

__all__ = ["render_card_html"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; max-width: 70rem; }
table { border-collapse: collapse; margin: 1rem 0; }
td, th { border: 1px solid #ccc; padding: .3rem .6rem; vertical-align: top; text-align: left; }
td.worse { background: #ffd54f; } td.better { background: #c8e6c9; }
"""


def render_card_html(card: VersionCard) -> str:
    """The page: a heading per section, its sentences as a list, then its tables."""
    body = [f"<h1>{escape(card.title)}</h1>"]
    for section in card.sections:
        slug = escape(section.title.lower().replace(" ", "-"))
        body.append(f'<section id="card-{slug}"><h2>{escape(section.title)}</h2>')
        if section.lines:
            body.append("<ul>" + "".join(f"<li>{escape(x)}</li>" for x in section.lines) + "</ul>")
        body += [_table(t) for t in section.tables]
        body.append("</section>")
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(card.title)}</title><style>{_STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _table(table: CardTable) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in table.headers)
    rows = "".join("<tr>" + "".join(_td(cell) for cell in row) + "</tr>" for row in table.rows)
    caption = f"<p>{escape(table.caption)}</p>" if table.caption else ""
    return f"{caption}<table><tr>{head}</tr>{rows}</table>"


def _td(cell: str) -> str:
    verdict = cell if cell in ("worse", "better") else None
    return f'<td class="{verdict}">{escape(cell)}</td>' if verdict else f"<td>{escape(cell)}</td>"
