"""MkDocs hooks (mkdocs.yml `hooks:`): the built site loads nothing from the network.

Math: pymdownx.arithmatex (generic mode) marks ``$...$`` and ``$$...$$`` as
``<span class="arithmatex">\\(...\\)</span>`` / ``<div class="arithmatex">\\[...\\]</div>``; every one
of them, in the page and in its table of contents, is converted here at build time to MathML with
latex2mathml (PyPI, in the ``docs`` extra). Browsers render MathML themselves: no MathJax, no script.
The site ships an OpenType math font for it (STIX Two Math, docs/assets/stylesheets/math.css).

Diagrams: mkdocs-material renders ```mermaid fences with Mermaid, which its bundle loads from a CDN
unless ``mermaid`` is already defined when the page loads. The site ships ``mermaid.min.js`` and loads
it, before Material's bundle, on each page that has a diagram.

Both files come from pinned npm packages (version, tarball integrity and file SHA-256 below), taken with
``npm pack`` at build time once into a cache folder (``$MINIGRAD_DOCS_CACHE``, else
``$XDG_CACHE_HOME/minigrad-docs``, else ``~/.cache/minigrad-docs``) and added to the site's files. The
build fails, rather than producing pages that need the network, when neither the cache nor npm is there.
"""
from __future__ import annotations

import hashlib
import html
import json
import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File
from mkdocs.utils import get_relative_url

log = logging.getLogger("mkdocs.hooks.offline")

MERMAID_URI = "assets/javascripts/mermaid.min.js"

# ---------------------------------------------------------------------------------------------- math

_ARITHMATEX = re.compile(r'<(span|div) class="arithmatex">(.*?)</\1>', re.DOTALL)
_TOC_MATH = re.compile(r"\\\((.+?)\\\)", re.DOTALL)
_OPERATORNAME = re.compile(r"\\operatorname\*?\s*\{([^{}]*)\}")
_TEXT = re.compile(r"\\text\s*\{([^{}]*)\}")
_ONE_LETTER_FONT = re.compile(r"\\(mathcal|mathbb|mathbf|mathfrak|mathsf|mathtt|mathscr)\s+([A-Za-z0-9])")
_NAMED_OPERATORS = re.compile(r"\\(arg)(?![A-Za-z])")          # not known to latex2mathml
_UPRIGHT_RUN = re.compile(r'<mrow>((?:<mi mathvariant="normal">[^<]+</mi>){2,})</mrow>')
_UPRIGHT_LETTER = re.compile(r'<mi mathvariant="normal">([^<]+)</mi>')
_VARIANT_MI = re.compile(r'<mi mathvariant="(?!normal")([a-z-]+)">([A-Za-z0-9])</mi>')
_NAMED_SPACE = re.compile(r'<mspace width="[a-z]+mathspace" ?/>')

# TeX spaces atoms by their classes; MathML Core by its operator dictionary and an operator's place in
# its row. Where the two differ visibly: "/", "|", \partial and \infty are ordinary symbols in TeX (no
# space around them); a sign first in a group or after an opening bracket, "=" or "," is a unary sign;
# a named operator (\log, \tanh, \max, \operatorname) takes a thin space before an argument that does
# not begin with a bracket.
_ORDINARY = {
    "<mo>&#x0002F;</mo>": '<mo lspace="0" rspace="0">&#x0002F;</mo>',
    '<mo stretchy="false">&#x0007C;</mo>': '<mo stretchy="false" lspace="0" rspace="0">&#x0007C;</mo>',
    "<mo>&#x02202;</mo>": '<mi mathvariant="normal">&#x02202;</mi>',
    "<mo>&#x0221E;</mo>": "<mi>&#x0221E;</mi>",
}
_OPENING = "&#x00028;|&#x0005B;|&#x0007B;|&#x0230A;|&#x02308;|&#x027E8;"
_UNARY_SIGN = re.compile(r"(<mrow>|<mo[^>]*>(?:" + _OPENING + r"|&#x0003D;|&#x0002C;)</mo>)"
                         r"<mo>(&#x02212;|&#x0002B;)</mo>")
_NAMED_MO = re.compile(r"<mo>([A-Za-z]{2,})</mo>")
_NAME_BEFORE_ARGUMENT = re.compile(r"(<mi>[A-Za-z]{2,}</mi>)(?=<m)"
                                   r"(?!(?:<mrow>)?<mo[^>]*>(?:" + _OPENING + r")</mo>)")

# mathvariant -> the Unicode name part of its Mathematical Alphanumeric Symbols (MathML Core renders only
# mathvariant="normal", so the others become the characters themselves).
_VARIANTS = {"bold": "BOLD", "italic": "ITALIC", "bold-italic": "BOLD ITALIC", "script": "SCRIPT",
             "bold-script": "BOLD SCRIPT", "fraktur": "FRAKTUR", "bold-fraktur": "BOLD FRAKTUR",
             "double-struck": "DOUBLE-STRUCK", "sans-serif": "SANS-SERIF", "bold-sans-serif": "SANS-SERIF BOLD",
             "monospace": "MONOSPACE"}
_LETTERLIKE = {"FRAKTUR": "BLACK-LETTER", "ITALIC SMALL H": "PLANCK CONSTANT"}


def _variant_char(variant: str, char: str) -> str:
    name = _VARIANTS.get(variant)
    if name is None:
        return char
    if char.isdigit():
        kind = f"DIGIT {unicodedata.name(char).split()[-1]}"
    else:
        kind = f"{'CAPITAL' if char.isupper() else 'SMALL'} {char.upper()}"
    for candidate in (f"MATHEMATICAL {name} {kind}", f"{name} {kind}",
                      f"{_LETTERLIKE.get(name, name)} {kind}", _LETTERLIKE.get(f"{name} {kind}", "")):
        try:
            return unicodedata.lookup(candidate)
        except KeyError:
            continue
    return char


def _prepare(tex: str) -> str:
    """Rewrite the few constructs that latex2mathml renders poorly into ones it renders well."""
    tex = _TEXT.sub(lambda m: "\\text{" + re.sub(r"\\([_%&$#])", r"\1", m.group(1)) + "}", tex)
    tex = _NAMED_OPERATORS.sub(r"\\operatorname{\1}", tex)
    tex = _OPERATORNAME.sub(lambda m: "\\mathrm{" + m.group(1) + "}", tex)
    return _ONE_LETTER_FONT.sub(r"\\\1{\2}", tex)


def _polish(mathml: str) -> str:
    """MathML Core output: a multi-letter upright name as one <mi>, no unsupported attribute values,
    TeX's spacing where the operator dictionary differs."""
    mathml = _NAMED_SPACE.sub("", mathml)
    mathml = _UPRIGHT_RUN.sub(lambda m: "<mi>" + "".join(_UPRIGHT_LETTER.findall(m.group(1))) + "</mi>", mathml)
    mathml = _VARIANT_MI.sub(lambda m: f"<mi>{_variant_char(m.group(1), m.group(2))}</mi>", mathml)
    for operator, ordinary in _ORDINARY.items():
        mathml = mathml.replace(operator, ordinary)
    mathml = _UNARY_SIGN.sub(r'\1<mo form="prefix" lspace="0" rspace="0">\2</mo>', mathml)
    mathml = _NAMED_MO.sub(r'<mo lspace="0" rspace="0.1667em">\1</mo>', mathml)
    return _NAME_BEFORE_ARGUMENT.sub(r'\1<mspace width="0.1667em" />', mathml)


def tex_to_mathml(tex: str, display: bool) -> str:
    """One formula, without its delimiters, as a <math> element."""
    from latex2mathml.converter import convert

    return _polish(convert(_prepare(tex.strip()), display="block" if display else "inline"))


def _delimited_to_mathml(text: str, where: str) -> str:
    """``\\(...\\)`` or ``\\[...\\]`` (arithmatex's generic output, HTML-escaped) as MathML."""
    tex = html.unescape(text).strip()
    display = tex.startswith("\\[")
    if tex[:2] not in ("\\(", "\\[") or tex[-2:] not in ("\\)", "\\]"):
        raise PluginError(f"{where}: unexpected arithmatex output {text!r}")
    try:
        return tex_to_mathml(tex[2:-2], display)
    except Exception as error:  # latex2mathml raises its own exception types
        raise PluginError(f"{where}: cannot convert the formula {tex!r} to MathML: {error}") from error


def _retitle_toc(items, where: str) -> None:
    for item in items:
        if "\\(" in item.title:
            item.title = _TOC_MATH.sub(lambda m: _delimited_to_mathml(m.group(0), where), item.title)
        _retitle_toc(item.children, where)


# -------------------------------------------------------------------------------- npm packages

@dataclass(frozen=True)
class NpmAsset:
    """Files taken from one pinned npm package and shipped in the site."""

    package: str
    version: str
    integrity: str                             # of the tarball, as `npm view PACKAGE@VERSION dist.integrity`
    files: tuple[tuple[str, str, str], ...]    # (path in the package, site path, SHA-256 or "" for a license)

    @property
    def spec(self) -> str:
        return f"{self.package}@{self.version}"


MERMAID = NpmAsset(   # Mermaid 11: the major version that mkdocs-material 9's integration is written for
    "mermaid", "11.17.2",
    "sha512-V6K3C8EBdEsPFZXSKMJe6ppQOENxuHARr9GvHX4hh47lAbhMRD9qf4oEK7LoaRQxULMa80/qt5gHO73aCleBBg==",
    (("dist/mermaid.min.js", MERMAID_URI, "581ed7d74bd9048d0e3a91363927d72ef22942d7722546b27f7cc29e35390eb8"),
     ("LICENSE", "assets/javascripts/mermaid.LICENSE.txt", "")))
# STIX Two Math, an OpenType MATH font (the full font, whatever the file's name says), for the MathML:
# without a math font the browser draws sums and fractions from the text font (small, misplaced limits).
MATH_FONT = NpmAsset(
    "@fontsource/stix-two-math", "5.3.0",
    "sha512-negoeozw6VSXjZMozwKRSm/dhCQT62csZcuea9I8KYqPaZq/8KbbBBrA02ZHF7AyuR5mVML/p+q0bwFuSIf2GQ==",
    (("files/stix-two-math-latin-400-normal.woff2", "assets/fonts/stix-two-math.woff2",
      "8b2a6834cfe1f4e0f3724ffa59fe92000013fc5a4c41e6a3f438006c26c60f0d"),
     ("LICENSE", "assets/fonts/stix-two-math.LICENSE.txt", "")))
NPM_ASSETS = (MERMAID, MATH_FONT)


def _cache_dir() -> Path:
    if os.environ.get("MINIGRAD_DOCS_CACHE"):
        return Path(os.environ["MINIGRAD_DOCS_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "minigrad-docs"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cached(asset: NpmAsset, folder: Path) -> bool:
    return all((folder / Path(site).name).is_file() and (not sha or _sha256(folder / Path(site).name) == sha)
               for _, site, sha in asset.files)


def _fetch(asset: NpmAsset, folder: Path) -> None:
    """`npm pack PACKAGE@VERSION` into a temporary folder, check it, keep the files the site needs."""
    npm = shutil.which("npm")
    if npm is None:
        names = ", ".join(f"{member} as {Path(site).name}" for member, site, _ in asset.files)
        raise PluginError(
            f"{asset.spec} is not cached in {folder} and npm is not installed: install Node.js and npm "
            f"(Debian: apt-get install npm) and build again, or put there, from the npm package "
            f"{asset.spec}: {names}.")
    with tempfile.TemporaryDirectory() as tmp:
        log.info("Fetching %s from the npm registry (once, into %s)", asset.spec, folder)
        result = subprocess.run([npm, "pack", asset.spec, "--json", "--ignore-scripts", "--pack-destination", tmp],
                                cwd=tmp, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise PluginError(f"npm pack {asset.spec} failed:\n{result.stderr[-2000:]}")
        packed = json.loads(result.stdout)[0]
        if packed.get("integrity") != asset.integrity:
            raise PluginError(f"{asset.spec} from npm has integrity {packed.get('integrity')}, "
                              f"expected {asset.integrity}")
        staged = []
        with tarfile.open(Path(tmp) / packed["filename"]) as archive:
            for member, site, sha in asset.files:
                try:
                    source = archive.extractfile(f"package/{member}")
                except KeyError:
                    source = None
                if source is None:
                    raise PluginError(f"{asset.spec}: {member} is not a file in the package")
                target = Path(tmp) / Path(site).name
                target.write_bytes(source.read())
                if sha and _sha256(target) != sha:
                    raise PluginError(f"{asset.spec}: {member} has an unexpected SHA-256")
                staged.append(target)
        folder.mkdir(parents=True, exist_ok=True)
        for target in staged:
            shutil.copyfile(target, folder / f"{target.name}.part")
            os.replace(folder / f"{target.name}.part", folder / target.name)


def npm_asset_files(asset: NpmAsset) -> list[tuple[str, Path]]:
    """(site path, cached file) of each file of the asset, fetched from the npm registry the first time."""
    folder = _cache_dir() / f"{asset.package.replace('/', '+')}-{asset.version}"
    if not _cached(asset, folder):
        _fetch(asset, folder)
    return [(site, folder / Path(site).name) for _, site, _ in asset.files]


# ------------------------------------------------------------------------------------------- hooks

_pages_with_diagrams: set[str] = set()


def on_files(files, config):
    for uri, path in [item for asset in NPM_ASSETS for item in npm_asset_files(asset)]:
        existing = files.get_file_from_path(uri)
        if existing is not None:
            files.remove(existing)
        files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files


@event_priority(50)   # before the search plugin indexes the page
def on_page_content(html_text, page, config, files):
    where = page.file.src_uri
    html_text = _ARITHMATEX.sub(
        lambda m: f'<{m.group(1)} class="arithmatex">{_delimited_to_mathml(m.group(2), where)}</{m.group(1)}>',
        html_text)
    _retitle_toc(page.toc.items, where)
    if 'class="mermaid"' in html_text:
        _pages_with_diagrams.add(page.file.src_uri)
    else:
        _pages_with_diagrams.discard(page.file.src_uri)
    return html_text


_BUNDLE = re.compile(r'<script src="[^"]*assets/javascripts/bundle\.[^"]*"')


def on_post_page(output, page, config):
    if page.file.src_uri not in _pages_with_diagrams:
        return output
    tag = f'<script src="{get_relative_url(MERMAID_URI, page.url)}"></script>\n    '
    match = _BUNDLE.search(output)
    if match is None:   # another theme version: anywhere before the end of the body still runs before load
        return output.replace("</body>", tag + "</body>", 1)
    return output[:match.start()] + tag + output[match.start():]
