"""Templates and static files: everything referenced exists, nothing comes from another host, and
nothing inline would fall foul of the Content Security Policy."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cldx.web.templating import STATIC_DIR, TEMPLATES_DIR

TEMPLATES = sorted(TEMPLATES_DIR.glob("*.html"))
STATIC_REFERENCE = re.compile(r"""static_url\(\s*['"]([^'"]+)['"]\s*\)""")
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


class Tags(HTMLParser):
    """The tags of a page, with their attributes, and whether any inline script or style is there."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self._in: str | None = None
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag in ("script", "style"):
            self._in = tag
        if "style" in attributes:
            self.inline.append(f"style attribute on <{tag}>")
        self.inline += [f"{name} handler on <{tag}>" for name in attributes if name.startswith("on")]

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in and data.strip():
            self.inline.append(f"inline <{self._in}>")


def parse(html: str) -> Tags:
    tags = Tags()
    tags.feed(html)
    return tags


def test_there_are_templates() -> None:
    names = {path.name for path in TEMPLATES}
    assert {"base.html", "home.html", "_summary.html", "404.html", "error.html"} <= names


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: path.name)
def test_static_files_referenced_by_template_exist(template: Path) -> None:
    for reference in STATIC_REFERENCE.findall(template.read_text(encoding="utf-8")):
        assert (STATIC_DIR / reference).is_file(), f"{template.name} refers to missing static/{reference}"


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: path.name)
def test_template_names_no_other_host(template: Path) -> None:
    text = template.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text
    assert not re.search(r"""(src|href|action|hx-get|hx-post)\s*=\s*['"]//""", text)


def test_stylesheet_loads_nothing_from_elsewhere() -> None:
    css = (STATIC_DIR / "cldx.css").read_text(encoding="utf-8")
    assert "@import" not in css
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", css)


def test_vendored_files_are_documented() -> None:
    readme = (STATIC_DIR / "vendor" / "README.md").read_text(encoding="utf-8")
    for path in (STATIC_DIR / "vendor").iterdir():
        if path.name != "README.md":
            assert f"`{path.name}`" in readme, f"vendor/{path.name} is not in vendor/README.md"


def test_web_files_are_package_data() -> None:
    """A template or static file outside pyproject's package-data globs would be missing when
    cldx is installed from a wheel."""
    globs = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["setuptools"]["package-data"]["cldx.web"]
    package = TEMPLATES_DIR.parent
    for folder in (TEMPLATES_DIR, STATIC_DIR):
        for path in folder.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                relative = path.relative_to(package).as_posix()
                assert any(fnmatch.fnmatchcase(relative, glob) and relative.count("/") == glob.count("/") for glob in globs), (
                    f"{relative} is not matched by package-data {globs}"
                )


@pytest.mark.parametrize("path", ["/", "/no-such-page"])
def test_rendered_page_has_no_inline_script_or_style(ministry_client: TestClient, path: str) -> None:
    tags = parse(ministry_client.get(path).text)
    assert tags.inline == []
    assert [tag for tag, _ in tags.tags if tag == "style"] == []


def test_every_script_and_stylesheet_on_the_home_page_is_served(ministry_client: TestClient) -> None:
    tags = parse(ministry_client.get("/").text)
    urls = [attrs["src"] for tag, attrs in tags.tags if tag == "script"]
    urls += [attrs["href"] for tag, attrs in tags.tags if tag == "link" and attrs.get("rel") == "stylesheet"]
    assert "/static/cldx.css" in urls
    assert "/static/vendor/htmx-2.0.11.min.js" in urls
    for url in urls:
        assert url.startswith("/static/"), url
        assert ministry_client.get(url).status_code == 200, url
