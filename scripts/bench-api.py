#!/usr/bin/env python3
"""Load check of `yard serve` on loopback: CLIENTS Server-Sent Event clients on
the account's stream while submits arrive at RATE per second for SECONDS;
reports p50/p99 latency of submits and of GET /api/v1/jobs, against the
baseline of GET /healthz measured in the same run, and the server's RSS.

Usage: scripts/bench-api.py [--clients 200] [--rate 100] [--seconds 30] [--stream /api/v1/events]
Starts its own `yard serve --port 0` in a fresh $YARD_HOME (yard from
.build/debug unless YARD is set), echo jobs only: nothing leaves loopback.
"""
import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def percentile(values, p):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--stream", default="/api/v1/events", help="the SSE route every client listens on")
    parser.add_argument("--workers", type=int, default=8, help="connections the submits are spread over")
    args = parser.parse_args()
    yard = os.environ.get("YARD", os.path.join(REPO, ".build/debug/yard"))
    home = tempfile.mkdtemp(prefix="yard-bench-api-")
    env = dict(os.environ, YARD_HOME=home, YARD_PLUGIN_PATH="")
    token = subprocess.run([yard, "tokens", "create", "--account", "bench", "--scope", "run"], env=env, capture_output=True, text=True, check=True).stdout.strip()
    serve = subprocess.Popen([yard, "serve", "--port", "0", "--rate-limit", "0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = serve.stdout.readline()
        port = int(line.rsplit(":", 1)[1])
        auth = {"Authorization": f"Bearer {token}"}
        rss_start = rss_mb(serve.pid)
        stop = threading.Event()
        received = [0]
        lock = threading.Lock()

        def sse_client():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=args.seconds + 30)
            conn.request("GET", args.stream, headers=auth)
            response = conn.getresponse()
            assert response.status == 200, response.status
            sock = response.fp
            while not stop.is_set():
                chunk = sock.readline()
                if not chunk:
                    break
                if chunk.startswith(b"id: "):
                    with lock:
                        received[0] += 1
            conn.close()

        def timed(conn, method, path, body=None, headers=None):
            started = time.perf_counter()
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            response.read()
            return time.perf_counter() - started, response.status

        clients = [threading.Thread(target=sse_client, daemon=True) for _ in range(args.clients)]
        for thread in clients:
            thread.start()
        time.sleep(1)
        submit_latency, list_latency, health_latency, errors = [], [], [], [0]

        def submitter(share):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            interval = share / args.rate
            next_at = time.perf_counter()
            n = 0
            while time.perf_counter() < deadline:
                body = json.dumps({"engine": "echo", "capability": "debug.echo", "inputs": {"text": f"load {threading.get_ident()} {n}", "polls": 1}})
                latency, status = timed(conn, "POST", "/api/v1/jobs", body, dict(auth, **{"Content-Type": "application/json"}))
                with lock:
                    submit_latency.append(latency)
                    if status >= 500 or status not in (200, 201):
                        errors[0] += 1
                latency, status = timed(conn, "GET", "/api/v1/jobs?limit=20", headers=auth)
                with lock:
                    list_latency.append(latency)
                latency, status = timed(conn, "GET", "/healthz")
                with lock:
                    health_latency.append(latency)
                n += 1
                next_at += interval
                time.sleep(max(0, next_at - time.perf_counter()))

        workers = args.workers
        deadline = time.perf_counter() + args.seconds
        threads = [threading.Thread(target=submitter, args=(workers,)) for _ in range(workers)]
        for thread in threads:
            thread.start()
        peak = rss_start
        while any(t.is_alive() for t in threads):
            peak = max(peak, rss_mb(serve.pid))
            time.sleep(0.5)
        stop.set()
        achieved = len(submit_latency) / args.seconds
        ms = lambda v: f"{v * 1000:.1f} ms"
        print(f"SSE clients {args.clients} on {args.stream}, submits asked {args.rate:.0f}/s, achieved {achieved:.1f}/s over {args.seconds:.0f} s; {errors[0]} failed submits")
        print(f"POST /api/v1/jobs   p50 {ms(percentile(submit_latency, 50))}  p99 {ms(percentile(submit_latency, 99))}")
        print(f"GET  /api/v1/jobs   p50 {ms(percentile(list_latency, 50))}  p99 {ms(percentile(list_latency, 99))}")
        print(f"GET  /healthz       p50 {ms(percentile(health_latency, 50))}  p99 {ms(percentile(health_latency, 99))}  (baseline)")
        print(f"events delivered to SSE clients: {received[0]}; RSS {rss_start:.0f} MB at start, peak {peak:.0f} MB")
    finally:
        serve.terminate()
        try:
            started = time.perf_counter()
            serve.wait(timeout=20)
            print(f"server stopped {time.perf_counter() - started:.1f} s after SIGTERM, with the SSE clients still connected")
        except subprocess.TimeoutExpired:
            print("server did not stop within 20 s of SIGTERM: killed")
            serve.kill()
            serve.wait()


if __name__ == "__main__":
    sys.exit(main())
