"""JupyterLab and the schedule explorer as a person sees them: a server, a notebook tab, the controls.

:class:`LabServer` runs ``jupyter lab`` on a free loopback port with a token and stops it and its
kernels. :class:`NotebookPage` drives one notebook in a browser tab with clicks and keys (menus,
Shift+Enter) and reads back what the page shows: prompts, error outputs, the console.
:class:`Explorer` finds the explorer's controls by their labels. The fixtures are in conftest.py.
"""

import base64
import functools
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Optional

import psutil
import torch

from maskgit_lab.checkpoint import load_shipped
from maskgit_lab.data import DEFAULT_ROOT, load_test_batch
from maskgit_lab.decoding import masked_after_step
from maskgit_lab.inpaint import token_mask_from_pixels
from maskgit_lab.schedules import gamma
from maskgit_lab.widgets import explore

try:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select
except ImportError:  # the tests skip and say so (missing_prerequisite)
    pass

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "browser"
INSTALL = "apt-get install chromium chromium-driver (as root; make test and make test-browser do it)"
REDRAW_S = 60  # what the browser alone draws (no kernel at work); a drawing that never comes fails here
# The server's start, a notebook's opening, running cells and explorer redraws fail only when they stop making
# progress (no cell finished, and the server or kernel used less than a second of CPU, for this long), never
# because a busy machine runs them slowly.
STALL_S = 300
# A user's settings that matter here: widget state saved with the notebook (for the static
# export), and no news or update checks, which would try the network and pop up toasts.
LAB_SETTINGS = {
    "@jupyter-widgets/jupyterlab-manager/plugin.jupyterlab-settings": {"saveState": True},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
}


def _major(command: str) -> str:
    out = subprocess.run([command, "--version"], capture_output=True, text=True, timeout=60).stdout
    found = re.search(r"(\d+)\.\d+\.\d+", out)
    return found.group(1) if found else "?"


def missing_prerequisite():
    """None when the browser tests can run, else one line saying what to install."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        return f"browser tests need Debian's Chromium and its driver: {INSTALL}"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "browser tests need selenium: make venv installs it from requirements.txt"
    if _major(chromium) != _major(driver):
        return f"chromium {_major(chromium)} and chromedriver {_major(driver)} are not a matched pair: {INSTALL}"
    return None


def cpu_seconds(process: psutil.Process) -> float:
    """CPU seconds used by ``process`` and its child processes (what has ended counts no more)."""
    try:
        parts = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for part in parts:
        try:
            times = part.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LabServer:
    """``jupyter lab`` in a process of its own, serving ``root``; :meth:`stop` ends it and its kernels."""

    def __init__(self, root: Path, home: Path):
        self.root, self.port, self.token = root, free_port(), secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        for name, value in LAB_SETTINGS.items():
            path = home / "settings" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        env = os.environ | {
            "MASKGIT_LAB_FAST": "1",
            "JUPYTER_CONFIG_DIR": str(home / "config"),  # no personal jupyter config leaks in
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        }
        self.log = home / "server.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
             f"--ServerApp.root_dir={root}", "--ServerApp.allow_root=True"],  # CI runs as root
            cwd=root, env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)

    def api(self, path: str, method: str = "GET"):
        request = urllib.request.Request(f"{self.base}/api/{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def wait_ready(self):
        """Wait until the server answers; fail when it exits, or when it used no CPU second for STALL_S s."""
        server, last, since = psutil.Process(self.process.pid), None, time.monotonic()
        while time.monotonic() - since < STALL_S:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                self.api("status")
                return
            except OSError:
                time.sleep(0.5)
            used = int(cpu_seconds(server))
            if used != last:
                last, since = used, time.monotonic()
        raise RuntimeError(f"jupyter lab did not answer on port {self.port} and made no progress for {STALL_S} s:\n"
                           f"{self.log.read_text()[-3000:]}")

    def url(self, path: str, workspace: str) -> str:
        # A workspace per page: JupyterLab restores no other notebook into it.
        return f"{self.base}/lab/workspaces/{workspace}/tree/{path}?token={self.token}"

    def kernel_cpu_seconds(self, path: str) -> float:
        """CPU seconds used by the kernel of notebook ``path`` and its child processes (0 before it starts)."""
        ids = [session["kernel"]["id"] for session in self.api("sessions") if session["path"].endswith(path)]
        total = 0.0
        for process in psutil.Process(self.process.pid).children(recursive=True):
            try:
                if any(kernel in arg for kernel in ids for arg in process.cmdline()):  # its connection file names it
                    total += cpu_seconds(process)
            except psutil.NoSuchProcess:  # ended while we looked: its time no longer matters
                pass
        return total

    def shutdown_kernels(self):
        for kernel in self.api("kernels"):
            self.api(f"kernels/{kernel['id']}", method="DELETE")

    def stop(self):
        """Kernels first (politely, through the API), then the server, then anything it left behind."""
        if self.process.poll() is None:
            try:
                self.shutdown_kernels()
            except OSError:
                pass
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for child in children:  # kernels run in sessions of their own: the server's end does not reach them
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass


PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook shown in the main area
ERROR_MIME = "application/vnd.jupyter.stderr"  # how JupyterLab marks error outputs and stderr text


class Page:
    """A browser tab of its own: waits, finds, the console and screenshots."""

    def __init__(self, driver, url: str):
        self.driver = driver
        driver.switch_to.new_window("tab")  # leaving a page with unsaved changes would raise a dialog
        self.handle = driver.current_window_handle
        driver.get(url)

    def focus(self):
        self.driver.switch_to.window(self.handle)

    def wait(self, condition, timeout: float, message: str, follow_progress: bool = False):
        """Poll ``condition()`` until it is truthy and return it; fail after ``timeout`` s, counted from the last
        change of :meth:`progress` when ``follow_progress``."""
        self.focus()
        last, since = None, time.monotonic()
        while True:
            try:
                found = condition()
            except StaleElementReferenceException:  # a redraw replaced the element between find and read
                found = None
            if found:
                return found
            now = self.progress() if follow_progress else None
            if now != last:
                last, since = now, time.monotonic()
            if time.monotonic() - since > timeout:
                waited = "nothing progressed for" if follow_progress else "waited"
                raise AssertionError(f"{message} ({waited} {timeout:g} s)")
            time.sleep(0.25)

    def progress(self):
        """What changes while the page's kernel works (None: a page without a kernel never progresses)."""
        return None

    def find(self, css: str, within=None):
        self.focus()
        return (within or self.driver).find_elements(By.CSS_SELECTOR, css)

    def read(self, css: str, attribute: str = None) -> list:
        """The text (or ``attribute``) of every element ``css`` matches, read in one script: a redraw between finding
        an element and reading it would make it stale, and a busy machine redraws slowly enough to be caught."""
        self.focus()
        return self.driver.execute_script(
            "return Array.from(document.querySelectorAll(arguments[0]), "
            "e => arguments[1] ? e.getAttribute(arguments[1]) : e.textContent.trim())", css, attribute)

    def settled(self) -> bool:
        return True

    def log_entries(self) -> int:
        return 0

    def widget_placeholders(self, within=None) -> list:
        """Widgets that never drew: 'Loading widget…', 'Error displaying widget', 'model not found'."""
        text = (within or self.find("body")[0]).text
        return [phrase for phrase in ("Loading widget", "Error displaying widget", "model not found") if phrase in text]

    def console_errors(self) -> list:
        """Browser console errors since the last call (reading the log empties it)."""
        self.focus()
        return [entry["message"] for entry in self.driver.get_log("browser") if entry["level"] == "SEVERE"]

    def screenshot(self, name: str, element=None) -> Path:
        """The window, with ``element`` scrolled to its top, as artifacts/browser/<name>.png."""
        self.focus()
        if element is not None:
            self.driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", element)
        path = ARTIFACTS / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path


class NotebookPage(Page):
    """One notebook open in JupyterLab, driven with clicks and keys, read back from the page."""

    def __init__(self, driver, server: LabServer, path: str):
        self.server, self.path = server, path
        super().__init__(driver, server.url(path, workspace=re.sub(r"\W", "-", path)))
        self.wait(lambda: self.code_cells() and self.kernel_status() == "idle", STALL_S,
                  f"JupyterLab did not show {path} with an idle kernel", follow_progress=True)

    def code_cells(self):
        return self.find(f"{PANEL} .jp-Notebook .jp-CodeCell")

    def prompts(self) -> list:
        """'[3]:' for a cell that ran, '[*]:' for one running or queued, '[ ]:' for one that did not run."""
        return self.read(f"{PANEL} .jp-CodeCell .jp-InputArea-prompt")

    def kernel_status(self) -> str:
        found = self.read(f"{PANEL} .jp-Notebook-ExecutionIndicator", "data-status")
        return found[0] if found else "none"

    def settled(self) -> bool:
        return self.kernel_status() == "idle" and "[*]:" not in self.prompts()

    def progress(self) -> tuple:
        """The prompts and the whole seconds of CPU the notebook's kernel has used: a cell that still runs moves
        the second, however slowly a busy machine runs it."""
        return tuple(self.prompts()), int(self.server.kernel_cpu_seconds(self.path))

    def click_text(self, css: str, text: str, timeout: float = 10):
        element = self.wait(lambda: next((e for e in self.find(css) if e.text == text and e.is_displayed()), None),
                            timeout, f"no {css} labelled {text!r} on the page")
        element.click()

    def run_all(self, stall: float = STALL_S):
        """Run ▸ Run All Cells, then wait until nothing is running or queued (an error stops the queue); fail
        only when the run made no progress for ``stall`` s."""
        self.click_text(".lm-MenuBar-itemLabel", "Run")
        self.click_text(".lm-Menu-itemLabel", "Run All Cells")
        self.wait(lambda: re.fullmatch(r"\[\d+\]:", (self.prompts() or ["[ ]:"])[0]) and self.settled(), stall,
                  f"{self.path} did not finish running", follow_progress=True)

    def run_cell(self, index: int, stall: float = STALL_S):
        """Select code cell ``index`` with a click on its prompt and press Shift+Enter."""
        before = self.prompts()[index]
        self.code_cells()[index].find_element(By.CSS_SELECTOR, ".jp-InputPrompt").click()
        ActionChains(self.driver).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()
        self.wait(lambda: self.prompts()[index] != before and re.fullmatch(r"\[\d+\]:", self.prompts()[index])
                  and self.settled(), stall, f"code cell {index} of {self.path} did not run", follow_progress=True)

    def widget_placeholders(self, within=None) -> list:
        return super().widget_placeholders(within or self.find(PANEL)[0])

    def error_outputs(self, within=None) -> list:
        """The text of every error output and stderr stream shown (in the notebook, or ``within`` an element)."""
        return [e.text for e in self.find(f".jp-OutputArea-output[data-mime-type='{ERROR_MIME}']",
                                          within or self.find(PANEL)[0])]

    def log_entries(self) -> int:
        """Entries in JupyterLab's log console, where a widget callback's uncaught exception goes.

        The status bar shows its item only when there is one, titled "… N log entries for …".
        """
        for item in self.find(".jp-LogConsoleStatusItem [title]"):
            found = re.search(r"(\d+) log entr", item.get_attribute("title"))
            if found:
                return int(found.group(1))
        return 0

    def save(self):
        """File ▸ Save Notebook; waits until JupyterLab no longer marks the notebook as changed."""
        self.click_text(".lm-MenuBar-itemLabel", "File")
        self.click_text(".lm-Menu-itemLabel", "Save Notebook")
        self.wait(lambda: not self.find(".lm-TabBar-tab.lm-mod-current.jp-mod-dirty"), 30, f"{self.path} was not saved")

    def close_kernel(self):
        for session in self.server.api("sessions"):
            if session["path"].endswith(self.path):
                self.server.api(f"sessions/{session['id']}", method="DELETE")


class Explorer:
    """The schedule explorer on a page, found by the labels a person reads."""

    LABELS = {"mode": "mode", "schedule": "schedule γ", "steps": "T (steps, 1–16)", "temperature": "temperature τ",
              "image": "test image", "stop_early": "stop early (sweet spot)", "sweet_spot": "stop after k steps",
              "label": "class", "guidance": "guidance w"}

    def __init__(self, page: Page):
        self.page = page
        label = f"//label[contains(@class, 'widget-label') and normalize-space() = '{self.LABELS['schedule']}']"
        page.wait(lambda: page.driver.find_elements(By.XPATH, label), REDRAW_S, "no control labelled 'schedule γ' on the page")
        self.root = page.driver.find_element(By.XPATH, f"{label}/ancestor::div[contains(@class, 'widget-vbox')][1]")
        self.output = self.root.find_element(By.CSS_SELECTOR, ".widget-output")

    def control(self, name: str):
        """The row (label + control) labelled ``LABELS[name]``; a checkbox carries its label inside, and toggle
        buttons are no inline box."""
        label = self.LABELS[name]
        row = "div[contains(@class, 'widget-inline-hbox') or contains(@class, 'widget-toggle-buttons')]"
        return self.root.find_element(By.XPATH, f".//{row}[.//label[normalize-space() = '{label}']]")

    def tooltips(self) -> dict:
        """What hovering over each label shows (its title), by label."""
        return {label.text: label.get_attribute("title")
                for label in self.root.find_elements(By.CSS_SELECTOR, "label.widget-label") if label.is_displayed()}

    def settings(self) -> dict:
        """What the controls show now."""
        def slider(name):
            return float(self.control(name).find_element(By.CSS_SELECTOR, ".noUi-handle").get_attribute("aria-valuenow"))

        def dropdown(name):
            return self.control(name).find_element(By.TAG_NAME, "select").get_property("value")

        return {
            "mode": self.control("mode").find_element(By.CSS_SELECTOR, "button.mod-active").get_attribute("textContent"),
            "schedule": dropdown("schedule"),
            "steps": int(self.control("steps").find_element(By.TAG_NAME, "input").get_property("value")),
            "temperature": slider("temperature"),
            "image": int(slider("image")),
            "stop_early": self.control("stop_early").find_element(By.TAG_NAME, "input").is_selected(),
            "sweet_spot": int(slider("sweet_spot")),
            "label": dropdown("label"),
            "guidance": slider("guidance"),
        }

    def snapshot(self) -> tuple:
        """(text, PNG bytes of each picture) of the output, read in one go: a redraw replaces its elements."""
        text, sources = self.page.driver.execute_script(
            "const out = arguments[0];"
            "return [Array.from(out.querySelectorAll('pre'), p => p.innerText).join('\\n'),"
            "        Array.from(out.querySelectorAll('img'), i => i.src)];", self.output)
        prefix = "data:image/png;base64,"
        return text, [base64.b64decode(src[len(prefix):]) for src in sources if src.startswith(prefix)]

    def text(self) -> str:
        return self.snapshot()[0]

    def pictures(self) -> list:
        """The PNG bytes of the pictures in the output: the schedule figure, then the decoding steps."""
        return self.snapshot()[1]

    def notice(self):
        return self.root.find_element(By.CSS_SELECTOR, ".widget-html .widget-html-content")

    def notice_color(self) -> str:
        bold = self.notice().find_elements(By.TAG_NAME, "b")
        return bold[0].value_of_css_property("color") if bold else "none"

    def drawn(self) -> tuple:
        """(text, pictures) once a redraw has finished, else None."""
        text, pictures = self.snapshot()
        done = "masked after each step:" in text and len(pictures) == 2 and self.page.settled()
        return (text, pictures) if done else None

    def wait_redraw(self, before: tuple, what: str, shows: str = "") -> tuple:
        """Wait until the output holds a finished drawing that differs from ``before`` (and whose text
        holds ``shows``, when a change triggers several redraws); fail at once on an error."""
        def redrawn():
            errors = self.page.error_outputs(self.root)
            if errors:
                raise AssertionError(f"the explorer shows an error after {what}: {errors}")
            if self.page.log_entries():
                raise AssertionError(f"after {what}, JupyterLab's log console got {self.page.log_entries()} entries: "
                                     "a widget callback failed or printed outside the explorer's output")
            now = self.drawn()
            return now if now and now != before and shows in now[0] else None

        return self.page.wait(redrawn, STALL_S, f"the explorer's output did not redraw after {what}", follow_progress=True)

    # The controls, used as a person uses them.
    def choose_mode(self, text: str):
        """Click the mode button that says ``text``."""
        next(b for b in self.control("mode").find_elements(By.TAG_NAME, "button") if b.text == text).click()

    def choose(self, name: str, option: str):
        """Pick ``option`` from the drop-down ``name`` ("schedule" or "label")."""
        Select(self.control(name).find_element(By.TAG_NAME, "select")).select_by_visible_text(option)

    def choose_schedule(self, name: str):
        self.choose("schedule", name)

    def type_steps(self, text: str):
        box = self.control("steps").find_element(By.TAG_NAME, "input")
        box.click()
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(text, Keys.ENTER)

    def click_checkbox(self, name: str):
        self.control(name).find_element(By.TAG_NAME, "input").click()

    def press_on_slider(self, name: str, arrow: str, times: int = 1):
        """Press the ← or → key (``arrow`` "left" or "right") ``times`` times on the slider's handle."""
        handle = self.control(name).find_element(By.CSS_SELECTOR, ".noUi-handle")
        key = {"left": Keys.ARROW_LEFT, "right": Keys.ARROW_RIGHT}[arrow]
        for _ in range(times):
            handle.send_keys(key)


def expected_counts(schedule: str, steps: int, image: Optional[int]) -> tuple:
    """(n₀, tokens masked after each step) for test image ``image`` (None: generation, every token unknown), from
    the package, not from the page."""
    tokenizer = shipped_pair()[0]
    if image is None:
        n0 = torch.tensor([tokenizer.cfg.num_tokens])  # (1,)
    else:
        known = load_test_batch(DEFAULT_ROOT, limit=image + 1)["known"][image: image + 1]  # (1, S, S)
        n0 = token_mask_from_pixels(known, tokenizer.cfg.downsample).sum(1)  # (1,)
    return int(n0), [int(masked_after_step(gamma(schedule), t, steps, n0)[0]) for t in range(steps)]



@functools.cache
def shipped_pair():
    """The shipped (tokenizer, transformer), loaded once per test session."""
    return load_shipped()


def package_tokens(settings: dict, temperature: float):
    """The codes the package decodes, step by step, for the explorer's settings at ``temperature``."""
    tokenizer, model = shipped_pair()
    test = load_test_batch(DEFAULT_ROOT, limit=settings["image"] + 1)
    sweet_spot = settings["sweet_spot"] if settings["stop_early"] else None
    return explore(settings["schedule"], settings["steps"], temperature, sweet_spot, settings["image"],
                   tokenizer=tokenizer, model=model, test=test, draw=False)["tokens"]

def assert_shows_counts(explorer: Explorer):
    """The output's counts are the package's for the settings the controls show (generation: n₀ = N, all tokens)."""
    settings = explorer.settings()
    lines = explorer.text().splitlines()
    generating = settings["mode"] == "generate a class"
    n0, counts = expected_counts(settings["schedule"], settings["steps"], None if generating else settings["image"])
    if generating:
        headline = f"class {settings['label']} ("
        assert any(line.startswith(headline) and f", w = {settings['guidance']:.1f}" in line for line in lines), lines
    else:
        headline = f"test image {settings['image']} ("
    assert any(headline in line and f"n₀ = {n0} unknown tokens" in line for line in lines), lines
    assert "masked after each step: " + " ".join(map(str, counts)) in lines, (settings, lines)
