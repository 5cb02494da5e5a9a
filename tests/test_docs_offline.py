"""The documentation site works with no network: nothing is loaded from a CDN or a font service.

The site is built once (``mkdocs build --strict``; docs/offline_hooks.py turns the TeX into MathML and
ships Mermaid and a math font with the site). Then every page is checked twice:

- in the HTML as built: no script, style sheet, font or image from another host, every formula already
  MathML, the build helpers in docs/ not copied into the site;
- as headless Chromium shows it, with every host name unresolvable (so a CDN load cannot succeed): no
  unrendered ``\\(``, ``\\[`` or ``$...$`` left in the text outside code, every diagram rendered by the
  shipped Mermaid (Material replaces each ``<pre class="mermaid">`` by a ``<div class="mermaid">`` holding
  the SVG only once Mermaid has drawn it), and no script from another host added by the page's own code.

The browser part needs Debian's ``chromium`` (.ci/run installs it); without it that part is skipped, except
under CI (``CI=true``), where it fails.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path

import pytest

if os.environ.get("MINIGRAD_TEST_CUPY") == "sim":   # .ci/run's second whole-suite run
    pytest.skip("the docs site does not depend on the array backend: the plain run checks it",
                allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
PAGES_WITH_MATH = ("conv_backward", "layers", "custom_layer")   # guards against checking nothing
PAGES_WITH_DIAGRAMS = ("architecture",)
DIAGRAM_SOURCE = re.compile(r"\b(flowchart|graph|sequenceDiagram|classDiagram|stateDiagram|erDiagram|gantt)\b")
UNRENDERED_MATH = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$|(?<![\w$])\$(?=[^\s$])[^$\n]*[^\s$\\]\$")
TEX_COMMAND = re.compile(r"\\[A-Za-z]+")
REMOTE = re.compile(r"^(https?:)?//", re.IGNORECASE)
# Elements whose URL the browser loads by itself (a link the reader may follow, <a href>, is not one).
LOADED = {"script": ("src",), "img": ("src", "srcset"), "iframe": ("src",), "source": ("src", "srcset"),
          "video": ("src", "poster"), "audio": ("src",), "embed": ("src",), "object": ("data",),
          "link": ("href",)}
LINK_LOADS = {"stylesheet", "preconnect", "preload", "prefetch", "modulepreload", "icon", "dns-prefetch",
              "manifest", "apple-touch-icon"}
CODE = {"code", "pre", "script", "style", "textarea", "kbd", "samp"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr",
        "mspace", "none", "mprescripts"}


class Page(HTMLParser):
    """What the checks need from one page: remote loads, text outside code, math and diagram elements."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, dict]] = []
        self.remote: list[str] = []
        self.prose: list[str] = []          # text outside code, math included
        self.math_text: list[str] = []      # text inside <math>
        self.arithmatex = 0                 # elements class="arithmatex"
        self.arithmatex_with_math = 0       # ... that hold a <math>
        self.math = 0
        self.pre_mermaid = 0                # diagrams not rendered (still the source in a <pre>)
        self.div_mermaid = 0                # diagrams rendered
        self.mermaid_text: list[str] = []   # text inside any class="mermaid" element
        self.text: list[str] = []           # all text
        self.feed(text)
        self.close()

    def _inside(self, predicate) -> bool:
        return any(predicate(tag, attrs) for tag, attrs in self.stack)

    def handle_starttag(self, tag, attrs):
        attrs = {name: value or "" for name, value in attrs}
        classes = attrs.get("class", "").split()
        rels = set(attrs.get("rel", "").lower().split())
        for name in LOADED.get(tag, ()):
            if tag == "link" and not rels & LINK_LOADS:
                continue
            urls = [part.strip().split()[0] for part in attrs.get(name, "").split(",") if part.strip()] \
                if name == "srcset" else [attrs.get(name, "")]
            self.remote += [f"<{tag} {name}={url}>" for url in urls if REMOTE.match(url)]
        if tag == "math":
            self.math += 1
            if self.stack and "arithmatex" in self.stack[-1][1].get("class", "").split():
                self.arithmatex_with_math += 1
        if "arithmatex" in classes:
            self.arithmatex += 1
        if "mermaid" in classes:
            self.pre_mermaid += tag == "pre"
            self.div_mermaid += tag == "div"
        if tag not in VOID and not tag.endswith("/"):
            self.stack.append((tag, attrs))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if self.stack and self.stack[-1][0] == tag:
            self.stack.pop()

    def handle_endtag(self, tag):
        if any(open_tag == tag for open_tag, _ in self.stack):
            while self.stack and self.stack.pop()[0] != tag:
                pass

    def handle_data(self, data):
        if not data.strip():
            return
        self.text.append(data)
        if self._inside(lambda tag, attrs: "mermaid" in attrs.get("class", "").split()):
            self.mermaid_text.append(data)
        if self._inside(lambda tag, attrs: tag == "math"):
            self.math_text.append(data)
        if not self._inside(lambda tag, attrs: tag in CODE):
            self.prose.append(data)


def _page_name(path: Path, site: Path) -> str:
    relative = path.relative_to(site).as_posix()
    return relative[: -len("/index.html")] if relative.endswith("/index.html") else relative


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    mkdocs = shutil.which("mkdocs") or str(Path(sys.executable).with_name("mkdocs"))
    if not Path(mkdocs).exists():
        pytest.skip("mkdocs is not installed (pip install -e \".[docs]\")")
    pytest.importorskip("material", reason="mkdocs-material is not installed (pip install -e \".[docs]\")")
    pytest.importorskip("latex2mathml", reason="latex2mathml is not installed (pip install -e \".[docs]\")")
    out = tmp_path_factory.mktemp("docs") / "site"
    result = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    return out


@pytest.fixture(scope="module")
def pages(site) -> dict[str, Path]:
    found = {_page_name(path, site): path for path in sorted(site.rglob("*.html"))}
    for name in PAGES_WITH_MATH + PAGES_WITH_DIAGRAMS + ("index.html",):
        assert name in found, f"{name} is missing from the built site: {sorted(found)}"
    return found


def test_build_helpers_are_not_in_the_site(site):
    assert not sorted(p.relative_to(site).as_posix() for p in site.rglob("*.py"))


def test_site_ships_what_its_pages_load(site):
    for shipped in ("assets/javascripts/mermaid.min.js", "assets/fonts/stix-two-math.woff2",
                    "assets/stylesheets/math.css"):
        assert (site / shipped).is_file() and (site / shipped).stat().st_size > 100, shipped
    for css in site.rglob("*.css"):
        text = css.read_text(encoding="utf-8", errors="replace")
        assert not re.search(r"url\(\s*['\"]?(https?:)?//|@import\s+['\"]?(https?:)?//", text), \
            f"{css.relative_to(site)} loads from another host"


def test_built_pages_load_nothing_remote_and_have_math_as_mathml(pages, site):
    problems = []
    for name, path in pages.items():
        page = Page(path.read_text(encoding="utf-8"))
        problems += [f"{name}: loads {what}" for what in page.remote]
        if page.arithmatex != page.arithmatex_with_math:
            problems.append(f"{name}: {page.arithmatex - page.arithmatex_with_math} of {page.arithmatex} "
                            f"formulas are not MathML")
        problems += [f"{name}: TeX left in MathML: {m}" for m in TEX_COMMAND.findall(" ".join(page.math_text))]
        if name in PAGES_WITH_MATH and page.math < 5:
            problems.append(f"{name}: only {page.math} formulas")
        if name in PAGES_WITH_DIAGRAMS:
            if page.pre_mermaid < 1:
                problems.append(f"{name}: no diagram")
            if "assets/javascripts/mermaid.min.js" not in path.read_text(encoding="utf-8"):
                problems.append(f"{name}: does not load the shipped mermaid.min.js")
    assert not problems, "\n".join(problems)


def _browser() -> str | None:
    for name in BROWSERS:
        if shutil.which(name):
            return shutil.which(name)
    return None


def _dump_dom(browser: str, page: Path) -> str:
    """The page's DOM after its scripts ran, in headless Chromium that can resolve no host name."""
    with tempfile.TemporaryDirectory() as profile:
        command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                   "--disable-background-networking", "--disable-component-update", "--disable-sync",
                   "--disable-quic", "--no-first-run", "--no-default-browser-check", f"--user-data-dir={profile}",
                   "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
                   "--virtual-time-budget=10000", "--dump-dom", page.as_uri()]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "</html>" in result.stdout, \
        f"{browser} failed on {page} ({result.returncode}):\n{result.stderr[-3000:]}"
    return result.stdout


def test_pages_render_in_a_browser_without_network(pages, site):
    browser = _browser()
    if browser is None:
        reason = "Chromium is not installed (Debian: apt-get install chromium); .ci/run installs it"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    with ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2))) as pool:
        doms = dict(zip(pages, pool.map(lambda path: _dump_dom(browser, path), pages.values())))
    problems = []
    for name, dom in doms.items():
        built = Page(pages[name].read_text(encoding="utf-8"))
        page = Page(dom)
        problems += [f"{name}: loads {what} (in the browser)" for what in page.remote]
        problems += [f"{name}: unrendered math {m.group(0)[:60]!r}"
                     for text in page.prose for m in UNRENDERED_MATH.finditer(text)]
        if page.math < built.math:
            problems.append(f"{name}: {page.math} formulas in the browser, {built.math} built")
        if page.pre_mermaid or page.div_mermaid != built.pre_mermaid:
            problems.append(f"{name}: {page.div_mermaid} of {built.pre_mermaid} diagrams rendered, "
                            f"{page.pre_mermaid} left as source")
        # The first line of each diagram's source ("flowchart BT", ...) is nowhere in the page any more.
        first_lines = {text.strip().splitlines()[0] for text in built.mermaid_text
                       if DIAGRAM_SOURCE.match(text.strip())}
        shown = sorted(line for line in first_lines if any(line in text for text in page.text))
        if shown:
            problems.append(f"{name}: diagram source shown: {shown}")
        if name in PAGES_WITH_DIAGRAMS and not first_lines:
            problems.append(f"{name}: no diagram source found in the built page")
    assert not problems, "\n".join(problems)
