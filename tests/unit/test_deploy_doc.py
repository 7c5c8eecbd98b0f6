"""docs/deploy.md lists exactly the resources template.yaml retains when the stack is deleted or replaces them."""

from __future__ import annotations

import re

from kairos_local.template import ROOT, load_template

PAGE = ROOT / "docs" / "deploy.md"


def _retained_on_the_page() -> set[str]:
    text = PAGE.read_text(encoding="utf-8")
    table = text[text.index("| retained resource |") :].split("\n\n", 1)[0]
    return set(re.findall(r"^\| `(\w+)` \|", table, re.M))


def test_deploy_doc_lists_the_templates_retained_resources():
    # GIVEN the resources the template keeps on deletion or replacement
    resources = load_template()["Resources"]
    retained = {
        lid for lid, res in resources.items() if "Retain" in (res.get("DeletionPolicy"), res.get("UpdateReplacePolicy"))
    }
    # THEN the teardown section names exactly those
    assert retained
    assert _retained_on_the_page() == retained


def test_deploy_doc_retained_resources_keep_data_on_both_policies():
    # A resource retained on deletion but not on replacement (or the reverse) would lose data one way: the page
    # promises both.
    for lid, res in load_template()["Resources"].items():
        policies = {res.get("DeletionPolicy"), res.get("UpdateReplacePolicy")}
        if "Retain" in policies:
            assert policies == {"Retain"}, lid
