"""Load test of ``crossvit serve``: N concurrent clients for T seconds, next to ``crossvit predict`` on the same images.

    python benchmarks/serve_load.py --checkpoint releases/cifar10-mid --images runs/cifar10/data/val \
        --clients 16 --seconds 120 --json benchmarks/results/serve-load.json

1. Baseline: the code path of ``crossvit predict --batch-size B`` (``load_model`` + ``crossvit.predict``: decode,
   preprocess, batched forward) over the same images, in this process before the server starts; best of 2 passes.
2. ``crossvit serve`` is started on 127.0.0.1 (a free port; nothing else is reachable) with the same model and
   threads; each client keeps one HTTP connection and POSTs raw image bytes in a loop, round robin. The clients are
   ``wrk`` (``--client wrk``, the default where it is installed: Debian's ``wrk``), whose event loop in C costs the
   two cores little, or ``--client python``: one thread per client in this process, whose own CPU time (HTTP and
   JSON in Python, under the GIL) is taken from the server on a small machine.
3. Printed and saved: requests/s (= images/s), p50 / p99 latency, errors (non-200 or connection failures), the
   server's RSS sampled every 0.5 s (peak from VmHWM, first and last 10 s averages, as a check that memory is flat),
   the ratio of the server's throughput to the baseline (measured again after the load test, the faster of the
   two is used: on a shared machine the load of others varies), and the CPU model. The server is stopped with
   SIGTERM and must exit 0.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from crossvit.runtime.cpu import cpu_description

ROOT = Path(__file__).resolve().parents[1]


def baseline(checkpoint: str, paths: list[Path], batch: int, precision: str | None, runtime: str | None) -> dict:
    """img/s of ``crossvit predict``'s path (decode + preprocess + batched forward) over ``paths``."""
    from crossvit.runtime.fast import to_inference
    from crossvit.runtime.inference import load_model, predict
    from crossvit.runtime.int8 import pick_precision

    model = load_model(checkpoint)
    precision, runtime = pick_precision(model, precision, runtime)
    run = model if (precision, runtime) == ("fp32", "torch") else to_inference(model, precision, runtime=runtime)
    predict(run, paths[:batch], batch_size=batch)  # warm-up (compiles OpenVINO's network for this batch)
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        preds = predict(run, paths, batch_size=batch)
        times.append(time.perf_counter() - t0)
        assert all(p.ok for p in preds)
    return {"img_s": len(paths) / min(times), "seconds": times, "precision": precision, "runtime": runtime}


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    for ln in Path(f"/proc/{pid}/status").read_text().splitlines():
        if ln.startswith(field + ":"):
            return int(ln.split()[1])
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"crossvit serve exited with {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError("crossvit serve did not become ready")


def client(port: int, bodies: list[bytes], start: int, stop_at: float, lat: list, errors: list) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    i = start
    while time.perf_counter() < stop_at:
        body = bodies[i % len(bodies)]
        i += 1
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/predict?top_k=5", body=body, headers={"Content-Type": "application/octet-stream"})
            r = conn.getresponse()
            data = r.read()
            if r.status != 200 or not json.loads(data):
                errors.append(f"HTTP {r.status}: {data[:100]!r}")
                continue
        except (OSError, http.client.HTTPException, ValueError) as e:
            errors.append(f"{type(e).__name__}: {e}")
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            continue
        lat.append((t0, time.perf_counter() - t0))
    conn.close()


WRK_SCRIPT = """
local paths = {%s}
local bodies = {}
for i, p in ipairs(paths) do
  local f = assert(io.open(p, "rb")); bodies[i] = f:read("*a"); f:close()
end
local n = 0
local headers = {["Content-Type"] = "application/octet-stream"}
setup = function(thread) thread:set("n", math.random(#bodies)) end
request = function()
  n = n + 1
  return wrk.format("POST", "/predict?top_k=5", headers, bodies[(n %% #bodies) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %%d, "duration_us": %%d, "p50_us": %%.1f, "p99_us": %%.1f, ' ..
    '"connect": %%d, "read": %%d, "write": %%d, "status": %%d, "timeout": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def run_wrk(port: int, paths: list[Path], clients: int, seconds: float) -> dict:
    """``wrk`` with ``clients`` connections on 2 threads; requests, errors and latency from its summary."""
    lua = WRK_SCRIPT % ", ".join(json.dumps(str(q.resolve())) for q in paths)
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(lua)
        cmd = ["wrk", "-t", str(min(2, clients)), "-c", str(clients), "-d", f"{seconds:g}s", "--timeout", "60s",
               "-s", str(script), f"http://127.0.0.1:{port}/"]  # fmt: skip
        res = subprocess.run(cmd, capture_output=True, text=True)
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if res.returncode or line is None:
        raise RuntimeError(f"wrk failed (exit {res.returncode}): {(res.stdout + res.stderr)[-1500:]}")
    r = json.loads(line[len("WRKJSON ") :])
    kinds = ("connect", "read", "write", "status", "timeout")
    return {"requests": r["requests"] - r["status"], "errors": sum(r[k] for k in kinds),
            "seconds": r["duration_us"] / 1e6, "p50_ms": r["p50_us"] / 1e3, "p99_ms": r["p99_us"] / 1e3,
            "error_samples": [f"{k} errors: {r[k]}" for k in kinds if r[k]]}  # fmt: skip


def run_python(port: int, bodies: list[bytes], clients: int, seconds: float) -> dict:
    """One thread per client in this process (http.client, one kept-alive connection each)."""
    lat: list[tuple[float, float]] = []
    errors: list[str] = []
    t_start = time.perf_counter()
    stop_at = t_start + seconds
    threads = [
        threading.Thread(target=client, args=(port, bodies, k * 37, stop_at, lat, errors)) for k in range(clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ms = sorted(x * 1e3 for _, x in lat)
    q = statistics.quantiles(ms, n=100) if len(ms) >= 2 else [float("nan")] * 99
    return {"requests": len(lat), "errors": len(errors), "seconds": time.perf_counter() - t_start,
            "p50_ms": q[49], "p99_ms": q[98], "error_samples": errors[:5]}  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--images", required=True, type=Path, help="folder of images (searched recursively)")
    p.add_argument("--limit", type=int, default=512, help="images used (default 512)")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=120)
    p.add_argument("--batch-size", type=int, default=32, help="of the baseline (crossvit predict's default: 32)")
    p.add_argument("--max-batch", type=int, default=None, help="the server's --max-batch (default --batch-size)")
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--precision", default=None)
    p.add_argument("--runtime", default=None)
    p.add_argument("--server-threads", type=int, default=None, help="the server's --threads (default torch's)")
    p.add_argument("--workers", type=int, default=1, help="the server's --workers (batches run at once)")
    p.add_argument("--client", choices=("auto", "wrk", "python"), default="auto", help="auto: wrk where installed")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()

    from crossvit.io.images import expand_paths

    paths = expand_paths([args.images])[: args.limit]
    if not paths:
        raise SystemExit(f"{args.images}: no images")
    bodies = [q.read_bytes() for q in paths]
    base = baseline(args.checkpoint, paths, args.batch_size, args.precision, args.runtime)
    print(f"crossvit predict path: {len(paths)} images, batch {args.batch_size}, {base['precision']} "
          f"{base['runtime']}: {base['img_s']:.1f} img/s", flush=True)  # fmt: skip

    port = free_port()
    cmd = [sys.executable, "-m", "crossvit", "serve", "--checkpoint", args.checkpoint, "--port", str(port),
           "--max-batch", str(args.max_batch or args.batch_size), "--max-wait-ms", str(args.max_wait_ms)]  # fmt: skip
    for opt in ("precision", "runtime"):
        if getattr(args, opt):
            cmd += [f"--{opt}", getattr(args, opt)]
    if args.server_threads:
        cmd += ["--threads", str(args.server_threads)]
    cmd += ["--workers", str(args.workers)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_ready(port, proc)
        answer = json.loads(_post(port, bodies[0]))  # the load clients count status codes; check one answer's form
        if not (isinstance(answer, list) and answer and {"label", "score"} <= set(answer[0])):
            raise RuntimeError(f"crossvit serve answered {answer!r}")
        print(f"server ready on 127.0.0.1:{port}; {args.clients} clients for {args.seconds:g} s", flush=True)
        client_kind = ("wrk" if shutil.which("wrk") else "python") if args.client == "auto" else args.client
        print(f"clients: {client_kind}", flush=True)
        rss: list[tuple[float, int]] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                rss.append((time.perf_counter(), rss_kb(proc.pid)))
                done.wait(0.5)

        t_start = time.perf_counter()
        stop_at = t_start + args.seconds
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        if client_kind == "wrk":
            load = run_wrk(port, paths, args.clients, args.seconds)
        else:
            load = run_python(port, bodies, args.clients, args.seconds)
        elapsed = load["seconds"]
        done.set()
        sampler.join()
        print(f"load done: {load['requests']} requests in {elapsed:.0f} s; stopping the server", flush=True)
        peak_kb = rss_kb(proc.pid, "VmHWM")
        health = json.loads(_get(port, "/healthz"))
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    # the machine may be shared: the baseline is measured again after the load test and both are reported
    after = baseline(args.checkpoint, paths, args.batch_size, args.precision, args.runtime)
    base["img_s_after"] = after["img_s"]
    first = [kb for t, kb in rss if t - t_start <= 10]
    last = [kb for t, kb in rss if stop_at - t <= 10]
    out = {
        "cpu": cpu_description(),
        "checkpoint": args.checkpoint,
        "images": len(paths),
        "clients": args.clients,
        "client": client_kind,
        "server_threads": args.server_threads,
        "workers": args.workers,
        "max_batch": args.max_batch or args.batch_size,
        "max_wait_ms": args.max_wait_ms,
        "seconds": elapsed,
        "requests_ok": load["requests"],
        "errors": load["errors"],
        "error_samples": load["error_samples"],
        "throughput_img_s": load["requests"] / elapsed,
        "p50_ms": load["p50_ms"],
        "p99_ms": load["p99_ms"],
        "server_peak_rss_mb": peak_kb / 1024,
        "server_rss_first_10s_mb": statistics.mean(first) / 1024 if first else None,
        "server_rss_last_10s_mb": statistics.mean(last) / 1024 if last else None,
        "server_batches": health,
        "server_exit_code": rc,
        "predict_img_s": base["img_s"],
        "precision": base["precision"],
        "runtime": base["runtime"],
    }
    out["predict_img_s_after"] = after["img_s"]
    out["throughput_vs_predict"] = out["throughput_img_s"] / max(base["img_s"], after["img_s"])
    mean_batch = health["images"] / max(health["batches"], 1)
    print(f"CPU: {out['cpu']}")
    print(f"crossvit serve, {args.clients} {client_kind} clients x {elapsed:.0f} s: {load['requests']} requests, "
          f"{load['errors']} errors, "
          f"{out['throughput_img_s']:.1f} img/s, p50 {out['p50_ms']:.1f} ms, p99 {out['p99_ms']:.1f} ms; "
          f"mean batch {mean_batch:.1f}, {args.workers} worker(s)")  # fmt: skip
    print(f"server RSS: peak {out['server_peak_rss_mb']:.0f} MB, first 10 s {out['server_rss_first_10s_mb']:.0f} MB, "
          f"last 10 s {out['server_rss_last_10s_mb']:.0f} MB; exit code after SIGTERM {rc}")  # fmt: skip
    print(f"throughput = {out['throughput_vs_predict']:.2f}x crossvit predict batched (the faster of "
          f"{base['img_s']:.1f} img/s before and {after['img_s']:.1f} img/s after the load test)")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0 if not load["errors"] and rc == 0 else 1


def _post(port: int, body: bytes) -> bytes:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("POST", "/predict?top_k=5", body=body, headers={"Content-Type": "application/octet-stream"})
    return c.getresponse().read()


def _get(port: int, path: str) -> bytes:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path)
    return c.getresponse().read()


if __name__ == "__main__":
    sys.exit(main())
