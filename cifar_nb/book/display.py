"""Small display objects: Markdown for Jupyter and the book (MyST), plain text for terminals and nbval."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cifar_nb.book.audit import project_root


class Markdown:
    def __init__(self, text: str):
        self.text = text

    def _repr_markdown_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text


class HTML:
    def __init__(self, text: str, plain: str = ""):
        self.text, self.plain = text, plain

    def _repr_html_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.plain or re.sub(r"<[^>]+>", "", self.text)


@dataclass
class Table:
    columns: list
    rows: list
    caption: str = ""
    note: str = ""      # Markdown shown under the table (a code block, say, too wide for the caption)

    def _repr_markdown_(self) -> str:
        def cell(v) -> str:
            return str(v).replace("|", "\\|").replace("\n", " ")
        lines = [f"**{self.caption}**", ""] if self.caption else []
        lines.append("| " + " | ".join(cell(c) for c in self.columns) + " |")
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in self.rows]
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        cells = [[plain_text(c) for c in self.columns]] + [[plain_text(v) for v in r] for r in self.rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.columns))]
        out = [self.caption] if self.caption else []
        for j, r in enumerate(cells):
            out.append("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
            if j == 0:
                out.append("  ".join("-" * w for w in widths))
        if self.note:
            out.append(plain_text(re.sub(r"^```\w*\n|\n```$", "", self.note)))
        return "\n".join(out)

    def column(self, name: str) -> list:
        i = self.columns.index(name)
        return [r[i] for r in self.rows]


def plain_text(v) -> str:
    return re.sub(r"\*\*|`", "", str(v))


def rel_path(path: Path) -> str:
    """A path as the book shows it: relative to the project, never the machine's absolute path."""
    path = Path(path).resolve()
    for base in (project_root(), Path.cwd()):
        try:
            return str(path.relative_to(base.resolve()))
        except ValueError:
            pass
    return path.name
