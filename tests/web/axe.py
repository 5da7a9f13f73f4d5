"""axe-core accessibility checks for a Playwright page: `axe_violations(page)`.

axe-core is vendored in the package (`cldx/web/static/vendor/`, see its README) but no page
includes it: this helper adds it to the page under test from its served URL (same origin, so the
page's Content Security Policy allows it, and no test reaches another host), runs it on the whole
document and returns what it found as one readable line per rule, so a failing assertion says
what to fix and where:

    assert axe_violations(page) == []

The page should have settled first (e.g. charts drawn): axe checks the DOM as it is.
"""

from __future__ import annotations

from collections.abc import Iterable

AXE_VERSION = "4.14.1"
AXE_URL = f"/static/vendor/axe-core-{AXE_VERSION}.min.js"

# Runs in the page: axe.run with its default rules (WCAG 2.0-2.2 A and AA and best practices),
# only the violations, reduced to what the report needs (a node's own impact may be lower than its
# rule's worst, so nodes are filtered one by one).
_RUN = """async (impacts) => {
  const results = await axe.run(document, { resultTypes: ["violations"] });
  return results.violations.map((rule) => ({
    id: rule.id,
    help: rule.help,
    url: rule.helpUrl,
    nodes: rule.nodes.filter((node) => impacts.includes(node.impact || rule.impact)).map((node) => ({
      impact: node.impact || rule.impact,
      target: node.target.map((part) => Array.isArray(part) ? part.join(" >>> ") : part).join(" "),
      summary: node.failureSummary || ""
    }))
  })).filter((rule) => rule.nodes.length > 0);
}"""


def axe_violations(page, *, impact: Iterable[str] = ("serious", "critical")) -> list[str]:
    """The page's axe-core violations of the given impacts, one line per rule: id, impact, help and the offending nodes.

    Lines like "color-contrast (serious): Elements must meet minimum color contrast ratio
    thresholds: #main > p.hint, .meta [Fix any of the following: ...]". axe is added to the page
    once (a later call on the same document reuses it).
    """
    if not page.evaluate("typeof window.axe === 'object'"):
        page.add_script_tag(url=AXE_URL)
    rules = page.evaluate(_RUN, list(impact))
    lines = []
    for rule in rules:
        impacts = sorted({node["impact"] for node in rule["nodes"]})
        nodes = "; ".join(f"{node['target']} [{' '.join(node['summary'].split())}]" for node in rule["nodes"])
        lines.append(f"{rule['id']} ({', '.join(impacts)}): {rule['help']}: {nodes} <{rule['url']}>")
    return lines
