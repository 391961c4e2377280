"""The web page of ``crossvit serve`` in a real browser: Debian's chromium, headless, driven by Selenium.

CI installs the browser with ``apt-get install chromium chromium-driver``; without it the test is skipped.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import crossvit
from crossvit.runtime.inference import predict

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
LABELS = ["ant", "bee", "cat", "dog", "eel", "fox", "gnu"]

pytestmark = pytest.mark.skipif(
    not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)),
    reason=f"needs {CHROMIUM} and {CHROMEDRIVER} (Debian: apt-get install chromium chromium-driver)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(checkpoint: Path, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "crossvit", "serve", "--checkpoint", str(checkpoint), "--port", str(port)]
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
            return proc
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                out = proc.stdout.read() if proc.stdout else ""
                raise RuntimeError(f"crossvit serve did not start: {out}") from None
            time.sleep(0.2)


def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,800"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def upload_and_wait(driver, url: str, image: Path, timeout: float = 60) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, timeout).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state"))
    field = driver.find_element(By.ID, "file")
    driver.execute_script("arguments[0].hidden = false;", field)  # a hidden file input takes no keys
    field.send_keys(str(image))
    WebDriverWait(driver, timeout).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") in ("done", "error")
    )


@pytest.mark.slow  # a real Chromium: ~13 s
def test_page_shows_top1_and_attention_overlays(tmp_path: Path, tiny_cfg) -> None:
    from selenium.webdriver.common.by import By

    model = crossvit.create_model(tiny_cfg).eval()
    release = crossvit.save_pretrained(model, tmp_path / "release", label_names=LABELS)
    image = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(image)
    want = predict(crossvit.from_pretrained(release), image, topk=5)[0]
    port = _free_port()
    proc = start_server(release, port)
    try:
        driver = browser()
        try:
            upload_and_wait(driver, f"http://127.0.0.1:{port}/", image)
            body = driver.find_element(By.TAG_NAME, "body")
            assert body.get_attribute("data-state") == "done", driver.find_element(By.ID, "status").text
            assert driver.find_element(By.ID, "top1").text == want.label
            bars = driver.find_elements(By.CSS_SELECTOR, "#rows .bar .name")
            assert [b.text for b in bars] == [lab for lab, _ in want.topk]
            canvases = driver.find_elements(By.CSS_SELECTOR, "canvas.overlay")
            assert sorted(c.get_attribute("data-branch") for c in canvases) == ["0", "1"]
            # the overlay is drawn: opaque pixels, and more than one colour (image under a heat map)
            colours = driver.execute_script(
                "const c = arguments[0].getContext('2d').getImageData(0, 0, 224, 224).data; const s = new Set();"
                "let opaque = 0; for (let i = 0; i < c.length; i += 4 * 97) { s.add(c[i] + ',' + c[i + 1] + ',' +"
                " c[i + 2]); opaque += c[i + 3] === 255; } return [s.size, opaque];",
                canvases[0],
            )
            assert colours[0] > 10 and colours[1] > 0
            captions = [c.text for c in driver.find_elements(By.CSS_SELECTOR, "figcaption")]
            assert any("S-branch" in c for c in captions) and any("L-branch" in c for c in captions)
        finally:
            driver.quit()
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
