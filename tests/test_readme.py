"""The README's pictures are there, small, and made by the report code from real runs."""

import re

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
