"""The dashboard used as a person uses it: Debian's Chromium, driven by selenium through Debian's
chromium-driver, opens each page of a served flow while requests, orders and files arrive, and
sees them appear without reloading; each page's screenshot is kept under the test's folder and
checked not blank. Every host name but loopback is unresolvable, so a page that needed a CDN
would fail.

``make dashboard-screenshot`` runs this test with ``BFCTL_DASHBOARD_SCREENSHOT`` naming where the
Requests page (a trace open) is copied: docs/dashboard.png, shown by the README.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait
from support import FLOWS, Server, serving, traced_get, write

#: A bound on failure only: each wait returns as soon as its condition holds.
WAIT = 30.0
#: Fewer colours than this in a screenshot: a blank or unstyled page.
MIN_COLOURS = 24
SCREENSHOT_VARIABLE = "BFCTL_DASHBOARD_SCREENSHOT"
SHOP = (FLOWS / "shop.py").read_text()

_COLOURS = """
const [data, done] = arguments;
const image = new Image();
image.onload = () => {
  const canvas = document.createElement("canvas");
  canvas.width = image.width;
  canvas.height = image.height;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
  const seen = new Set();
  for (let i = 0; i < pixels.length; i += 4) seen.add((pixels[i] << 16) | (pixels[i + 1] << 8) | pixels[i + 2]);
  done(seen.size);
};
image.onerror = () => done(0);
image.src = "data:image/png;base64," + data;
"""


def _browser(profile: Path) -> WebDriver:
    """Headless Chromium; missing, the test fails (a skip would hide that nobody looked)."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.fail("the dashboard test drives Chromium: apt-get install -y chromium chromium-driver (.ci/run does)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,900",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))


class Person:
    """Someone at the dashboard: what they see, click and type, and the screenshots they keep."""

    def __init__(self, browser: WebDriver, server: Server, shots: Path) -> None:
        self.browser = browser
        self.server = server
        self.shots = shots
        # a live update may replace an element between finding and reading it: look again
        stale = [StaleElementReferenceException]
        self._wait = WebDriverWait(browser, WAIT, poll_frequency=0.05, ignored_exceptions=stale)

    def until(self, condition: Callable[[], Any], what: str) -> Any:
        try:
            return self._wait.until(lambda _: condition())
        except Exception as e:
            logs = self.browser.get_log("browser")
            raise AssertionError(f"not seen within {WAIT}s: {what}\nbrowser log: {logs}\n{self.server.output}") from e

    def texts(self, selector: str) -> list[str]:
        """The rendered text of every match, read in one step: the live pages replace their rows
        as news arrives, so an element found in one call may be gone by the next."""
        found: list[str] = self.browser.execute_script(
            "return [...document.querySelectorAll(arguments[0])].map((e) => e.innerText)", selector
        )
        return found

    def click(self, selector: str, by: str = By.CSS_SELECTOR) -> None:
        """Clicks the first match, found again if a live update replaced it meanwhile."""
        self.until(lambda: self.browser.find_element(by, selector).click() or True, f"clicking {selector}")

    def click_row(self, name: str) -> None:
        """The trace link of the newest request named ``name`` on the Requests page."""
        self.click(f'//tbody[@id="requests"]/tr[td[3]="{name}"]//a', By.XPATH)

    def page(self, name: str) -> None:
        self.click(f'nav a[data-page="{name}"]')
        self.until(lambda: self.browser.find_element(By.ID, f"page-{name}").is_displayed(), f"the {name} page")

    def screenshot(self, name: str) -> Path:
        """The window as it is, kept as ``name``.png; fails if it is (nearly) one colour."""
        data = self.browser.get_screenshot_as_base64()
        path = self.shots / f"{name}.png"
        path.write_bytes(self.browser.get_screenshot_as_png())
        colours = self.browser.execute_async_script(_COLOURS, data)
        assert colours >= MIN_COLOURS, f"{path} looks blank: {colours} colours"
        return path


@pytest.fixture
def person(tmp_path: Path, bfctl_env: dict[str, str]) -> Iterator[Person]:
    project = tmp_path / "shop"
    write(project / "main.py", SHOP)
    with serving(["main.py", "--apply", "--port", "0"], project, bfctl_env) as server:
        server.wait_for(lambda line: line.startswith("Dashboard on "))
        browser = _browser(tmp_path / "chromium-profile")
        try:
            shots = tmp_path / "screenshots"
            shots.mkdir()
            browser.get(server.url + "/_bf/")
            yield Person(browser, server, shots)
        finally:
            browser.quit()
            assert server.stop() == 0, server.output


def post(server: Server, path: str, body: dict[str, Any]) -> None:
    assert server.call("POST", path, json.dumps(body).encode())[0] == 200


def test_the_flow_page_pictures_every_processor_dependency_and_resource(person: Person) -> None:
    nodes = person.until(
        lambda: person.browser.find_elements(By.CSS_SELECTOR, "#flow-picture .node") or None, "the flow's picture"
    )
    seen = {(n.get_attribute("data-kind"), n.text.split("\n")[0]) for n in nodes}
    assert seen == {
        ("service", "store"),
        ("endpoint", "endpoint get_item"),
        ("endpoint", "endpoint boom"),
        ("collector", "collector take_order"),
        ("consumer", "consumer read_file"),
        ("dependency", "dependency Pricing"),
        ("dependency", "dependency Catalog"),
        ("dispatcher", "dispatcher stock"),
        ("resource", "DuckDBTable"),
        ("resource", "LocalFileChangeStream"),
        ("resource", "File"),
    }
    assert len(person.browser.find_elements(By.CSS_SELECTOR, "#flow-picture path.edge")) == 8
    assert person.browser.find_element(By.ID, "flow-name").text == "shop"
    person.click('#flow-picture .node[data-kind="collector"]')
    person.until(lambda: person.texts("#flow-details h3") == ["collector: take_order"], "the collector's details")
    person.click('#flow-details a[href="#requests"]')
    person.until(lambda: person.browser.find_element(By.ID, "filter").get_attribute("value") == "/orders", "a filter")
    person.browser.back()
    person.until(lambda: person.texts("#flow-details h3") == ["collector: take_order"], "the details again")
    person.click('#flow-details a[href^="#flow/r"]')
    details = person.until(lambda: "Outputs" in person.texts("#flow-details h4") and person.texts("#flow-details"), "")
    assert "duckdb:shop.duckdb:orders" in details[0] and "engine" in details[0]
    person.screenshot("flow")


def test_requests_appear_live_and_open_as_waterfalls(person: Person) -> None:
    server = person.server
    person.page("requests")
    item = traced_get(server, "/items/4")
    post(server, "/orders", {"item_id": 4, "quantity": 1})
    assert server.call("GET", "/boom")[0] == 500

    def names() -> list[str]:
        return [row.split("\n")[0] for row in person.texts("#requests td:nth-child(3)")]

    person.until(lambda: {"GET /items/{item_id}", "collector POST /orders", "GET /boom"} <= set(names()), "3 rows")
    assert person.texts("#requests tr.error td:nth-child(3)") == ["GET /boom"]
    person.browser.find_element(By.ID, "filter").send_keys("boom")
    person.until(lambda: names() == ["GET /boom"], "only /boom once filtered")
    person.browser.find_element(By.ID, "filter").clear()
    person.browser.find_element(By.ID, "errors-only").click()
    person.until(lambda: names() == ["GET /boom"], "only the error")
    person.browser.find_element(By.ID, "errors-only").click()

    person.click(f'#requests a[href="#requests/{item}"]')
    spans = person.until(lambda: person.texts("#trace .span .name") or None, "the request's waterfall")
    assert spans[0] == "GET /items/{item_id}"
    assert {"dependency Pricing", "dispatcher stock", "handler get_item"} <= set(spans)
    event = person.browser.find_element(By.CSS_SELECTOR, '#trace .span[data-name="handler get_item"] .event').text
    assert "looked up" in event and "item=4" in event  # the flow's own span event
    shot = person.screenshot("requests")

    person.click_row("collector POST /orders")
    person.until(lambda: "sink write" in person.texts("#trace .span .name"), "the order's sink write")
    write_span = person.browser.find_element(By.CSS_SELECTOR, '#trace .span[data-name="sink write"]').text
    assert "bf.rows=1" in write_span and "DuckDBTable" in write_span
    person.click_row("GET /boom")
    person.until(lambda: person.browser.find_elements(By.CSS_SELECTOR, "#trace .span.error"), "the error's span")
    assert "the shop is on fire" in person.browser.find_element(By.ID, "trace").text
    if target := os.environ.get(SCREENSHOT_VARIABLE):
        shutil.copyfile(shot, target)


def test_the_api_page_calls_a_route_and_shows_the_trace_of_that_call(person: Person) -> None:
    person.page("api")
    operation = '#operations details[data-operation="GET /items/{item_id}"]'
    person.until(lambda: person.browser.find_elements(By.CSS_SELECTOR, operation), "the route")
    assert set(person.texts("#operations details summary code")) == {"/items/{item_id}", "/boom", "/orders"}
    person.click(operation + " summary")
    person.browser.find_element(By.CSS_SELECTOR, operation + ' input[data-param="item_id"]').send_keys("7")
    person.click(operation + " button")
    person.until(lambda: person.texts(operation + " .status") == ["200 OK"], "the answer")
    assert json.loads(person.browser.find_element(By.CSS_SELECTOR, operation + " .response").text) == {
        "id": 7,
        "price": 1.0,
        "stock": 70,
    }
    spans = person.until(lambda: person.texts(operation + " .call-trace .span .name") or None, "the call's trace")
    assert {"GET /items/{item_id}", "dependency Pricing", "dispatcher stock", "handler get_item"} <= set(spans)

    orders = '#operations details[data-operation="POST /orders"]'
    person.click(orders + " summary")
    body = person.browser.find_element(By.CSS_SELECTOR, orders + " textarea")
    assert json.loads(body.get_attribute("value") or "") == {"item_id": 0, "quantity": 0}  # from the schema
    person.click(orders + " button")
    person.until(lambda: "sink write" in person.texts(orders + " .call-trace .span .name"), "the order's sink write")
    person.screenshot("api")


def test_the_data_page_follows_sinks_and_consumers(person: Person) -> None:
    server = person.server
    person.page("data")
    orders = '#sinks .card[data-sink="duckdb:shop.duckdb:orders"]'
    person.until(lambda: person.texts(orders + " .rows-written") == ["0"], "the orders table's card")
    post(server, "/orders", {"item_id": 8, "quantity": 2})
    post(server, "/orders", {"item_id": 9, "quantity": 3})
    person.until(lambda: person.texts(orders + " .rows-written") == ["2"], "two rows written")
    rows = person.until(lambda: person.texts(orders + " .rows-table tbody tr") or None, "the latest rows")
    assert sorted(rows) == ["8\t2", "9\t3"]
    assert person.browser.find_elements(By.CSS_SELECTOR, orders + " .spark polyline")

    write(server_project(server) / "incoming" / "readings.json", json.dumps([{"sensor": "a", "value": 1.5}]))
    person.until(lambda: person.texts("#consumers td:nth-child(3)") == ["1"], "the file handled")
    assert person.texts("#consumers td:first-child") == ["read_file"]
    csv = '#sinks .card[data-sink="file:rows/readings.csv"] .rows-written'
    person.until(lambda: person.texts(csv) == ["1"], "the reading written")
    person.screenshot("data")


def server_project(server: Server) -> Path:
    """The served project's folder (the first output line after the plan names its files)."""
    with urllib.request.urlopen(server.url + "/_bf/api/resources", timeout=10) as response:
        resources = json.loads(response.read())["resources"]
    [source] = [r for r in resources if r["type"] == "LocalFileChangeStream"]
    return Path(source["outputs"]["path"]).parent


def test_resources_and_log_lines_and_both_colour_schemes(person: Person) -> None:
    server = person.server
    traced_get(server, "/items/5")
    person.page("resources")
    ids = person.until(lambda: person.texts("#resources td:first-child") or None, "the resources")
    source = f"file-changes:{server_project(server)}/incoming"
    assert set(ids) == {"duckdb:shop.duckdb:orders", "file:rows/readings.csv", source}
    person.until(lambda: any("item 5 looked up" in line for line in person.texts("#logs div")), "a log line")
    traced_get(server, "/items/11")
    person.until(lambda: any("shop: item 11 looked up" in line for line in person.texts("#logs div")), "a new line")
    person.screenshot("resources")

    backgrounds = {}
    for scheme in ("dark", "light"):
        person.browser.execute_cdp_cmd(
            "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]}
        )
        backgrounds[scheme] = person.browser.execute_script("return getComputedStyle(document.body).backgroundColor")
        person.page("flow")
        person.until(lambda: person.browser.find_elements(By.CSS_SELECTOR, "#flow-picture .node"), "the picture")
        person.screenshot(f"flow-{scheme}")
    assert backgrounds == {"dark": "rgb(17, 20, 24)", "light": "rgb(255, 255, 255)"}

    timing = person.browser.execute_script(
        "const n = performance.getEntriesByType('navigation')[0];"
        "const r = performance.getEntriesByType('resource');"
        "return {load: n.loadEventEnd, bytes: n.transferSize + r.reduce((s, e) => s + e.transferSize, 0),"
        " cdn: r.filter((e) => !e.name.startsWith(location.origin)).map((e) => e.name)}"
    )
    assert timing["cdn"] == []  # everything the page loaded came from the flow's server
    print(f"dashboard page: loaded in {timing['load']:.0f} ms, {timing['bytes']} bytes")  # noqa: T201 - the figure
