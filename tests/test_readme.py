"""The README and docs/: their pictures are there and small, their links resolve, the README is a front page
and its Python runs."""

import re

import pytest
import tensorflow as tf

from helpers import ROOT

PICTURE_LIMIT = 300_000  # bytes: a picture of the README or docs/ stays well under it
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]


def links(page):
    """(text, target) of the page's Markdown links and pictures whose target is a path, not a URL or an anchor
    (code blocks left out: `model.signatures["serve"](images=...)` is Python)."""
    prose = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    found = re.findall(r"!?\[([^\]]*)\]\(([^)\s]+)\)", prose)
    return [(text, target.split("#")[0]) for text, target in found
            if not target.startswith(("http://", "https://", "#", "mailto:"))]


def test_every_picture_the_pages_show_is_a_small_committed_png():
    for page in PAGES:
        for _, target in re.findall(r"!\[([^\]]*)\]\(([^)]+)\)", page.read_text()):
            path = (page.parent / target).resolve()
            assert path.is_file(), f"{page.name} shows {target}, which is missing"
            assert path.parent == ROOT / "docs", (page.name, target)  # pictures live in docs/
            assert path.suffix == ".png" and path.stat().st_size < PICTURE_LIMIT, (target, path.stat().st_size)
            assert tf.io.decode_png(path.read_bytes()).shape[0] > 50, target


def test_every_internal_link_resolves_and_every_docs_page_is_listed_in_the_readme():
    for page in PAGES:
        for text, target in links(page):
            assert (page.parent / target).exists(), f"{page.relative_to(ROOT)}: [{text}]({target}) leads nowhere"
    readme_targets = {target for _, target in links(ROOT / "README.md")}
    assert {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")} <= readme_targets
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250  # a front page, not a lab notebook


@pytest.mark.slow
def test_the_from_python_section_runs_and_prints_what_it_says(capsys, monkeypatch):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## From Python"):readme.index("## Documentation")]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    monkeypatch.chdir(ROOT)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102  the README's own block, as a reader runs it
    printed = capsys.readouterr().out.strip()
    assert printed == "(2, 1000) (2, 256)" and f"prints `{printed}`" in section
    assert namespace["model"].count_params() == 62_378_344 and namespace["tuned"].output.shape == (None, 10)
