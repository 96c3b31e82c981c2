"""A page opened in headless Chromium through the DevTools protocol over a pipe (stdlib only):
whether it loaded, what its images and tables are, and every error its console showed.

Chromium is Debian's `chromium` package (`.ci/run` installs it); `find_chromium()` is None where
it is absent, and the tests that need it skip.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time

NAMES = ("chromium", "chromium-browser", "google-chrome")
CHECK = """JSON.stringify({
  title: document.title,
  images: Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth})),
  tables: document.querySelectorAll('table').length,
  headings: Array.from(document.querySelectorAll('h2')).map(h => h.textContent),
  text: document.body.innerText.length
})"""


def find_chromium() -> str | None:
    return next((path for path in map(shutil.which, NAMES) if path), None)


class Browser:
    """Chromium with --remote-debugging-pipe: commands on its fd 3, answers and events on its fd 4."""

    def __init__(self, binary: str):
        self.profile = tempfile.mkdtemp(prefix="chromium-")
        ours_in, theirs_out = os.pipe()  # it writes, we read
        theirs_in, ours_out = os.pipe()  # we write, it reads

        def descriptors():  # in the child, before exec: the pipe ends where Chromium looks for them
            os.dup2(theirs_in, 3)
            os.dup2(theirs_out, 4)
        self.process = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--remote-debugging-pipe", f"--user-data-dir={self.profile}", "about:blank"],
            preexec_fn=descriptors, pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(theirs_in)
        os.close(theirs_out)
        self.reader, self.writer = os.fdopen(ours_in, "rb"), os.fdopen(ours_out, "wb")
        self.buffer, self.events, self.next_id = b"", [], 0

    def call(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.writer.write(json.dumps(message).encode() + b"\0")
        self.writer.flush()
        while True:
            answer = self._message(timeout)
            if answer.get("id") == self.next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self.events.append(answer)

    def wait_for(self, event: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            found = next((e for e in self.events if e.get("method") == event), None)
            if found:
                return found
            self.events.append(self._message(max(0.1, deadline - time.monotonic())))

    def _message(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\0" not in self.buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self.reader.fileno(), 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed its pipe")
            self.buffer += chunk
        message, _, self.buffer = self.buffer.partition(b"\0")
        return json.loads(message)

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


def open_page(binary: str, url: str, settle: float = 1.0) -> tuple[dict, list[str]]:
    """Load `url` and return what the page shows (CHECK) and the errors of its console: messages
    logged as errors, uncaught exceptions, failed loads."""
    browser = Browser(binary)
    try:
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            browser.call(f"{domain}.enable", session=session)
        browser.events.clear()
        browser.call("Page.navigate", {"url": url}, session=session)
        browser.wait_for("Page.loadEventFired")
        time.sleep(settle)  # late console messages
        shown = json.loads(browser.call("Runtime.evaluate", {"expression": CHECK, "returnByValue": True},
                                        session=session)["result"]["value"])
        errors = []
        for event in browser.events:
            params = event.get("params", {})
            if event.get("method") == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append(" ".join(str(arg.get("value", arg.get("description", ""))) for arg in params["args"]))
            elif event.get("method") == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                errors.append((details.get("exception") or {}).get("description") or details.get("text", "exception"))
            elif event.get("method") == "Log.entryAdded" and params["entry"].get("level") == "error":
                errors.append(params["entry"].get("text", ""))
        return shown, errors
    finally:
        browser.close()
