"""The reference of segment filter fields in ``docs/insights.md``, written from the code's own list of fields.

The table between :data:`BEGIN` and :data:`END` is generated from :func:`kairos.audiences.domain.filter_fields`
and ``FIELD_ALIASES``; a unit test fails when the page's table differs from what this module writes::

    python -m kairos.audiences.reference docs/insights.md          # rewrite the table in place
    python -m kairos.audiences.reference --check docs/insights.md  # exit 1 when the page is out of date
"""

from __future__ import annotations

import sys
from pathlib import Path

from kairos.audiences.domain import FIELD_ALIASES, filter_fields

MODULE = "kairos.audiences.reference"
BEGIN = "<!-- segment filter fields: written by `python -m kairos.audiences.reference docs/insights.md` -->"
END = "<!-- end of segment filter fields -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("``", "`")


def markdown_table() -> str:
    """The field reference as a Markdown table, with the aliases the validation reads after it.

    Example
    -------
    >>> markdown_table().splitlines()[0]
    '| field | value | what it reads |'
    """
    lines = ["| field | value | what it reads |", "|---|---|---|"]
    lines += [f"| `{f.field}` | {f.value} | {_cell(f.meaning)} |" for f in filter_fields()]
    aliases = ", ".join(f"`{alias}` (read as `{name}`)" for alias, name in FIELD_ALIASES.items())
    lines += ["", f"Also accepted, as the customer view names them: {aliases}."]
    return "\n".join(lines)


def with_table(page: str) -> str:
    """``page`` with the text between its markers replaced by :func:`markdown_table`.

    Raises
    ------
    ValueError
        The page lacks either marker.
    """
    start, end = page.find(BEGIN), page.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the page has no '{BEGIN}' ... '{END}' block")
    return f"{page[: start + len(BEGIN)]}\n{markdown_table()}\n{page[end:]}"


def main(argv: list[str]) -> int:
    """Rewrite (or with ``--check``, compare) the table of each page named; 1 when a page was out of date."""
    check = "--check" in argv
    stale = 0
    for name in (a for a in argv if a != "--check"):
        path = Path(name)
        text = path.read_text(encoding="utf-8")
        wanted = with_table(text)
        if wanted != text:
            stale = 1
            if check:
                print(f"{name}: the segment filter fields differ from the code; run python -m {MODULE} {name}")
            else:
                path.write_text(wanted, encoding="utf-8")
    return stale if check else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
