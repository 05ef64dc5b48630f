#!/usr/bin/env python3
"""The README as a test: runs every command of README.md's command blocks, as
written, in a fresh $YARD_HOME against the provider stand-ins on loopback,
and fails on any command that errors or whose output differs from the
output the README shows.

What it reads: indented (4-space) blocks and fenced blocks without a language
(or sh/bash/console). In a block whose lines start with `$ `, those lines are
commands and the lines under each are its expected output; in other blocks
every line is a command. A line ending in `\\` continues on the next; `  # …`
ends a line with a comment.

README notation it understands (and the README keeps to):
  [--flag value]   optional part: the check runs the command with it
  JOB, RUN         the newest job / pipeline run (`yard jobs list`, `yard runs list`)
  …                in expected output: any text; a line of only … : any lines
Everything else the README says is run literally, after the substitutions in
the tables below (ports, keys, the few real-account values), which are the
only differences between what the README says and what runs.

Run by scripts/readme-check.sh (in a private network namespace when it can,
so nothing but loopback is reachable), which scripts/test.sh runs.
"""
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# --- 1. Ports: every port the README names becomes a free one, so several
# checks (and a developer's own stand-ins) can run on one machine at once.
PORTS = {8787: "runpod", 8788: "fal", 8789: "hf", 8188: "comfyui", 8790: "serve", 8791: "stripe", 8792: "kling", 8793: "modal"}

# --- 2. Stand-ins the README mentions only in prose: started before the first
# command, with these arguments (port substituted like any README port).
EXTRA_SERVERS = [
    "yard standin fal --port 8788",
    "yard standin kling --port 8792",
    "yard standin modal --port 8793",
    "yard standin stripe --port 8791",
    # The Hub stand-in also serves the repos the README pulls.
    "yard standin hf --port 8789 --repo stabilityai/sdxl-turbo --repo black-forest-labs/FLUX.1-schnell",
]

# --- 3. Engine configs a user pointing yard at the stand-ins has (what each
# `yard standin …` banner prints), written before the first command, so that no
# command can reach a real provider. README commands that set config later
# overwrite them with the README's own (substituted) values.
def standin_configs(url):
    return {
        "runpod": {"endpoint_id": "standin-endpoint", "base_url": f"{url['runpod']}/v2", "rest_url": f"{url['runpod']}/rest/v1"},
        "fal": {"queue_url": url["fal"], "rest_url": url["fal"], "webhook_jwks_url": f"{url['fal']}/.well-known/jwks.json"},
        "comfyui": {"base_url": url["comfyui"]},
        "kling": {"base_url": url["kling"]},
        "modal": {"app_url": url["modal"]},
        "huggingface": {"hub_url": url["hf"], "router_url": url["hf"]},
        "stripe-billing": {"base_url": url["stripe"]},
    }

# --- 4. Substitutions in commands: README text → what runs (literal, in order).
def substitutions(url, files):
    return [
        # Secrets the README pipes in from your environment: the stand-ins' keys.
        ('"$FAL_KEY"', "'fal-standin-key:secret'"),
        ('"$RUNPOD_API_KEY"', "'rpa_STANDIN_KEY_0000000000'"),
        ('"$HF_TOKEN"', "'hf_STANDIN_read_token_000000000000'"),
        ('"$CIVITAI_TOKEN"', "'civitai-standin-token'"),
        ('"$KLING_ACCESS_KEY"', "'ak_standin_0000000000'"),
        ('"$KLING_SECRET_KEY"', "'sk_standin_secret_0000000000'"),
        ('"$STRIPE_API_KEY"', "'sk_test_STANDIN_0000000000000000'"),
        ("printf %s wk-… ", "printf %s wk-standin0000 "),
        ("printf %s ws-… ", "printf %s ws-standin0000secret "),
        ("printf %s ak-… ", "printf %s ak-standin "),
        ("printf %s as-… ", "printf %s as-standin "),
        # Values of a real account: the stand-ins'.
        ("endpoint_id=abc123xyz", f"endpoint_id=standin-endpoint base_url={url['runpod']}/v2 rest_url={url['runpod']}/rest/v1"),
        ("app_url=https://you--switchyard-web.modal.run", f"app_url={url['modal']}"),
        # "a file an earlier job produced": photo.png, stored by `yard artifacts put photo.png`.
        ("sha256:…", "sha256:" + files["photo.png.sha256"]),
    ]

# --- 5. Files the README's commands name, made in the work folder from Registry/samples.
def make_files(work, home, bin_dir, env):
    samples = os.path.join(REPO, "Registry", "samples")
    os.symlink(os.path.join(REPO, "Registry"), os.path.join(work, "Registry"))
    for name, source in [("ref.png", "product.png"), ("photo.png", "product.png"), ("first.png", "portrait.png"), ("clip.mp4", "clip.mp4")]:
        shutil.copy(os.path.join(samples, source), os.path.join(work, name))
    for name, source in [("product.jpg", "product.png"), ("me.jpg", "portrait.png")]:
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", os.path.join(samples, source), os.path.join(work, name)], check=True)
    shutil.copy(os.path.join(REPO, "Tests", "Fixtures", "readme", "workflow_api.json"), os.path.join(work, "workflow_api.json"))
    # my-pipeline.yaml is the pipeline the README shows.
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        yaml_blocks = re.findall(r"```yaml\n(.*?)```", f.read(), re.S)
    with open(os.path.join(work, "my-pipeline.yaml"), "w") as f:
        f.write(yaml_blocks[0])
    # acme.yardpkg: a plugin (the C reference one, as id "acme") signed by the publisher Acme;
    # acme.public.json: Acme's public key; tampered.yardpkg: the same package altered after signing.
    private = os.path.join(work, ".publisher")
    subprocess.run([os.path.join(bin_dir, "yard"), "plugin", "keygen", "--publisher", "Acme", "--out", private], check=True, env=env, stdout=subprocess.DEVNULL)
    shutil.copy(os.path.join(private, "acme.public.json"), os.path.join(work, "acme.public.json"))
    with open(os.path.join(REPO, "Plugins", "c-minimal", "plugin.json")) as f:
        manifest = json.load(f)
    manifest["id"], manifest["name"] = "acme", "Acme"
    with open(os.path.join(private, "plugin.json"), "w") as f:
        json.dump(manifest, f)
    subprocess.run([os.path.join(bin_dir, "yard"), "plugin", "pack", "--manifest", os.path.join(private, "plugin.json"),
                    "--library", os.path.join(bin_dir, "libSyCMinimal.so"), "--out", os.path.join(work, "acme.yardpkg"),
                    "--key", os.path.join(private, "acme.private.json")], check=True, env=env, stdout=subprocess.DEVNULL)
    with zipfile.ZipFile(os.path.join(work, "acme.yardpkg")) as source, zipfile.ZipFile(os.path.join(work, "tampered.yardpkg"), "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "plugin.json":
                altered = json.loads(data)
                altered["description"] = "now with extra features"
                data = json.dumps(altered).encode()
            target.writestr(item, data)
    with open(os.path.join(private, "acme.public.json")) as f:
        key_id = json.load(f).get("key_id", "")
    # Files you put in $YARD_HOME/models/local/studio/house-style (for `models pull local:…`).
    local = os.path.join(home, "models", "local", "studio", "house-style")
    os.makedirs(local)
    with open(os.path.join(local, "house-style.safetensors"), "wb") as f:
        f.write(b"\x00" * 4096)
    with open(os.path.join(work, "photo.png"), "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return {"photo.png.sha256": digest, "acme.key_id": key_id}

# --- 6. Substitutions in the output the README shows (values that differ per run).
def expected_substitutions(files):
    return [("1cddf6f9d2269a61", files["acme.key_id"])]

# --- 7. Commands the check does not run, and why. Keep this short.
SKIPPED = [
    (r"^scripts/test\.sh", "it is what runs this check"),
    (r"^cd acme-images|acme-images\.yardpkg|plugin test acme-images",
     "the scaffold's own `swift build` (a minute of compiling); scripts/e2e-plugin-author.sh runs this flow in CI"),
    (r"^pip install modal|^modal |modal deploy|modal\.deploy", "needs a Modal account and the Modal CLI (the conformance kit runs modal.deploy with dry_run=true)"),
    (r"^yard jobs resolve JOB", "needs a job parked by a crash mid-submit; ParkedJobTests runs both forms against a stand-in"),
]

# --- 8. Commands whose README line another issue is changing: run, and a
# failure is reported but does not fail the check. The lead removes an entry
# when that work lands (the check says when an entry is no longer needed).
PENDING = [
]

# --- 9. How commands run: a fresh $YARD_HOME, the work folder as the current
# directory, yard on PATH, the stand-in Hub as HF_ENDPOINT/CIVITAI_ENDPOINT, no
# terminal. Scripts run in the checkout, with their own fresh home and output.
TIMEOUT = 420


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def readme_blocks(text):
    """(first line number, [(line number, text)]) for each command block."""
    lines = text.split("\n")
    blocks, i = [], 0
    while i < len(lines):
        line = lines[i]
        fence = re.match(r"^```(\w*)\s*$", line)
        if fence:
            body, j = [], i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                body.append((j + 1, lines[j]))
                j += 1
            if fence.group(1) in ("", "sh", "bash", "shell", "console"):
                blocks.append(body)
            i = j + 1
            continue
        if line.startswith("    ") and (i == 0 or lines[i - 1].strip() == ""):
            body = []
            while i < len(lines) and (lines[i].startswith("    ") or (lines[i].strip() == "" and i + 1 < len(lines) and lines[i + 1].startswith("    "))):
                body.append((i + 1, lines[i][4:]))
                i += 1
            blocks.append(body)
            continue
        i += 1
    return blocks


def strip_comment(text):
    quote = None
    for k, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (k == 0 or text[k - 1] in " \t"):
            return text[:k].rstrip()
    return text.rstrip()


def commands(block):
    """[{line, text, expected}] of one block."""
    prompts = any(t.startswith("$ ") for _, t in block)
    entries, pending, first = [], "", None
    for number, raw in block:
        if prompts:
            if raw.startswith("$ "):
                entries.append({"line": number, "text": strip_comment(raw[2:]), "expected": []})
            elif entries and raw.strip():
                entries[-1]["expected"].append(raw.rstrip())
            continue
        if not raw.strip():
            continue
        first = first or number
        text = pending + raw.strip()
        if text.endswith("\\"):
            pending = text[:-1].rstrip() + " "
            continue
        pending = ""
        text = strip_comment(text)
        if text:
            entries.append({"line": first, "text": text, "expected": None})
        first = None
    return entries


def expected_matches(expected, actual):
    patterns = [None if e.strip() == "…" else re.compile("^" + ".*".join(re.escape(part) for part in e.rstrip().split("…")) + "$") for e in expected]

    def match(i, j):
        if i == len(patterns):
            return j == len(actual)
        if patterns[i] is None:
            return any(match(i + 1, k) for k in range(j, len(actual) + 1))
        return j < len(actual) and patterns[i].match(actual[j]) is not None and match(i + 1, j + 1)

    return match(0, 0)


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|\r")


class Check:
    def __init__(self, bin_dir):
        self.bin_dir = bin_dir
        self.root = tempfile.mkdtemp(prefix="yard-readme-")
        self.work = os.path.join(self.root, "work")
        self.home = os.path.join(self.root, "home")
        os.makedirs(self.work)
        os.makedirs(self.home)
        self.ports = {readme: free_port() for readme in PORTS}
        self.url = {name: f"http://127.0.0.1:{self.ports[readme]}" for readme, name in PORTS.items()}
        self.env = dict(os.environ)
        self.env.update({
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
            "YARD_HOME": self.home,
            "YARD_PLUGIN_PATH": "",
            "HOME": os.path.join(self.root, "user"),
            "HF_ENDPOINT": self.url["hf"],
            "CIVITAI_ENDPOINT": self.url["hf"],
            "COLUMNS": "100",
        })
        for name in ["FAL_KEY", "RUNPOD_API_KEY", "HF_TOKEN", "CIVITAI_TOKEN", "KLING_ACCESS_KEY", "KLING_SECRET_KEY", "STRIPE_API_KEY",
                     "MODAL_KEY", "MODAL_SECRET", "YARD_REGISTRY", "YARD_SECRET_KEY", "OUT", "SCRIPT", "HF_HUB_OFFLINE"]:
            self.env.pop(name, None)
        os.makedirs(self.env["HOME"])
        self.servers = []
        self.results = []

    def sub_ports(self, text):
        return re.sub(r"\b(" + "|".join(str(p) for p in PORTS) + r")\b", lambda m: str(self.ports[int(m.group(1))]), text)

    def newest(self, noun):
        out = subprocess.run(["yard", noun, "list", "--json", "--limit", "1"], env=self.env, cwd=self.work, capture_output=True, text=True)
        try:
            rows = json.loads(out.stdout)
            return rows[0]["id"] if rows else None
        except (ValueError, KeyError, IndexError):
            return None

    def prepare(self, text):
        for old, new in self.subs:
            text = text.replace(old, new)
        text = self.sub_ports(text)
        text = re.sub(r"\[(--[^\]]*)\]", r"\1", text)
        for placeholder, noun in [("JOB", "jobs"), ("RUN", "runs")]:
            if re.search(rf"\b{placeholder}\b", text):
                text = re.sub(rf"\b{placeholder}\b", self.newest(noun) or f"(no {noun} yet)", text)
        return text

    def start_server(self, readme_text, line):
        command = self.prepare(readme_text)
        log = open(os.path.join(self.root, f"server-{len(self.servers)}.log"), "w+")
        process = subprocess.Popen(["bash", "-c", "exec " + command], env=self.env, cwd=self.work, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        self.servers.append((process, log))
        deadline = time.time() + 60
        while time.time() < deadline:
            log.seek(0)
            banner = log.read()
            if re.search(r"(listening on|stand-in on) http://127\.0\.0\.1:\d+", banner):
                self.results.append(("ok", line, readme_text, "started: " + banner.splitlines()[0]))
                return True
            if process.poll() is not None:
                break
            time.sleep(0.1)
        log.seek(0)
        self.results.append(("FAIL", line, readme_text, "did not start:\n" + log.read()[-2000:]))
        return False

    def run_command(self, entry):
        readme_text = entry["text"]
        for pattern, reason in SKIPPED:
            if re.search(pattern, readme_text):
                self.results.append(("skip", entry["line"], readme_text, reason))
                return
        command = self.prepare(readme_text)
        env, cwd = dict(self.env), self.work
        if command.startswith("scripts/"):
            cwd = REPO
            env["YARD_HOME"] = tempfile.mkdtemp(prefix="home-", dir=self.root)
            env["OUT"] = os.path.join(self.root, "demo-out")
        started = time.time()
        try:
            done = subprocess.run(["bash", "-c", "set -o pipefail\n" + command], env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=TIMEOUT)
            status, output = done.returncode, done.stdout.decode("utf-8", "replace")
        except subprocess.TimeoutExpired as timeout:
            status, output = None, (timeout.stdout or b"").decode("utf-8", "replace")
        elapsed = time.time() - started
        lines = [ANSI.sub("", l).rstrip() for l in output.split("\n")]
        while lines and not lines[-1]:
            lines.pop()
        problem = None
        expected = entry["expected"]
        wanted_status = 1 if expected and expected[0].startswith("error[") else 0
        if status is None:
            problem = f"did not finish in {TIMEOUT} s"
        elif status != wanted_status:
            problem = f"exit status {status}, expected {wanted_status}"
        elif expected:
            shown = expected
            for old, new in self.expected_subs:
                shown = [e.replace(old, new) for e in shown]
            shown = [self.sub_ports(e) for e in shown]
            if not expected_matches(shown, lines):
                problem = "output differs from the README:\n  README:\n    " + "\n    ".join(shown)
        pending = next((reason for pattern, reason in PENDING if re.search(pattern, readme_text)), None)
        detail = f"{elapsed:.1f} s" + ("" if command == readme_text else f"; ran: {command}")
        if problem:
            detail = problem + "\n  " + detail + "\n  output:\n    " + "\n    ".join(lines[-40:])
            self.results.append(("pending" if pending else "FAIL", entry["line"], readme_text, (pending + "; " if pending else "") + detail))
        else:
            self.results.append(("ok", entry["line"], readme_text, detail + ("; PENDING entry no longer needed: " + pending if pending else "")))

    def driver_running(self):
        """Whether a background driver still holds the store (`yard serve`,
        which drives the store for as long as it runs, does not count)."""
        path = os.path.join(self.home, "driver.lock")
        if not os.path.exists(path):
            return False
        with open(path) as f:
            holder = f.read().strip()
            if holder.isdigit() and int(holder) in {process.pid for process, _ in self.servers}:
                return False
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
                fcntl.flock(f, fcntl.LOCK_UN)
                return False
            except BlockingIOError:
                return True

    def stop(self):
        for process, log in self.servers:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process, log in self.servers:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
            log.close()

    def run(self, readme):
        files = make_files(self.work, self.home, self.bin_dir, self.env)
        self.subs = substitutions(self.url, files)
        self.expected_subs = expected_substitutions(files)
        config = os.path.join(self.home, "config")
        os.makedirs(config, exist_ok=True)
        for engine, values in standin_configs(self.url).items():
            with open(os.path.join(config, f"{engine}.json"), "w") as f:
                json.dump(values, f)
        entries = [e for block in readme_blocks(readme) for e in commands(block)]
        server = re.compile(r"^yard (standin \S+|serve)\b")
        try:
            for text in EXTRA_SERVERS:
                self.start_server(text, 0)
            for entry in entries:
                if server.match(entry["text"]):
                    self.start_server(entry["text"], entry["line"])
            for entry in entries:
                if not server.match(entry["text"]):
                    self.run_command(entry)
            # The background driver `--detach` started ends once nothing is left to do.
            deadline = time.time() + 60
            while self.driver_running() and time.time() < deadline:
                time.sleep(0.5)
            if self.driver_running():
                self.results.append(("FAIL", 0, "(background driver)", "still running 60 s after the last command"))
        finally:
            self.stop()
        return self.results


def main():
    bin_dir = sys.argv[1]
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    check = Check(bin_dir)
    results = check.run(readme)
    counts = {}
    for state, line, text, detail in results:
        counts[state] = counts.get(state, 0) + 1
        where = f"README:{line}" if line else "setup"
        print(f"{state:7} {where:11} {text}")
        if state != "ok" or "PENDING entry" in detail:
            print("        " + detail.replace("\n", "\n        "))
    print(", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    if counts.get("FAIL"):
        print(f"work folder kept for inspection: {check.root}")
        sys.exit(1)
    shutil.rmtree(check.root, ignore_errors=True)


if __name__ == "__main__":
    main()
