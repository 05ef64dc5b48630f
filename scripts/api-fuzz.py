#!/usr/bin/env python3
"""schemathesis against a running `yard serve`: property-based requests
generated from /openapi.json (valid and invalid ones), a bounded number per
operation, with an admin token. Fails on any server error (5xx), any status
the document does not list, a Content-Type other than the documented one, or a
JSON body that does not match its schema.

A fresh $YARD_HOME; every engine config points at a closed loopback port and
yard runs with its network guard, so nothing leaves the machine.

Usage: scripts/api-fuzz.py BIN_DIR [MAX_EXAMPLES]   (scripts/api-fuzz.sh finds BIN_DIR)
"""
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_check_support import stop  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPORT = os.path.join(REPO, ".build", "api-fuzz")


def fail(message):
    print(f"api-fuzz: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def main():
    if len(sys.argv) not in (2, 3):
        fail("usage: api-fuzz.py BIN_DIR [MAX_EXAMPLES]")
    yard = os.path.join(sys.argv[1], "yard")
    examples = sys.argv[2] if len(sys.argv) == 3 else os.environ.get("API_FUZZ_EXAMPLES", "25")
    # The module of the python3 running this, wherever pip put its scripts.
    try:
        import schemathesis  # noqa: F401
    except ImportError:
        fail("schemathesis is not installed (python3 -m pip install schemathesis; .ci/run installs it)")
    work = tempfile.mkdtemp(prefix="yard-fuzz-")
    home = os.path.join(work, "home")
    guard_log = os.path.join(work, "network-guard.log")
    env = dict(os.environ, YARD_HOME=home, YARD_PLUGIN_PATH="", YARD_NETWORK_GUARD="loopback", YARD_NETWORK_GUARD_LOG=guard_log)
    os.makedirs(os.path.join(home, "config"))
    dead = "http://127.0.0.1:9"
    for engine, config in {
        "fal": {"queue_url": dead, "rest_url": dead, "webhook_jwks_url": dead + "/.well-known/jwks.json"},
        "kling": {"base_url": dead}, "modal": {"app_url": dead}, "comfyui": {"base_url": dead},
        "huggingface": {"hub_url": dead, "router_url": dead}, "stripe-billing": {"base_url": dead},
        "runpod": {"endpoint_id": "fuzz", "base_url": dead + "/v2", "rest_url": dead + "/rest/v1", "graphql_url": dead + "/graphql"},
    }.items():
        with open(os.path.join(home, "config", f"{engine}.json"), "w") as f:
            json.dump(config, f)
    made = subprocess.run([yard, "tokens", "create", "--account", "fuzz", "--scope", "admin", "--json"], env=env, capture_output=True, text=True)
    if made.returncode != 0:
        fail(f"yard tokens create: {made.stderr.strip()}")
    token = json.loads(made.stdout)["token"]
    os.makedirs(REPORT, exist_ok=True)
    log = open(os.path.join(REPORT, "serve.log"), "w")
    # Rate limit off: schemathesis is one client sending as fast as it can.
    serve = subprocess.Popen([yard, "serve", "--port", "0", "--rate-limit", "0"], env=env, stdout=subprocess.PIPE, stderr=log)
    started = time.time()
    try:
        buffer, base = b"", None
        while time.time() < started + 30 and base is None:
            ready, _, _ = select.select([serve.stdout.fileno()], [], [], 0.2)
            if ready:
                chunk = os.read(serve.stdout.fileno(), 4096)
                if not chunk:
                    break
                buffer += chunk
                match = re.search(rb"(http://127\.0\.0\.1:\d+)", buffer)
                base = match.group(1).decode() if match else None
        if base is None:
            fail(f"yard serve did not start: {buffer.decode(errors='replace')[-300:] or 'no output'}")
        # Real objects for the path parameters, so operations on a job, an artifact or an engine
        # are exercised beyond their 404: a finished echo job and an uploaded image.
        def call(method, path, body=None, content_type="application/json"):
            request = urllib.request.Request(base + path, data=body, method=method,
                                             headers={"Authorization": f"Bearer {token}", "Content-Type": content_type})
            with urllib.request.urlopen(request, timeout=20) as answer:
                return json.loads(answer.read())
        job = call("POST", "/api/v1/jobs", json.dumps({"engine": "echo", "capability": "debug.echo", "inputs": {"text": "fuzz"}}).encode())["id"]
        for _ in range(100):
            if call("GET", f"/api/v1/jobs/{job}")["state"] in ("succeeded", "failed"):
                break
            time.sleep(0.1)
        with open(os.path.join(REPO, "Registry", "samples", "product.png"), "rb") as f:
            image = call("POST", "/api/v1/artifacts", f.read(), "image/png")["artifact"][7:]
        config = os.path.join(work, "schemathesis.toml")
        with open(config, "w") as f:
            f.write(f"""# Written by scripts/api-fuzz.py for one run.
[[operations]]
include-path-regex = '^/api/v1/jobs/\\{{id\\}}'
parameters = {{ id = "{job}" }}
max-stream-events = 20

[[operations]]
include-path-regex = '^/api/v1/artifacts/\\{{sha256\\}}'
parameters = {{ sha256 = "{image}" }}

[[operations]]
include-path-regex = '^/api/v1/(engines|plugins)/\\{{id\\}}'
parameters = {{ id = "echo" }}

[[operations]]
include-path-regex = '^/api/v1/capabilities/\\{{id\\}}'
parameters = {{ id = "debug.echo" }}

[[operations]]
include-path-regex = '^/api/v1/presets/\\{{name\\}}'
parameters = {{ name = "ugc-product-clip" }}
""")
        command = [sys.executable, "-m", "schemathesis.cli", "--config-file", config, "run", f"{base}/openapi.json", "--url", base,
                   "--header", f"Authorization: Bearer {token}",
                   "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
                   "--max-examples", str(examples), "--phases", "examples,coverage,fuzzing", "--workers", "2",
                   "--seed", os.environ.get("API_FUZZ_SEED", "16"), "--generation-database", "none",
                   "--request-timeout", "15", "--no-color", "--output-sanitize", "true",
                   # The account's stream never ends by itself; ServerContractTests and ServerLiveTests read it.
                   "--exclude-path", "/api/v1/events/stream", "--exclude-path", "/api/v1/events",
                   "--report", "junit", "--report-dir", REPORT]
        print(f"api-fuzz: {examples} examples per operation against {base}", flush=True)
        # In the work folder: schemathesis keeps a cache in its working directory.
        done = subprocess.run(command, env=dict(os.environ, SCHEMATHESIS_TELEMETRY="false"), text=True, cwd=work)
        if serve.poll() is not None:
            fail(f"yard serve exited ({serve.returncode}) during the run; see {REPORT}/serve.log")
        refused = open(guard_log).read().strip() if os.path.exists(guard_log) else ""
        if refused:
            fail(f"yard tried to reach hosts outside loopback: {refused}")
        if done.returncode != 0:
            fail(f"schemathesis found problems (exit {done.returncode}); the report is in {os.path.relpath(REPORT, REPO)}/")
        print(f"api-fuzz: ok in {time.time() - started:.0f} s")
    finally:
        stop(serve)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
