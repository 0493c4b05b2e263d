#!/usr/bin/env python3
"""The web view in a real browser: headless Chromium driven by Debian's
chromium-driver over the W3C WebDriver protocol (plain HTTP, standard
library only).

`bayeswatch demo` runs to its end and keeps serving its web view; the
browser loads the on-call, series and SLO pages and must render the
demo's injected incidents (each detected incident's region appears among
the alert episodes or the threats; the incident series' chart draws its
points), with no console errors. The console capture is itself checked
first: an error logged on a blank page must come back. Screenshots of the
three pages are kept under BUILD_DIR/artefacts/.

usage: web_test.py BUILD_DIR
"""

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

TIMEOUT = 240


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Driver:
    """Just enough W3C WebDriver for this test."""

    def __init__(self, build):
        exe = shutil.which("chromedriver") or "/usr/bin/chromedriver"
        self.port = free_port()
        self.log = open(os.path.join(build, "artefacts", "chromedriver.log"),
                        "w")
        self.proc = subprocess.Popen([exe, f"--port={self.port}"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.port}"
        end = time.time() + 30
        while time.time() < end:
            try:
                if self.call("GET", "/status")["ready"]:
                    break
            except (OSError, ValueError):
                time.sleep(0.2)
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": shutil.which("chromium") or "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1500"]},
            "goog:loggingPrefs": {"browser": "ALL"}}}}
        self.sid = self.call("POST", "/session", caps)["sessionId"]

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data,
                                     method=method,
                                     headers={"Content-Type":
                                              "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read())["value"]
        except urllib.error.HTTPError as e:
            raise Failure(f"webdriver {method} {path}: {e.read()[:500]}")

    def s(self, method, path, body=None):
        return self.call(method, f"/session/{self.sid}{path}", body)

    def go(self, url):
        self.s("POST", "/url", {"url": url})

    def js(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script,
                                                "args": list(args)})

    def wait(self, script, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            v = self.js(script)
            if v:
                return v
            time.sleep(0.2)
        raise Failure(f"timed out waiting for: {script}")

    def screenshot(self, path):
        with open(path, "wb") as fh:
            fh.write(base64.b64decode(self.s("GET", "/screenshot")))

    def console(self):
        try:
            return self.s("POST", "/se/log", {"type": "browser"})
        except Failure:
            return self.s("POST", "/log", {"type": "browser"})

    def close(self):
        try:
            self.s("DELETE", "")
        except (Failure, OSError):
            pass
        self.proc.terminate()
        self.proc.wait(timeout=30)


def run_demo(build, art):
    out = open(os.path.join(art, "demo.out"), "w+")
    proc = subprocess.Popen([os.path.join(build, "bayeswatch"), "demo",
                             "--speed", "0", "--plain", "--linger", "300"],
                            stdout=out, stderr=subprocess.STDOUT)
    end = time.time() + TIMEOUT
    while time.time() < end:
        out.seek(0)
        text = out.read()
        m = re.search(r"the web view stays up at (http://\S+/)", text)
        if m:
            return proc, m.group(1), text
        check(proc.poll() is None, "demo exited:\n" + text[-2000:])
        time.sleep(0.5)
    raise Failure("the demo did not finish")


def main():
    build = os.path.abspath(sys.argv[1])
    art = os.path.join(build, "artefacts")
    os.makedirs(art, exist_ok=True)
    demo, url, summary = run_demo(build, art)
    incidents = [re.search(r"\b([a-z]{2}-[a-z]+)\b", line).group(1)
                 for line in re.findall(r"^  detected  (.*)$", summary,
                                        re.M)]
    check(incidents, "the demo reported no detected incident:\n" + summary)
    drv = None
    try:
        drv = Driver(build)
        # the console capture works: an error on a blank page comes back
        drv.go("about:blank")
        drv.js("console.error('bw-console-probe');")
        probe = drv.console()
        check(any("bw-console-probe" in e["message"] for e in probe),
              f"console capture: {probe}")

        drv.go(url + "#oncall")
        drv.wait("return document.body.dataset.loaded === 'oncall';")
        rows = drv.js("return [...document.querySelectorAll("
                      "'#episodes tbody tr, #threats tbody tr')]"
                      ".map(r => r.textContent);")
        for region in incidents:
            check(any(region in r for r in rows),
                  f"incident region {region} not among episodes/threats: "
                  f"{rows}")
        cells = drv.js("return document.querySelectorAll('td.cell').length;")
        check(cells >= 4, f"{cells} region x service cells")
        drv.screenshot(os.path.join(art, "web-oncall.png"))
        key = drv.js("return document.querySelector('#episodes tbody a')"
                     ".textContent;")

        drv.go(url + "#series?key=" + urllib.request.quote(key, safe=""))
        drv.wait("return document.body.dataset.loaded === 'series';")
        info = drv.wait("const t = document.getElementById('series-info')"
                        ".textContent; return /\\d+ points/.test(t) && t;")
        inked = drv.js(
            "const c = document.getElementById('chart-value');"
            "const d = c.getContext('2d').getImageData(0, 0, c.width,"
            " c.height).data; let n = 0;"
            "for (let i = 3; i < d.length; i += 4) n += d[i] > 0;"
            "return n;")
        check(inked > 5000, f"the value chart drew {inked} pixels")
        drv.screenshot(os.path.join(art, "web-series.png"))

        drv.go(url + "#exec")
        drv.wait("return document.body.dataset.loaded === 'exec';")
        slos = drv.js("return document.querySelectorAll("
                      "'#slos tbody a').length;")
        check(slos >= 1, f"{slos} SLO rows")
        drv.screenshot(os.path.join(art, "web-exec.png"))

        errors = [e for e in drv.console() if e["level"] == "SEVERE"]
        check(not errors, f"console errors: {errors}")
        print(f"web view: incidents in {sorted(set(incidents))} rendered, "
              f"series {key} ({info}), {slos} SLO rows, no console "
              f"errors; screenshots in {art}")
    except Failure as e:
        print(f"FAIL web_view: {e}", file=sys.stderr)
        return 1
    finally:
        if drv is not None:
            drv.close()
        demo.terminate()
        demo.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
