"""`pixelwise serve` in a real browser: the CLI serves tiny models on a free loopback port, headless
Chromium (Debian's chromium + chromium-driver, driven by selenium) uploads images and reads the page.

Set PIXELWISE_SERVE_SCREENSHOT=/some/file.png to keep a copy of the screenshot the test takes.
"""

import io
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelwise.serve.load import free_port, stop_server

names = ["background", "disc", "square", "triangle"]
NAMES = set(names)
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    not (BROWSER and DRIVER),
    reason="needs chromium and chromedriver on PATH (Debian/Ubuntu: apt-get install chromium chromium-driver; "
           "scripts/install-browser.sh)",
)


@pytest.fixture
def server(serve_ckpts, tmp_path):
    """``pixelwise serve`` in a subprocess (FCN-8s first, then the EDeconvNet of the pair); yields
    ``(url, log path)``; stopped with Ctrl-C (SIGINT) at the end."""
    pytest.importorskip("gradio")
    port = free_port()
    log = tmp_path / "serve.log"
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "pixelwise", "serve", "--checkpoint", str(serve_ckpts["fcn8s"]),
           "--fcn", str(serve_ckpts["fcn8s"]), "--deconvnet", str(serve_ckpts["deconvnet"]),
           "--port", str(port), "--examples", "2", "--device", "cpu"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"pixelwise serve exited with {proc.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"pixelwise serve did not answer on {url} within 60 s:\n{log.read_text()}")
            time.sleep(0.3)
        yield url, log
    finally:
        stop_server(proc, timeout=15)


@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = BROWSER
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def test_upload_segment_and_read_the_result(server, browser, serve_ckpts, scene_png, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, log = server
    assert "open http://127.0.0.1:" in log.read_text()  # binds to loopback by default
    wait = WebDriverWait(browser, 30)

    def status() -> str:
        return browser.find_element(By.CSS_SELECTOR, "#pw-status textarea").get_attribute("value") or ""

    browser.get(url)
    upload = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#pw-upload input[type=file]"))
    wait.until(lambda d: "pixelwise" in d.title)

    # a bad upload: a clear line in the page, no traceback
    bad = tmp_path / "notes.png"
    bad.write_text("not an image at all\n" * 10)
    upload.send_keys(str(bad))
    wait.until(lambda d: "notes.png" in status())
    assert status().startswith("notes.png is not an image") and "Traceback" not in browser.page_source

    # a real image: upload, Segment, read the legend, the time and the download back
    path, _ = scene_png
    browser.find_element(By.CSS_SELECTOR, "#pw-upload input[type=file]").send_keys(str(path))
    wait.until(lambda d: status().startswith("scene.png: 96x96 image, ready"))
    browser.find_element(By.ID, "pw-run").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#pw-legend tbody tr"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#pw-legend tbody tr")
    shares = {}
    for row in rows:
        cells = row.find_elements(By.TAG_NAME, "td")
        shares[cells[1].text] = float(cells[2].text.replace("%", "").strip())
    assert shares and set(shares) <= NAMES
    assert sum(shares.values()) == pytest.approx(100.0, abs=0.1 * len(shares))
    assert re.search(r"\d+\.\d\d s to segment", browser.find_element(By.ID, "pw-summary").text)
    assert status().startswith("scene.png: segmented in ")
    assert browser.find_elements(By.CSS_SELECTOR, "#pw-overlay img") and browser.find_elements(
        By.CSS_SELECTOR, "#pw-mask img")
    link = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#pw-download a[download='scene_mask.png']"))
    with urllib.request.urlopen(link.get_attribute("href"), timeout=10) as response:
        mask_png = response.read()
    with Image.open(io.BytesIO(mask_png)) as im:  # the index PNG: class indices, as many as the legend says
        assert im.mode == "P" and im.size == (96, 96)
        counts = np.bincount(np.asarray(im).ravel(), minlength=4)
    assert {names[i] for i in np.flatnonzero(counts)} == set(shares)

    # an example scene: one click segments it
    browser.find_element(By.XPATH, "//*[@id='pw-examples']//button[.//img]").click()
    wait.until(lambda d: status().startswith("scene_1.png: segmented in "))

    height = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(1400, min(max(1000, height + 200), 2400))
    browser.execute_script("window.scrollTo(0, 0)")
    shot = tmp_path / "serve.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    copy = os.environ.get("PIXELWISE_SERVE_SCREENSHOT")
    if copy:
        Path(copy).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, copy)
