"""``crossvit serve`` in process (FastAPI TestClient / httpx): every endpoint, every bad input, batching, SIGTERM."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import crossvit
from badimages import corpus_bytes
from crossvit.cli import build_parser
from crossvit.cli import main as cli_main
from crossvit.runtime.inference import predict

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from crossvit.serve.batcher import Batcher  # noqa: E402
from crossvit.serve.cli import build  # noqa: E402

LABELS = ["ant", "bee", "cat", "dog", "eel", "fox", "gnu"]


def png(seed: int, size: tuple[int, int] = (60, 50)) -> bytes:
    a = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def release(tmp_path: Path, tiny_cfg) -> Path:
    m = crossvit.create_model(tiny_cfg).eval()
    return crossvit.save_pretrained(m, tmp_path / "release", label_names=LABELS)


def make_app(release: Path, *extra: str):
    args = build_parser("serve").parse_args(["serve", "--checkpoint", str(release), *extra])
    return build(args)


@pytest.fixture
def client(release: Path):
    app, _ = make_app(release, "--max-upload-mb", "0.05")
    with TestClient(app) as c:
        yield c


def expected(release: Path, data: bytes, k: int = 5) -> list[tuple[str, float]]:
    """The same image through ``crossvit.predict`` (the path behind ``crossvit predict``), not through the server."""
    model = crossvit.from_pretrained(release)
    return predict(model, Image.open(io.BytesIO(data)), topk=k)[0].topk


def assert_matches(answer: list[dict], want: list[tuple[str, float]]) -> None:
    assert [a["label"] for a in answer] == [lab for lab, _ in want]
    np.testing.assert_allclose([a["score"] for a in answer], [p for _, p in want], atol=1e-5)


def test_metadata_and_health(client: TestClient) -> None:
    meta = client.get("/metadata").json()
    assert meta["classes"] == LABELS and meta["num_classes"] == 7
    assert meta["input_size"] == [3, 48, 48]
    assert (meta["precision"], meta["runtime"]) == ("fp32", "torch")
    assert meta["attention_maps"] is True and meta["max_upload_mb"] == 0.05
    h = client.get("/healthz")
    assert h.status_code == 200 and h.json()["status"] == "ok"


def test_predict_raw_body_matches_predict(client: TestClient, release: Path) -> None:
    data = png(1)
    r = client.post("/predict", content=data, headers={"content-type": "image/png"})
    assert r.status_code == 200
    answer = r.json()
    assert len(answer) == 5 and set(answer[0]) == {"label", "score"}
    assert_matches(answer, expected(release, data))
    r3 = client.post("/predict?top_k=3", content=data).json()
    assert_matches(r3, expected(release, data, 3))
    assert len(client.post("/predict?top_k=100", content=data).json()) == 7  # capped at the class count


def test_health_counts_the_model_time(client: TestClient) -> None:
    before = client.get("/healthz").json()
    assert client.post("/predict", content=png(2)).status_code == 200
    after = client.get("/healthz").json()
    assert after["batches"] == before["batches"] + 1 and after["images"] == before["images"] + 1
    assert after["model_busy_s"] > before["model_busy_s"]  # one forward pass's time, added on the model thread


def test_predict_multipart_one_and_many(client: TestClient, release: Path) -> None:
    one = client.post("/predict", files={"file": ("a.png", png(2), "image/png")}).json()
    assert_matches(one, expected(release, png(2)))  # one file: one list, as for a raw body
    files = [("file", (f"{i}.png", png(10 + i), "image/png")) for i in range(3)]
    many = client.post("/predict?top_k=2", files=files).json()
    assert len(many) == 3
    for i, answer in enumerate(many):
        assert_matches(answer, expected(release, png(10 + i), 2))


BAD = {name: (data, case) for name, (data, case) in corpus_bytes().items() if case.expect == "bad"}


@pytest.mark.parametrize(
    "name,status,kind",
    [
        ("zero_bytes.jpg", 400, "empty_body"),
        ("text.jpg", 415, "not_an_image"),
        ("truncated.jpg", 422, "truncated"),
        ("truncated.png", 422, "truncated"),
        ("bomb.png", 422, "decompression_bomb"),
        ("bomb_soft.png", 422, "decompression_bomb"),
    ],
)
def test_bad_input_is_4xx_and_server_goes_on(client: TestClient, release: Path, name: str, status: int, kind: str):
    data = BAD[name][0]
    for send in (
        lambda: client.post("/predict", content=data),
        lambda: client.post("/predict", files={"file": (name, data, "application/octet-stream")}),
    ):
        r = send()
        assert r.status_code == status, r.text
        body = r.json()
        assert body["kind"] == kind and body["error"]
        if data:
            assert body["error"].startswith(name) or body["error"].startswith("body")
    ok = client.post("/predict", content=png(3))
    assert ok.status_code == 200
    assert_matches(ok.json(), expected(release, png(3)))


def test_one_bad_file_in_a_multipart_request_names_it(client: TestClient) -> None:
    files = [("file", ("good.png", png(4), "image/png")), ("file", ("broken.jpg", BAD["truncated.jpg"][0], "x/y"))]
    r = client.post("/predict", files=files)
    assert r.status_code == 422 and r.json()["error"].startswith("broken.jpg:")


def test_oversized_upload_is_413(client: TestClient) -> None:
    big = png(5, (200, 200))  # ~120 kB of noise, over the fixture's 0.05 MB
    assert len(big) > 0.05 * 2**20
    r = client.post("/predict", content=big)
    assert r.status_code == 413 and r.json()["kind"] == "too_large" and "--max-upload-mb" in r.json()["error"]

    def chunks():  # no Content-Length: the limit is enforced while streaming
        for i in range(0, len(big), 8192):
            yield big[i : i + 8192]

    r = client.post("/predict", content=chunks())
    assert r.status_code == 413
    assert client.post("/predict", content=png(6)).status_code == 200


def test_other_bad_requests(client: TestClient) -> None:
    assert client.post("/predict?top_k=0", content=png(1)).json()["kind"] == "bad_top_k"
    assert client.post("/predict?top_k=x", content=png(1)).status_code == 400
    r = client.post("/predict", data={"image": "not a file"}, files={"other": ("a.png", png(1), "image/png")})
    assert r.status_code == 400 and "'file'" in r.json()["error"]
    r = client.post("/predict", files={"file": (None, "text")})
    assert r.status_code == 400 and r.json()["kind"] == "bad_multipart"


def test_explain_maps_and_page(client: TestClient, release: Path, tiny_cfg) -> None:
    data = png(7)
    body = client.post("/explain", files={"file": ("x.png", data, "image/png")}).json()
    assert_matches(body["predictions"], expected(release, data))
    assert len(body["maps"]) == 2 and body["image"].startswith("data:image/png;base64,")
    for m in body["maps"]:
        h, w = tiny_cfg.grid_size[1 - m["branch"]]  # each branch's CLS attends to the other branch's patches
        assert m["grid"] == [h, w]
        roll = np.asarray(m["layers"][0]["weights"])
        assert roll.shape == (h, w) and roll.sum() + m["self_weight"] == pytest.approx(1.0, abs=1e-5)
        assert len(m["layers"]) == 1 + tiny_cfg.num_encoders  # the rollout + one module per encoder
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    html = page.text
    assert 'id="file"' in html and "explain" in html
    for external in ("http://", "https://", "<link", 'src="/'):  # every asset is inline: works offline
        assert external not in html


def test_concurrent_requests_are_batched(release: Path) -> None:
    app, served = make_app(release, "--max-wait-ms", "300", "--max-batch", "8")

    async def go() -> list:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            rs = await asyncio.gather(*(c.post("/predict?top_k=3", content=png(20 + i)) for i in range(6)))
        return [r.json() for r in rs]

    answers = asyncio.run(go())
    for i, a in enumerate(answers):
        assert_matches(a, expected(release, png(20 + i), 3))
    stats = served.batcher.stats
    assert stats.images == 6 and stats.batches < 6 and stats.largest > 1


@pytest.mark.parametrize("workers", [1, 2])
def test_workers_run_batches_side_by_side_and_exclusive_work_alone(workers: int) -> None:
    """Up to ``workers`` forward passes at once; run_exclusive (attention maps) never overlaps one."""
    lock, active, peak = threading.Lock(), [0], [0]

    def fn(x: torch.Tensor) -> torch.Tensor:  # (B, 1, 2, 2) -> (B, 3) logits that depend on the image
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)  # sleeps without the GIL, as a forward pass mostly runs
        with lock:
            active[0] -= 1
        v = x.flatten(1)[:, :1]
        return torch.cat([v, torch.zeros_like(v), -v], 1)

    def exclusive() -> tuple[int, int]:
        with lock:
            before = active[0]
        time.sleep(0.03)
        with lock:
            return before, active[0]

    batcher = Batcher(fn, max_batch=2, max_wait_ms=1, workers=workers)

    async def go():
        tasks = [asyncio.create_task(batcher.submit(torch.full((1, 2, 2), i / 4))) for i in range(8)]
        await asyncio.sleep(0.02)  # batches are running now
        seen = await batcher.run_exclusive(exclusive)
        probs = await asyncio.gather(*tasks)
        await batcher.stop()
        return seen, probs

    seen, probs = asyncio.run(go())
    assert peak[0] == workers and seen == (0, 0)
    for i, p in enumerate(probs):  # each request got its own image's answer
        torch.testing.assert_close(p, torch.tensor([i / 4, 0.0, -i / 4]).softmax(0))
    assert batcher.stats.images == 8 and batcher.stats.largest == 2


def test_clients_answered_together_join_the_next_batch() -> None:
    """Closed loop (each client sends its next image when answered), one worker: two groups of clients that
    started apart merge into full batches, instead of alternating half-size batches forever."""

    def fn(x: torch.Tensor) -> torch.Tensor:  # (B, 1, 1, 1) -> (B, 2)
        time.sleep(0.06)
        return torch.cat([x.flatten(1), -x.flatten(1)], 1)

    batcher = Batcher(fn, max_batch=4, max_wait_ms=10, workers=1)

    async def client(i: int, delay: float) -> None:
        await asyncio.sleep(delay)
        for _ in range(5):
            p = await batcher.submit(torch.full((1, 1, 1), float(i)))
            torch.testing.assert_close(p, torch.tensor([float(i), -float(i)]).softmax(0))

    async def go() -> None:
        # clients 2 and 3 arrive while the first batch (0 and 1, its wait over) runs
        await asyncio.gather(*(client(i, 0.0 if i < 2 else 0.03) for i in range(4)))
        await batcher.stop()

    asyncio.run(go())
    stats = batcher.stats
    assert stats.images == 20 and stats.largest == 4
    assert stats.batches <= 7  # alternating groups of two would take 10


def test_two_workers_answer_as_predict_and_need_torch(release: Path) -> None:
    threads = torch.get_num_threads()
    try:
        app, served = make_app(release, "--workers", "2", "--max-batch", "2", "--max-wait-ms", "50")
        assert served.batcher.workers == 2 and torch.get_num_threads() == max(1, threads // 2)

        async def go() -> list:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                rs = await asyncio.gather(*(c.post("/predict?top_k=3", content=png(40 + i)) for i in range(5)))
                explain = await c.post("/explain", content=png(40))
            return [r.json() for r in rs] + [explain.json()["predictions"][:3]]

        answers = asyncio.run(go())
        for i, a in enumerate(answers[:5]):
            assert_matches(a, expected(release, png(40 + i), 3))
        assert_matches(answers[5], expected(release, png(40), 3))
        with pytest.raises(ValueError, match="--workers 2 needs --runtime torch"):
            make_app(release, "--workers", "2", "--runtime", "openvino")
        with pytest.raises(ValueError, match="--workers must be >= 1"):
            make_app(release, "--workers", "0")
    finally:
        torch.set_num_threads(threads)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # a real server process, drained on SIGTERM: ~11 s
def test_sigterm_drains_in_flight_requests_and_exits_0(release: Path) -> None:
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "crossvit", "serve", "--checkpoint", str(release), "--port", str(port),
           "--max-wait-ms", "1500"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/healthz", timeout=1).read()
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, proc.stdout.read() if proc.stdout else ""
                time.sleep(0.2)
        results: list = []

        def post(i: int) -> None:
            req = urllib.request.Request(url + "/predict", data=png(30 + i), method="POST")
            with urllib.request.urlopen(req, timeout=30) as r:
                results.append((r.status, json.loads(r.read())))

        threads = [threading.Thread(target=post, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        time.sleep(0.5)  # the requests now wait in the batcher (max wait 1.5 s)
        assert urllib.request.urlopen(url + "/healthz", timeout=5).status == 200
        proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(30)
        rc = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 0, proc.stdout.read() if proc.stdout else ""
    assert len(results) == 3 and all(s == 200 and len(a) == 5 for s, a in results)


def test_serve_without_its_extra_names_what_to_install(monkeypatch, capsys) -> None:
    for name in [m for m in sys.modules if m.startswith("crossvit.serve")]:
        monkeypatch.delitem(sys.modules, name)  # imported afresh, as in a process where fastapi is missing
    monkeypatch.setitem(sys.modules, "fastapi", None)
    assert cli_main(["serve", "--checkpoint", "x"]) == 2
    assert "crossvit serve: needs fastapi: pip install 'crossvit[serve]'" in capsys.readouterr().err
