"""Load test of ``crossvit serve``: N concurrent clients for T seconds, next to ``crossvit predict`` on the same images.

    python benchmarks/serve_load.py --checkpoint releases/cifar10-mid --images runs/cifar10/data/val \
        --clients 16 --seconds 120 --json benchmarks/results/serve-load.json

1. Baseline: the code path of ``crossvit predict --batch-size B`` (``load_model`` + ``crossvit.predict``: decode,
   preprocess, batched forward) over the same images, in this process: passes over them for ``--baseline-seconds``
   (10), all images over all the time.
2. ``crossvit serve`` is started on 127.0.0.1 (a free port; nothing else is reachable) with the same model and
   threads; each client keeps one HTTP connection and POSTs raw image bytes in a loop, round robin. The clients are
   ``wrk`` (``--client wrk``, the default where it is installed: Debian's ``wrk``), whose event loop in C costs the
   two cores little, or ``--client python``: one thread per client in this process, whose own CPU time (HTTP and
   JSON in Python, under the GIL) is taken from the server on a small machine. The load is cut into ``--rounds``
   rounds (default 4 of 30 s), the baseline measured before each round and after the last while the server idles,
   so that each round is compared with the machine's speed around it: on a shared machine that speed drifts by
   tens of percent from one few-second window to the next (one 2-s pass: 200-277 img/s on a Zen 3, passes back to
   back), more than the gap being measured. The server stays up through all rounds.
3. Printed and saved: requests/s (= images/s), p50 / p99 latency, errors (non-200 or connection failures), the
   server's RSS sampled every 0.5 s (peak from VmHWM, first and last 10 s averages, as a check that memory is flat),
   the share of the time the model threads spent in forward passes, the ratio of the server's throughput to the
   baseline (each round against the mean of the baselines around it, weighted by its length; also per round and
   against the fastest baseline of the run), and the CPU model. The server is stopped with
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


class Baseline:
    """img/s of ``crossvit predict``'s path (decode + preprocess + batched forward) over ``paths``, in this process."""

    def __init__(self, checkpoint: str, paths: list[Path], batch: int, precision: str | None,
                 runtime: str | None) -> None:  # fmt: skip
        from crossvit.runtime.fast import to_inference
        from crossvit.runtime.inference import load_model
        from crossvit.runtime.int8 import pick_precision

        model = load_model(checkpoint)
        self.precision, self.runtime = pick_precision(model, precision, runtime)
        fp32_torch = (self.precision, self.runtime) == ("fp32", "torch")
        self.run = model if fp32_torch else to_inference(model, self.precision, runtime=self.runtime)
        self.paths, self.batch = paths, batch
        self.measure(seconds=0)  # one pass of warm-up (compiles OpenVINO's network for this batch)

    def measure(self, seconds: float = 10.0) -> float:
        """img/s over whole passes of the images repeated for at least ``seconds``: all images over all the time.

        The mean over a window, not the best pass: on a shared machine one 2-s pass varies by a third (200-277 img/s
        on a Zen 3, passes back to back), and the best of a few short passes would be set against the server's mean
        over a 30-s round.
        """
        from crossvit.runtime.inference import predict

        n, t0 = 0, time.perf_counter()
        while n == 0 or time.perf_counter() - t0 < seconds:
            preds = predict(self.run, self.paths, batch_size=self.batch)
            assert all(p.ok for p in preds)
            n += len(preds)
        return n / (time.perf_counter() - t0)


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
    p.add_argument("--seconds", type=float, default=120, help="of load in all, over --rounds rounds")
    p.add_argument("--rounds", type=int, default=4, help="the load is cut into this many rounds, the baseline "
                   "measured before each and after the last (default 4)")  # fmt: skip
    p.add_argument("--baseline-seconds", type=float, default=10.0, help="each baseline: whole passes over the "
                   "images for at least this long (default 10)")  # fmt: skip
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
    if args.rounds < 1 or args.seconds <= 0 or args.baseline_seconds < 0:
        raise SystemExit(f"--rounds must be >= 1, --seconds > 0 and --baseline-seconds >= 0, got {args.rounds}, "
                         f"{args.seconds:g} and {args.baseline_seconds:g}")  # fmt: skip

    from crossvit.io.images import expand_paths

    paths = expand_paths([args.images])[: args.limit]
    if not paths:
        raise SystemExit(f"{args.images}: no images")
    bodies = [q.read_bytes() for q in paths]
    base = Baseline(args.checkpoint, paths, args.batch_size, args.precision, args.runtime)
    print(f"crossvit predict path: {len(paths)} images, batch {args.batch_size}, {base.precision} {base.runtime}",
          flush=True)  # fmt: skip

    port = free_port()
    cmd = [sys.executable, "-m", "crossvit", "serve", "--checkpoint", args.checkpoint, "--port", str(port),
           "--max-batch", str(args.max_batch or args.batch_size), "--max-wait-ms", str(args.max_wait_ms)]  # fmt: skip
    for opt in ("precision", "runtime"):
        if getattr(args, opt):
            cmd += [f"--{opt}", getattr(args, opt)]
    if args.server_threads:
        cmd += ["--threads", str(args.server_threads)]
    cmd += ["--workers", str(args.workers)]
    client_kind = ("wrk" if shutil.which("wrk") else "python") if args.client == "auto" else args.client
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    rounds: list[dict] = []
    baselines: list[float] = []
    rss: list[tuple[float, int]] = []
    try:
        wait_ready(port, proc)
        answer = json.loads(_post(port, bodies[0]))  # the load clients count status codes; check one answer's form
        if not (isinstance(answer, list) and answer and {"label", "score"} <= set(answer[0])):
            raise RuntimeError(f"crossvit serve answered {answer!r}")
        print(f"server ready on 127.0.0.1:{port}; {args.clients} {client_kind} clients, {args.rounds} rounds of "
              f"{args.seconds / args.rounds:g} s", flush=True)  # fmt: skip
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                rss.append((time.perf_counter(), rss_kb(proc.pid)))
                done.wait(0.5)

        t_start = time.perf_counter()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        # The machine may be shared, and the speed others leave it drifts over minutes: the baseline is measured
        # between rounds (the server idle), so each round is compared with the machine as it was around it.
        for r in range(args.rounds):
            baselines.append(base.measure(args.baseline_seconds))
            busy_before = json.loads(_get(port, "/healthz"))["model_busy_s"]
            t_begin = time.perf_counter()
            if client_kind == "wrk":
                load = run_wrk(port, paths, args.clients, args.seconds / args.rounds)
            else:
                load = run_python(port, bodies, args.clients, args.seconds / args.rounds)
            load["window"] = (t_begin, time.perf_counter())
            load["model_busy_s"] = json.loads(_get(port, "/healthz"))["model_busy_s"] - busy_before
            rounds.append(load)
            print(f"round {r + 1}: predict {baselines[-1]:.1f} img/s before; serve {load['requests']} requests, "
                  f"{load['errors']} errors, {load['requests'] / load['seconds']:.1f} img/s", flush=True)  # fmt: skip
        t_load = time.perf_counter() - t_start
        done.set()
        sampler.join()
        peak_kb = rss_kb(proc.pid, "VmHWM")
        health = json.loads(_get(port, "/healthz"))
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    baselines.append(base.measure(args.baseline_seconds))
    seconds = sum(r["seconds"] for r in rounds)
    requests = sum(r["requests"] for r in rounds)
    # each round against the mean of the baselines just before and just after it
    ratios = [r["requests"] / r["seconds"] / ((baselines[i] + baselines[i + 1]) / 2) for i, r in enumerate(rounds)]
    # under load only: the server idles while the baselines run
    load_start, load_end = rounds[0]["window"][0], rounds[-1]["window"][1]
    first = [kb for t, kb in rss if load_start <= t <= load_start + 10]
    last = [kb for t, kb in rss if load_end - 10 <= t <= load_end]
    for r in rounds:
        a, b = r.pop("window")
        r["server_rss_mean_mb"] = statistics.mean([kb for t, kb in rss if a <= t <= b] or [0]) / 1024
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
        "seconds": seconds,
        "rounds": rounds,
        "requests_ok": requests,
        "errors": sum(r["errors"] for r in rounds),
        "error_samples": [e for r in rounds for e in r["error_samples"]][:5],
        "throughput_img_s": requests / seconds,
        "p50_ms": statistics.median(r["p50_ms"] for r in rounds),
        "p99_ms": max(r["p99_ms"] for r in rounds),
        "server_seconds_alive_under_test": t_load,
        "server_peak_rss_mb": peak_kb / 1024,
        "server_rss_first_10s_of_load_mb": statistics.mean(first) / 1024 if first else None,
        "server_rss_last_10s_of_load_mb": statistics.mean(last) / 1024 if last else None,
        "server_batches": health,
        "model_busy_fraction": sum(r["model_busy_s"] for r in rounds) / (seconds * args.workers),
        "server_exit_code": rc,
        "predict_img_s_per_round": baselines,
        "predict_img_s": statistics.mean(baselines),
        "precision": base.precision,
        "runtime": base.runtime,
        "throughput_vs_predict_per_round": ratios,
    }
    # requests-weighted over the rounds, each against the machine's speed around it
    expected = sum(r["seconds"] * (baselines[i] + baselines[i + 1]) / 2 for i, r in enumerate(rounds))
    out["throughput_vs_predict"] = requests / expected
    mean_batch = health["images"] / max(health["batches"], 1)
    print(f"CPU: {out['cpu']}")
    print(f"crossvit serve, {args.clients} {client_kind} clients x {seconds:.0f} s ({args.rounds} rounds): {requests} "
          f"requests, {out['errors']} errors, {out['throughput_img_s']:.1f} img/s, p50 {out['p50_ms']:.1f} ms, "
          f"p99 {out['p99_ms']:.1f} ms; mean batch {mean_batch:.1f}, {args.workers} worker(s) busy "
          f"{out['model_busy_fraction']:.0%} of the time")  # fmt: skip
    per_round = ", ".join(f"{r['server_rss_mean_mb']:.0f}" for r in rounds)
    print(f"server RSS over {t_load:.0f} s: peak {out['server_peak_rss_mb']:.0f} MB; under load: first 10 s "
          f"{out['server_rss_first_10s_of_load_mb']:.0f} MB, last 10 s {out['server_rss_last_10s_of_load_mb']:.0f} "
          f"MB, mean per round {per_round} MB; exit code after SIGTERM {rc}")  # fmt: skip
    print(f"crossvit predict batched, before each round and after the last: "
          f"{', '.join(f'{b:.1f}' for b in baselines)} img/s")  # fmt: skip
    print(f"throughput = {out['throughput_vs_predict']:.2f}x crossvit predict batched (per round "
          f"{', '.join(f'{x:.2f}' for x in ratios)}x; against the fastest baseline of the run "
          f"{out['throughput_img_s'] / max(baselines):.2f}x)")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0 if not out["errors"] and rc == 0 else 1


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
