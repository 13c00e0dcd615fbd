"""The documentation points at what exists: every test it names as proof, every
file it links to. (A renamed test or a moved page fails here, not in a reader's hands.)"""

import re

import pytest

from tests.support import ROOT

PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
TEST_REFERENCE = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+))?")
LINK = re.compile(r"\]\(([^)#:\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_test_named_as_proof_exists(page):
    for path, name in TEST_REFERENCE.findall(page.read_text()):
        source = ROOT / path
        assert source.is_file(), f"{page.name} names {path}, which doesn't exist"
        if name:
            assert re.search(rf"^(async )?def {name}\(", source.read_text(), re.M), f"{page.name}: no {path}::{name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_link_reaches_a_file(page):
    for target in LINK.findall(page.read_text()):
        assert (page.parent / target).exists(), f"{page.name} links to {target}, which doesn't exist"
