"""The executed notebook as static HTML: the explorer drawn from its saved widget state, no kernel.

JupyterLab saves the widget state with the notebook (the test server turns on the widget
manager's "save state" setting, which a teacher turns on in Settings), nbconvert exports it to
HTML, and Chromium opens the file. The widget renderer is @jupyter-widgets/html-manager's
embed.js, which `make test-browser` fetches with npm into .venv; it is copied beside the HTML, so
no widget code comes from a CDN. Output: artifacts/browser/static-export/04_iterative_decoding.html
and artifacts/browser/static-export.png.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from browser_lab import ARTIFACTS, REDRAW_S, Explorer, Page

pytestmark = pytest.mark.browser

RENDERER = Path(sys.prefix) / "share" / "maskgit-lab" / "html-manager" / "embed.js"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
CDN = "https://cdnjs.cloudflare.com/"


def test_static_html_export_draws_the_explorer(solution_page, browser):
    if not RENDERER.is_file():
        pytest.skip(f"the static export needs {RENDERER}: make test-browser fetches @jupyter-widgets/html-manager with npm")
    live = Explorer(solution_page)
    shown, settings = live.text(), live.settings()
    solution_page.save()
    saved = solution_page.server.root / solution_page.path
    assert WIDGET_STATE in json.loads(saved.read_text())["metadata"].get("widgets", {}), "no widget state was saved"

    out = ARTIFACTS / "static-export"
    (out / "widgets").mkdir(parents=True, exist_ok=True)
    shutil.copy(RENDERER, out / "widgets" / "embed.js")
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--output-dir", str(out),
                    "--HTMLExporter.widget_renderer_url=widgets/embed.js", str(saved)],
                   check=True, capture_output=True, timeout=120)

    page = Page(browser, (out / f"{saved.stem}.html").as_uri())
    static = Explorer(page)  # waits for the control labelled "schedule γ": the widgets were drawn
    page.wait(static.drawn, REDRAW_S, "the static explorer's output has no counts and pictures")
    page.screenshot("static-export", static.root)
    assert page.widget_placeholders() == []
    assert static.settings() == settings, "the static page shows other settings than the live explorer"
    assert static.text() == shown, "the static page shows other counts than the live explorer"
    # The exporter's page links require.js and MathJax from a CDN, which this machine cannot reach;
    # the widgets need neither. Any other console error counts.
    errors = [e for e in page.console_errors() if not e.startswith(CDN)]
    assert errors == [], "the static page's console shows an error"
    browser.close()  # the tab; the notebook tabs stay
    solution_page.focus()
