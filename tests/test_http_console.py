"""The web console in a real headless Chromium (Debian's chromium + chromium-driver,
driven by selenium): load it, browse the tree, edit data with a version check
(a stale version is refused and said so), watch a subtree change live, and
see the server's mode and figures. Screenshots of each step go to the test's
artifacts directory (printed; under pytest's tmp dir)."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
from kazoo.client import KazooClient

from zabpy.testing import ZabpyServer, free_ports, wait_for
from zabpy.testing.ensemble import ZabpyEnsemble
from httpclient import with_http_api

selenium = pytest.importorskip("selenium")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver") or "/usr/lib/chromium/chromedriver"

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(CHROMIUM is None or not os.path.exists(DRIVER),
                       reason="Debian's chromium and chromium-driver are not installed"),
]


@pytest.fixture(scope="module")
def browser():
    profile = tempfile.mkdtemp(prefix="zabpy-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", "--window-size=1400,1000"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()   # ends chromedriver and its chromium
        shutil.rmtree(profile, ignore_errors=True)


class Shots:
    def __init__(self, driver, directory):
        self.driver, self.dir, self.n = driver, directory, 0
        os.makedirs(directory, exist_ok=True)
        print(f"\nconsole screenshots: {directory}")

    def take(self, name: str) -> None:
        self.n += 1
        path = os.path.join(self.dir, f"{self.n:02d}-{name}.png")
        assert self.driver.save_screenshot(path), path
        assert os.path.getsize(path) > 1000


def _text(driver, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def _wait(driver, predicate, what: str):
    return wait_for(lambda: predicate(driver), 20, interval=0.05, what=what)


def _link(driver, path: str):
    found = driver.find_elements(By.CSS_SELECTOR, f'a.node-link[data-path="{path}"]')
    return found[0] if found else None


def test_console_browse_edit_and_watch_live(browser, tmp_path):
    port, = free_ports(1)
    shots = Shots(browser, str(tmp_path / "console-artifacts"))
    with ZabpyServer(admin_server_port=port, admin_server_address="127.0.0.1",
                     http_enabled=True) as zk:
        kz = KazooClient(hosts=zk.hosts)
        kz.start()
        try:
            kz.create("/web/item", b"one", makepath=True)
            wait_for(lambda: _serving(port), 20, what="the HTTP API")
            browser.get(f"http://127.0.0.1:{port}/console/")
            _wait(browser, lambda d: d.find_element(By.TAG_NAME, "body")
                  .get_attribute("data-ready") == "1", "the console to load")
            _wait(browser, lambda d: "standalone" in _text(d, "server-line"), "server mode")
            assert _text(browser, "fig-znode_count") != ""
            shots.take("loaded")

            # navigate: / -> web -> item
            _wait(browser, lambda d: _link(d, "/web"), "/web in the tree").click()
            _wait(browser, lambda d: _link(d, "/web/item"), "/web/item in the tree").click()
            _wait(browser, lambda d: d.find_element(By.ID, "node-data")
                  .get_attribute("value") == "one", "the data of /web/item")
            assert _text(browser, "node-path") == "/web/item"
            assert _text(browser, "stat-version") == "0"
            assert "world" in _text(browser, "node-acl")
            shots.take("item")

            # edit with the version loaded: saved
            area = browser.find_element(By.ID, "node-data")
            area.clear()
            area.send_keys("two")
            browser.find_element(By.ID, "save-data").click()
            _wait(browser, lambda d: "saved" in _text(d, "node-message"), "the save")
            assert kz.get("/web/item")[0] == b"two"
            assert _text(browser, "stat-version") == "1"
            shots.take("saved")

            # someone else writes: the console's version is stale and it says so
            kz.set("/web/item", b"theirs")
            area.clear()
            area.send_keys("mine")
            browser.find_element(By.ID, "save-data").click()
            _wait(browser, lambda d: "stale" in _text(d, "node-message"), "the version check")
            assert kz.get("/web/item")[0] == b"theirs"
            shots.take("stale-version")

            # watch /web live
            _link(browser, "/web").click()
            _wait(browser, lambda d: _text(d, "node-path") == "/web", "select /web")
            browser.find_element(By.ID, "watch-toggle").click()
            _wait(browser, lambda d: "watching /web" in _text(d, "watch-state"), "the stream")
            kz.create("/web/new", b"")
            kz.set("/web/item", b"again")
            _wait(browser, lambda d: "created /web/new" in _text(d, "watch-log"),
                  "the live create")
            _wait(browser, lambda d: "changed /web/item" in _text(d, "watch-log"),
                  "the live change")
            _wait(browser, lambda d: _link(d, "/web/new"), "the tree to show /web/new")
            shots.take("live-watch")
        finally:
            kz.stop()
            kz.close()
    assert shots.n == 5


def _serving(port: int) -> bool:
    import http.client
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        c.request("GET", "/console/")
        ok = c.getresponse().status == 200
        c.close()
        return ok
    except OSError:
        return False


def test_console_shows_the_ensembles_members_and_roles(browser, tmp_path):
    ens = ZabpyEnsemble(3)
    ports = with_http_api(ens)
    shots = Shots(browser, str(tmp_path / "console-artifacts"))
    with ens:
        leader = ens.leader()
        follower = next(s for s in ens.sids if s != leader)
        port = ports[follower]
        wait_for(lambda: _serving(port), 20, what="the HTTP API")
        browser.get(f"http://127.0.0.1:{port}/console/")
        _wait(browser, lambda d: "mode follower" in _text(d, "server-line"), "the mode")
        rows = _wait(browser, lambda d: [r.text for r in d.find_elements(
            By.CSS_SELECTOR, "#members tbody tr")] if len(d.find_elements(
                By.CSS_SELECTOR, "#members tbody tr")) == 3 else None, "three members")
        assert f"{leader} 127.0.0.1 leader" in rows
        assert f"{follower} (this) 127.0.0.1 follower" in rows
        assert _text(browser, "fig-server_state") == "follower"
        shots.take("ensemble")
