"""Fixtures for the browser tests (marker ``browser``; ``make test-browser``).

One JupyterLab server per session, on a free loopback port with a token, over a temporary copy
of the course (``solutions/`` and ``notebooks/``; the package and its data are found through the
editable install). One headless Chromium, Debian's, driven by Selenium through Debian's matching
``chromedriver``: both paths are given, so Selenium Manager never runs and nothing downloads a
browser or a driver. Both are stopped, the server with its kernels, after the last browser test
of the run, also after a failure.
Without Chromium, its driver or selenium, every browser test skips with one line saying what to
install. Screenshots go to ``artifacts/browser/``.
"""

import functools
import shutil
from pathlib import Path

import pytest
from browser_lab import ARTIFACTS, ROOT, LabServer, NotebookPage, missing_prerequisite

HERE = Path(__file__).resolve().parent
_RUNNING = []  # how to stop what the session fixtures started, oldest first


def _stop(stop):
    if stop in _RUNNING:
        _RUNNING.remove(stop)
        stop()


def pytest_runtest_teardown(item, nextitem):
    # JupyterLab, two kernels and Chromium hold about 2 GB: end them after the last browser
    # test rather than at the end of a whole `make test` run.
    later = item.session.items[item.session.items.index(item) + 1:]
    if not any(HERE in Path(other.path).parents for other in later):
        while _RUNNING:
            _stop(_RUNNING[-1])


@functools.cache
def _missing():
    return missing_prerequisite()


def pytest_runtest_setup(item):
    # A skip from here (not from a fixture) is reported at this line: all browser tests fold
    # into one "SKIPPED [n]" line that says what to install.
    if _missing():
        pytest.skip(_missing())


@pytest.fixture(scope="session")
def prerequisites():
    if _missing():
        pytest.skip(_missing())


@pytest.fixture(scope="session")
def lab_server(prerequisites, tmp_path_factory):
    course = tmp_path_factory.mktemp("course")
    for name in ("solutions", "notebooks"):
        shutil.copytree(ROOT / name, course / name, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    server = LabServer(course, tmp_path_factory.mktemp("jupyter"))
    _RUNNING.append(server.stop)
    try:
        server.wait_ready()
        yield server
    finally:
        _stop(server.stop)


@pytest.fixture(scope="session")
def browser(prerequisites, tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tmp_path_factory.mktemp("chromium")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    # --no-sandbox: Chromium's sandbox cannot start as root or in most containers. The
    # network flags keep it from trying hosts this machine cannot reach.
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
                 "--window-size=1400,1000", "--force-device-scale-factor=1", f"--user-data-dir={profile / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=shutil.which("chromedriver"), log_output=str(profile / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    _RUNNING.append(driver.quit)
    try:
        # The tests assert an empty console: make sure an error there would be seen at all.
        driver.execute_script("console.error('console probe')")
        if not any("console probe" in entry["message"] for entry in driver.get_log("browser")):
            raise RuntimeError("the browser console cannot be read: the console checks would pass vacuously")
        yield driver
    finally:
        _stop(driver.quit)


@pytest.fixture(scope="session")
def artifacts():
    """artifacts/browser/, emptied first so that every picture there is from this run."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def course_page(lab_server, browser, artifacts):
    """Open a notebook of the temporary course in its own tab; its kernel is shut down at the end."""
    pages = []

    def open_page(path: str) -> NotebookPage:
        pages.append(NotebookPage(browser, lab_server, path))
        return pages[-1]

    yield open_page
    for page in pages:
        try:
            page.close_kernel()
        except OSError:
            pass  # the server is already stopped, and its kernels with it


@pytest.fixture(scope="session")
def solution_page(course_page, artifacts):
    """solutions/04_iterative_decoding.ipynb, run top to bottom in fast mode (the server sets it)."""
    page = course_page("solutions/04_iterative_decoding.ipynb")
    page.run_all()
    return page


