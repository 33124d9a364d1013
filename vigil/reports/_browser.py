"""Look at a report as a person would: open it in headless Chromium, collect console errors,
uncaught exceptions and any request that tries to leave the file, check that every chart drew,
and take a screenshot.

Playwright drives the system's Chromium (Debian's ``chromium`` package) through
``executable_path``; no browser is downloaded. Playwright is in the ``test`` extra.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from vigil._errors import ConfigError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
# flags for a closed network: no background calls home, no sandbox as root in containers
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]

_CHART_CHECK = """
() => Array.from(document.querySelectorAll('figure.chart')).map(f => {
  const svg = f.querySelector('svg');
  const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  const marks = svg ? svg.querySelectorAll('path, use, rect, text, image').length : 0;
  return {name: f.dataset.chart, width: box.width, height: box.height, marks: marks};
})
"""


def find_chromium() -> str | None:
    """The Chromium to drive: ``$VIGIL_CHROMIUM`` or the first on the PATH."""
    env = os.environ.get("VIGIL_CHROMIUM")
    if env:
        return env if Path(env).exists() else None
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageCheck:
    """What the browser saw."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)
    charts: list[dict[str, float]] = field(default_factory=list)
    ready: bool = False
    screenshot: Path | None = None

    @property
    def blank_charts(self) -> list[str]:
        return [str(c["name"]) for c in self.charts
                if c["width"] < 50 or c["height"] < 50 or c["marks"] < 5]

    @property
    def ok(self) -> bool:
        return (self.ready and not self.console_errors and not self.page_errors
                and not self.outside_requests and bool(self.charts) and not self.blank_charts)

    def problems(self) -> list[str]:
        out = [f"console error: {e}" for e in self.console_errors]
        out += [f"uncaught exception: {e}" for e in self.page_errors]
        out += [f"request outside the file: {u}" for u in self.outside_requests]
        out += [f"chart did not draw: {n}" for n in self.blank_charts]
        if not self.charts:
            out.append("no charts on the page")
        if not self.ready:
            out.append("the page's script did not finish")
        return out


def check_page(html: str | Path, *, screenshot: str | Path | None = None,
               full_page: bool = False, width: int = 1280, height: int = 1600,
               chromium: str | None = None) -> PageCheck:
    """Open ``html`` (a file) in headless Chromium and report what it saw."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - depends on the install
        raise ConfigError("looking at a report needs Playwright: pip install 'vigil[test]'"
                          ) from None
    executable = chromium or find_chromium()
    if executable is None:
        raise ConfigError("no Chromium found: install Debian's chromium package or set "
                          "VIGIL_CHROMIUM to a Chromium executable")
    path = Path(html).resolve()
    if not path.is_file():
        raise ConfigError(f"{path}: no such report")
    result = PageCheck()
    with tempfile.TemporaryDirectory(prefix="vigil-chromium-") as profile, \
            sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=executable, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": width, "height": height})
        try:
            page = context.new_page()
            page.on("console", lambda m: result.console_errors.append(m.text)
                    if m.type == "error" else None)
            page.on("pageerror", lambda e: result.page_errors.append(str(e)))

            def route(r):  # type: ignore[no-untyped-def]
                if r.request.url.startswith(("file:", "data:", "about:")):
                    r.continue_()
                else:
                    result.outside_requests.append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.goto(path.as_uri(), wait_until="load")
            page.wait_for_timeout(300)
            result.ready = page.evaluate(
                "() => document.documentElement.getAttribute('data-ready') === '1'")
            result.charts = page.evaluate(_CHART_CHECK)
            if screenshot is not None:
                result.screenshot = Path(screenshot)
                result.screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(result.screenshot), full_page=full_page)
        finally:
            context.close()
    return result
