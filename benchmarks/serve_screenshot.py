"""Screenshot of the ``crossvit serve`` page after an upload, in headless Debian chromium (for docs/img/serve.png).

    python benchmarks/serve_screenshot.py --checkpoint releases/cifar10-mid \
        --image runs/cifar10/data/val/cat/<file>.png --out docs/img/serve.png
"""

from __future__ import annotations

import argparse
import http.client
import socket
import subprocess
import sys
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--image", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    args = p.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "crossvit", "serve", "--checkpoint", args.checkpoint, "--port", str(port)]
    proc = subprocess.Popen(cmd)
    try:
        for _ in range(300):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.3)
        opts = webdriver.ChromeOptions()
        opts.binary_location = args.chromium
        for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,720"):
            opts.add_argument(a)
        driver = webdriver.Chrome(service=Service(args.chromedriver), options=opts)
        try:
            driver.get(f"http://127.0.0.1:{port}/")
            field = driver.find_element(By.ID, "file")
            driver.execute_script("arguments[0].hidden = false;", field)
            field.send_keys(str(args.image.resolve()))
            driver.execute_script("arguments[0].hidden = true;", field)
            WebDriverWait(driver, 60).until(
                lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "done"
            )
            args.out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(args.out))
            print(f"top-1 {driver.find_element(By.ID, 'top1').text}; wrote {args.out}")
        finally:
            driver.quit()
    finally:
        proc.terminate()
        proc.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
