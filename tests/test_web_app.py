"""The web app in a real browser: ``scorehoi app`` in a subprocess, driven by Debian's headless Chromium.

The server runs under ``tests/serve_offline.py``, which refuses and records every connection that would leave the
machine; the browser's own requests are read from its DevTools network log. Skipped where Chromium or
chromedriver is missing (``.ci/run`` installs them, so CI always runs it). The screenshot of the first session is
kept in the test's folder; with ``SCOREHOI_WRITE_SCREENSHOT=1`` it also replaces ``docs/web_app.png``.
"""
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(
    not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
    reason="needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver): "
           "apt-get install -y chromium chromium-driver",
)
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install -e '.[dev]')")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

BROWSER_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1000")
# Schemes a page loads without the network: the browser's own pages, inline data and in-page objects.
LOCAL_SCHEMES = ("chrome", "chrome-extension", "data", "blob", "about", "devtools")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``scorehoi app`` on a free port, with outside connections refused and logged; yields its URL and log."""
    folder = tmp_path_factory.mktemp("server")
    log, output = folder / "outside_connections.log", folder / "server.log"
    log.touch()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE",
           "GRADIO_TEMP_DIR": str(folder / "gradio"), "TMPDIR": str(folder)}
    with open(output, "w") as stream:
        process = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "serve_offline.py"), str(log), "app", "--port", str(port),
             "--device", "cpu"], cwd=folder, env=env, stdout=stream, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"`scorehoi app` did not start:\n{output.read_text()[-3000:]}")
            time.sleep(0.5)
    yield {"url": url, "log": log, "output": output, "folder": folder}
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def browsers(tmp_path_factory):
    """A factory of headless Chromium sessions, each with a fresh profile and the DevTools network log on."""
    drivers = []

    def start():
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in BROWSER_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('profile')}")
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
        driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
        driver.requested_urls = []
        drivers.append(driver)
        return driver

    yield start
    for driver in drivers:
        driver.quit()


def requested_urls(driver) -> list[str]:
    """Every URL the page has requested so far (DevTools ``Network.requestWillBeSent`` and WebSocket events)."""
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            driver.requested_urls.append(message["params"]["request"]["url"])
        elif message["method"] == "Network.webSocketCreated":
            driver.requested_urls.append(message["params"]["url"])
    return driver.requested_urls


def assert_nothing_left_the_machine(server, *drivers) -> None:
    for driver in drivers:
        urls = requested_urls(driver)
        assert urls, "the DevTools network log recorded no request at all"
        outside = [url for url in urls
                   if urlparse(url).scheme not in LOCAL_SCHEMES and urlparse(url).hostname != "127.0.0.1"]
        assert not outside, f"the browser made requests off this machine: {outside[:10]}"
    assert server["log"].read_text() == "", f"the server tried to reach outside: {server['log'].read_text()}"


def wait(driver, condition, timeout=60, message=""):
    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition, message)


def open_page(driver, server):
    driver.get(server["url"])
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "button.gallery-item"), message="no examples shown")


def click_example(driver, name: str):
    example = next(e for e in driver.find_elements(By.CSS_SELECTOR, "button.gallery-item") if e.text == name)
    example.click()
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#preview img"), message="no preview of the example")


def set_cycles(driver, cycles: int):
    """Open "Advanced", type the number of refinement cycles, close it again."""
    toggle = driver.find_element(By.CSS_SELECTOR, "#advanced button")
    toggle.click()
    field = wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, "#cycles input[type=number]"))
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(str(cycles), Keys.TAB)
    toggle.click()


def box_numbers(driver) -> list[float]:
    return [float(driver.find_element(By.CSS_SELECTOR, f"#box-{key} input").get_attribute("value") or 0)
            for key in "xywh"]


def status_text(driver) -> str:
    return driver.find_element(By.ID, "status").text


def toast_text(driver, timeout=30) -> str:
    """The text of the error message Gradio shows in the page."""
    def shown(d):
        return " ".join(element.get_attribute("textContent").strip()
                        for element in d.find_elements(By.CSS_SELECTOR, "[data-testid='toast-text']"))

    text = wait(driver, shown, timeout, "no message shown")
    for close in driver.find_elements(By.CSS_SELECTOR, "[data-testid='toast-close']"):
        close.click()
    wait(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, "[data-testid='toast-text']"), 10)
    return text


def glb_requested(driver) -> bool:
    return any(urlparse(url).path.endswith(".glb") for url in requested_urls(driver))


def test_two_sessions_run_examples_and_get_their_own_results(server, browsers, tmp_path):
    """The first session runs a photo with no masks (the person detected, the object cut from its box), the
    second a synthetic picture with its masks, both at once."""
    first, second = browsers(), browsers()
    for driver, example, cycles in ((first, "cameraman", 1), (second, "synthetic_bag", 6)):
        open_page(driver, server)
        click_example(driver, example)
        set_cycles(driver, cycles)
    wait(first, lambda d: "Person: found (mask and keypoints shown" in status_text(d), 60, "no person detected")
    assert "Object: the box" in status_text(first)
    assert box_numbers(first) == [228, 200, 190, 312]  # the example's object box
    # Both press Run at once: the queue runs them one after the other, each showing the pipeline's progress.
    first.find_element(By.ID, "run").click()
    second.find_element(By.ID, "run").click()
    progress = {id(first): set(), id(second): set()}
    deadline = time.monotonic() + 120
    while not all(driver.find_elements(By.CSS_SELECTOR, "#overlay img") for driver in (first, second)):
        assert time.monotonic() < deadline, "no overlay after two minutes"
        for driver in (first, second):
            text = driver.execute_script("return document.body.textContent")
            progress[id(driver)] |= set(re.findall(r"refinement cycle \d+ of \d+", text))
        time.sleep(0.2)
    # The bar moves cycle by cycle (polling may miss some of the six).
    assert len({text for text in progress[id(second)] if text.endswith("of 6")}) >= 2, progress
    for driver in (first, second):
        wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#figure img"), 30, "no before/after figure")
        # The 3D viewer draws on a canvas once it has fetched the .glb scene.
        wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#scene canvas") and glb_requested(d), 60,
             "the 3D viewer loaded no .glb")
        downloads = wait(driver, lambda d: d.find_element(By.ID, "downloads").text, 30)
        assert all(suffix in downloads for suffix in (".json", ".npz", ".glb")), downloads

    # Each page shows its own reconstruction: its object, its photo's overlay, its own files.
    assert "with stool" in status_text(first) and "with bag" in status_text(second)
    sizes = [driver.execute_script("return document.querySelector('#overlay img').naturalWidth")
             for driver in (first, second)]
    assert sizes == [512, 256], sizes  # the cameraman's photo and the synthetic picture
    scenes = [{url for url in requested_urls(driver) if url.endswith(".glb")} for driver in (first, second)]
    assert scenes[0] and scenes[1] and not scenes[0] & scenes[1]
    # On the server, each session's results sit in a folder of their own, removed when the session ends.
    sessions = {json.loads(next(folder.rglob("*.json")).read_text())["object"]: folder
                for folder in server["folder"].glob("scorehoi-app-*/*") if any(folder.rglob("*.json"))}
    assert {"stool", "bag"} <= set(sessions) and len(list(sessions["bag"].iterdir())) == 1
    second.get("about:blank")
    wait(second, lambda d: not sessions["bag"].exists(), 30, "the closed session's results were not removed")
    assert sessions["stool"].exists()

    first.set_window_size(1400, first.execute_script("return document.documentElement.scrollHeight") + 150)
    first.execute_script("window.scrollTo(0, 0)")
    screenshot = tmp_path / "web_app.png"
    first.save_screenshot(str(screenshot))
    assert Image.open(screenshot).size[0] >= 1000
    if os.environ.get("SCOREHOI_WRITE_SCREENSHOT") == "1":
        # 256 colours (octree keeps the box's and keypoints' saturated colours): a quarter of the bytes.
        Image.open(screenshot).convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE).save(
            REPO / "docs" / "web_app.png", optimize=True)
    assert_nothing_left_the_machine(server, first, second)


def test_bad_uploads_show_a_message_in_the_page(server, browsers, tmp_path):
    driver = browsers()
    open_page(driver, server)
    photo = driver.find_element(By.CSS_SELECTOR, "#photo input[type=file]")

    not_a_picture = tmp_path / "notes.png"
    not_a_picture.write_text("shopping list: milk, eggs\n")
    photo.send_keys(str(not_a_picture))
    message = toast_text(driver)
    assert "notes.png is not a picture" in message and "Traceback" not in message

    driver.find_element(By.CSS_SELECTOR, "#photo button[aria-label='Remove Image']").click()
    huge = tmp_path / "huge.png"
    Image.fromarray(np.zeros((6000, 7000), np.uint8)).save(huge)
    driver.find_element(By.CSS_SELECTOR, "#photo input[type=file]").send_keys(str(huge))
    assert "7000 x 6000 pixels, more than this app's limit" in toast_text(driver)

    driver.find_element(By.CSS_SELECTOR, "#photo button[aria-label='Remove Image']").click()
    click_example(driver, "astronaut")
    # Two clicks at opposite corners of the object on the preview fill in the box, in photo pixels.
    preview = driver.find_element(By.CSS_SELECTOR, "#preview img")
    shown_width = driver.execute_script("return arguments[0].getBoundingClientRect().width", preview)
    photo_pixels_per_shown_pixel = int(preview.get_attribute("naturalWidth")) / shown_width
    for offset in ((-40, -30), (40, 30)):
        ActionChains(driver).move_to_element_with_offset(preview, *offset).click().perform()
        time.sleep(0.5)  # two separate clicks, not a double click (the server keeps the first corner in between)
    wait(driver, lambda d: box_numbers(d)[2] > 0, 20, "two clicks on the preview set no box")
    x, y, w, h = box_numbers(driver)
    assert w == pytest.approx(80 * photo_pixels_per_shown_pixel, abs=3)
    assert h == pytest.approx(60 * photo_pixels_per_shown_pixel, abs=3)
    assert x + w / 2 == pytest.approx(256, abs=3) and y + h / 2 == pytest.approx(256, abs=3)
    set_cycles(driver, 1)
    points = tmp_path / "points.ply"
    points.write_text("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
                      "property float z\nend_header\n0 0 0\n1 0 0\n0 1 0\n")
    driver.find_element(By.CSS_SELECTOR, "#mesh input[type=file]").send_keys(str(points))
    driver.find_element(By.ID, "run").click()
    assert "points.ply' has no faces" in toast_text(driver)

    # A photo with nobody in it, and a box around "the object": the run says no person was found.
    driver.find_element(By.CSS_SELECTOR, "#mesh button[aria-label='Clear']").click()
    driver.find_element(By.CSS_SELECTOR, "#photo button[aria-label='Remove Image']").click()
    driver.find_element(By.CSS_SELECTOR, "#human-mask button[aria-label='Remove Image']").click()
    driver.find_element(By.CSS_SELECTOR, "#object-mask button[aria-label='Remove Image']").click()
    empty_room = tmp_path / "empty_room.png"
    Image.fromarray(np.random.default_rng(0).integers(90, 110, (240, 320, 3), dtype=np.uint8)).save(empty_room)
    driver.find_element(By.CSS_SELECTOR, "#photo input[type=file]").send_keys(str(empty_room))
    wait(driver, lambda d: "Person: none found" in status_text(d), 60, "the preview did not say no person was found")
    for key, value in zip("xywh", (100, 80, 60, 50), strict=True):
        field = driver.find_element(By.CSS_SELECTOR, f"#box-{key} input")
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(str(value), Keys.TAB)
    driver.find_element(By.ID, "run").click()
    assert "No person found" in toast_text(driver)
    assert "Traceback" not in driver.find_element(By.TAG_NAME, "body").text
    assert_nothing_left_the_machine(server, driver)


def test_the_offline_guard_records_an_outside_connection(tmp_path):
    """The server's guard is what makes the "nothing left the machine" checks meaningful: it must catch one."""
    log = tmp_path / "outside.log"
    probe = ("import socket, sys; sys.argv = ['serve_offline.py', sys.argv[1]]; sys.path.insert(0, 'tests'); "
             "import serve_offline\n"
             "try:\n    socket.create_connection(('192.0.2.1', 80), timeout=1)\nexcept OSError as e:\n    print(e)")
    result = subprocess.run([sys.executable, "-c", probe, str(log)], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert "refused" in result.stdout, result.stderr
    assert "192.0.2.1" in log.read_text()
