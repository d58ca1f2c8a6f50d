"""Every relative link and image in docs/*.md (and the README's links into docs/) resolves: the file
exists and, for ``file.md#anchor``, the target has a heading with that GitHub-style anchor."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation but - and _ dropped, spaces to -."""
    text = FENCE.sub("", path.read_text())
    out = set()
    for title in re.findall(r"^#+\s+(.+?)\s*$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


def broken_links(md: Path) -> list[str]:
    bad = []
    for target in LINK.findall(FENCE.sub("", md.read_text())):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        dest = (md.parent / file).resolve() if file else md
        if not dest.exists():
            bad.append(f"{md.name}: {target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{md.name}: {target} (no such heading)")
    return bad


def test_every_relative_link_in_the_docs_resolves():
    bad = [b for md in sorted((ROOT / "docs").glob("*.md")) for b in broken_links(md)]
    assert not bad, "broken links in docs/:\n" + "\n".join(bad)


def test_the_readme_links_to_the_guides_and_references():
    readme = (ROOT / "README.md").read_text()
    for target in ("docs/user-guide.md", "docs/operator-guide.md", "docs/agent.md#mqtt-topics",
                   "docs/executor-contract.md", "docs/agent.md#http-routes", "docs/api.md", "docs/cli.md"):
        assert f"]({target})" in readme, f"README.md does not link {target}"
    bad = [b for b in broken_links(ROOT / "README.md") if "docs/" in b.split(": ", 1)[1]]
    assert not bad, bad


def test_the_user_guide_embeds_every_screenshot():
    guide = (ROOT / "docs" / "user-guide.md").read_text()
    missing = [p.name for p in sorted((ROOT / "docs" / "img").glob("*.png")) if f"(img/{p.name})" not in guide]
    assert not missing, f"screenshots not shown in docs/user-guide.md: {missing}"
