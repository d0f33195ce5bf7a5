"""The documentation's own links resolve: every ``](file)`` and ``](file#anchor)`` between
the Markdown files of the repository, and every ``](#anchor)`` inside one, points at a file
that exists and a heading that is there (GitHub's anchors), so that a renamed section or
file cannot leave a reader at a dead link (docs/RESULTS.md's headline table is links)."""
import re
import urllib.parse
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: An inline link's target (``](path)``, ``](<path>)``, ``](path "title")``) or a
#: reference definition's (``[name]: path``).
LINK = re.compile(r'\]\(\s*(?:<([^>]+)>|([^)\s]+))(?:\s+"[^"]*")?\s*\)'
                  r"|^\s*\[[^\]]+\]:\s*<?([^\s>]+)")
FENCE = re.compile(r"^\s*(```|~~~)")


def _unfenced(text):
    """The lines of ``text`` outside code fences (the fences' own lines left out)."""
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            yield line


def anchors(text):
    """GitHub's anchors of the Markdown ``text``'s headings: lower case, every character
    but letters, digits, ``_``, ``-`` and spaces dropped, spaces to hyphens; a repeated
    anchor gets ``-1``, ``-2``, ... (github-slugger)."""
    seen, out = {}, set()
    for line in _unfenced(text):
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def links(text):
    """The link targets of ``text`` outside code fences and inline code."""
    for line in _unfenced(text):
        for groups in LINK.findall(re.sub(r"`[^`]*`", "", line)):
            yield next(g for g in groups if g)


def test_links_are_found_in_every_form():
    text = ('see [a](x.md), [b](<y z.md>), [c](w.md "title"), `[d](not-a-link.md)`\n'
            "[ref]: docs/r.md#part\n~~~\n[e](fenced.md)\n~~~\n")
    assert list(links(text)) == ["x.md", "y z.md", "w.md", "docs/r.md#part"]


def test_anchors_follow_githubs_rules():
    text = "# A b\n## The book's runs\n### Speed\n## Speed\n```\n# not a heading\n```\n" \
           "#### On an AMD EPYC (Zen 5, AVX-512), 2026-12-07\n### Kneser–Ney, `code`\n"
    assert anchors(text) == {"a-b", "the-books-runs", "speed", "speed-1",
                             "on-an-amd-epyc-zen-5-avx-512-2026-12-07", "kneserney-code"}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_local_link_resolves(doc):
    text = doc.read_text(encoding="utf-8")
    broken = []
    for target in links(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):   # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        anchor = urllib.parse.unquote(anchor)
        file = doc if not path else (doc.parent / path).resolve()
        if not file.exists():
            broken.append(f"{target}: no file {file}")
        elif anchor and file.suffix == ".md" and \
                anchor not in anchors(file.read_text(encoding="utf-8")):
            broken.append(f"{target}: no heading with anchor #{anchor} in {file.name}")
    assert not broken, "\n".join(broken)
