"""``lyricnn serve`` under concurrent clients on loopback: what dynamic batching buys.

Starts ``lyricnn serve`` on a free 127.0.0.1 port (a separate process, so the clients
here do not share its interpreter), then for each client count C sends C clients x R
requests (each ``max_tokens`` tokens, sampled, streamed off) and reports the aggregate
completion tokens/s and the p50/p95 request latency. Bounded: at most 16 clients, and
``--timeout`` seconds per request.

    .venv/bin/python benchmarks/bench_serve.py --checkpoint runs/demo --clients 1 16
"""
import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.machine import cpu_model  # noqa: E402

MAX_CLIENTS = 16


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(checkpoint):
    port = free_port()
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.Popen([sys.executable, "-m", "lyricnn.cli", "serve", "--checkpoint",
                             checkpoint, "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url, httpx.get(url + "/v1/models").json()["data"][0]["id"]
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"lyricnn serve exited: {proc.stderr.read()}")
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("lyricnn serve did not become healthy in 120 s")


def load(url, model, prompt, clients, requests, max_tokens, timeout):
    latencies, tokens, errors = [], [0], []
    lock = threading.Lock()

    def client(c):
        with httpx.Client(base_url=url, timeout=timeout) as http:
            for r in range(requests):
                start = time.perf_counter()
                resp = http.post("/v1/completions", json={
                    "model": model, "prompt": prompt, "max_tokens": max_tokens,
                    "temperature": 1.0, "top_k": 40, "seed": 1000 * c + r})
                took = time.perf_counter() - start
                with lock:
                    if resp.status_code != 200:
                        errors.append(resp.text[:200])
                        continue
                    latencies.append(took)
                    tokens[0] += resp.json()["usage"]["completion_tokens"]
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        raise SystemExit(f"{len(errors)} requests failed, e.g. {errors[0]}")
    latencies.sort()
    return {"clients": clients, "requests": len(latencies), "tokens_per_s": tokens[0] / wall,
            "p50": statistics.median(latencies),
            "p95": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--clients", type=int, nargs="+", default=[1, 16])
    p.add_argument("--requests", type=int, default=4, help="per client")
    p.add_argument("--max-tokens", type=int, default=100)
    p.add_argument("--prompt", default="分开")
    p.add_argument("--timeout", type=float, default=120)
    args = p.parse_args(argv)
    if any(not 1 <= c <= MAX_CLIENTS for c in args.clients):
        raise SystemExit(f"--clients must be between 1 and {MAX_CLIENTS}")
    proc, url, model = start(args.checkpoint)
    try:
        load(url, model, args.prompt, 1, 1, args.max_tokens, args.timeout)     # warm-up
        rows = [load(url, model, args.prompt, c, args.requests, args.max_tokens, args.timeout)
                for c in args.clients]
    finally:
        proc.terminate()
        proc.wait(30)
    print(f"machine: {cpu_model()}")
    print(f"model {model} ({args.checkpoint}); {args.requests} requests per client of "
          f"{args.max_tokens} tokens each, top-k 40")
    print(f"{'clients':>7} {'requests':>8} {'tokens/s':>9} {'p50 s':>7} {'p95 s':>7}")
    for r in rows:
        print(f"{r['clients']:>7} {r['requests']:>8} {r['tokens_per_s']:>9.0f} "
              f"{r['p50']:>7.2f} {r['p95']:>7.2f}")
    base = rows[0]["tokens_per_s"]
    for r in rows[1:]:
        print(f"{r['clients']} clients: {r['tokens_per_s'] / base:.2f}x the aggregate "
              f"tokens/s of {rows[0]['clients']}")


if __name__ == "__main__":
    main()
