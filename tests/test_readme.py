"""The README's pictures are there, small, and made by the report code from real runs; its Python runs."""

import re

import pytest
import tensorflow as tf

from helpers import ROOT

PICTURE_LIMIT = 300_000  # bytes: a README picture stays well under it


def test_every_picture_the_readme_shows_is_a_small_committed_png():
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    for link in links:
        path = ROOT / link
        assert path.is_file(), f"README shows {link}, which is missing"
        assert path.suffix == ".png" and path.stat().st_size < PICTURE_LIMIT, (link, path.stat().st_size)
        assert tf.io.decode_png(path.read_bytes()).shape[0] > 50, link
    assert {link.split("/")[0] for link in links} <= {"docs"}


@pytest.mark.slow
def test_the_from_python_section_runs_and_prints_what_it_says(capsys, monkeypatch):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## From Python"):readme.index("## Commands")]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    monkeypatch.chdir(ROOT)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102  the README's own block, as a reader runs it
    printed = capsys.readouterr().out.strip()
    assert printed == "(2, 1000) (2, 256)" and f"prints `{printed}`" in section
    assert namespace["model"].count_params() == 62_378_344 and namespace["tuned"].output.shape == (None, 10)
