#!/usr/bin/env python3
"""The page `yard serve` serves, in real headless Chromium (Debian's chromium
and chromium-driver, driven with Selenium): a newcomer's first session.

In a fresh $YARD_HOME with the RunPod stand-in on loopback: create an admin
token, open the page, enter the token, connect the runpod engine on its
stand-in (masked key entry; Test Connection says OK and shows the balance),
run the keyless UGC preset from its generated form (product photo upload, a
script), watch the run's progress to the end, then play the clip in the
gallery (the <video> loads metadata with a duration > 0). The same page at
360 px wide must not scroll sideways. Screenshots go to
.build/browser-screenshots/ (kept for a human to look at).

A server, stand-in or browser that fails to start fails the check; nothing is
skipped. Every engine config points at loopback and yard runs with its
network guard, so nothing leaves the machine (scripts/browser-check.sh also
runs this in a private network namespace when it can).

Usage: scripts/browser-check.py BIN_DIR   (scripts/browser-check.sh finds it)
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_check_support import stop  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHOTS = os.path.join(REPO, ".build", "browser-screenshots")
RUNPOD_KEY = "rpa_STANDIN_KEY_0000000000"
SCRIPT = "Cold water, all day long."


def fail(message):
    print(f"browser-check: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def read_until(stream, pattern, seconds, what):
    """A child's pipe, line by line, until a line matches; fails after `seconds`."""
    deadline, buffer = time.time() + seconds, b""
    fd = stream.fileno()
    while time.time() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buffer += chunk
        for line in buffer.decode("utf-8", "replace").splitlines():
            match = re.search(pattern, line)
            if match:
                return match
    fail(f"{what} did not start: {' | '.join(buffer.decode('utf-8', 'replace').splitlines()[-5:]) or 'no output'}")


def main():
    if len(sys.argv) != 2:
        fail("usage: browser-check.py BIN_DIR")
    bin_dir = sys.argv[1]
    yard = os.path.join(bin_dir, "yard")
    for tool in ["chromium", "chromedriver", "ffmpeg", "espeak-ng"]:
        if not shutil.which(tool):
            fail(f"{tool} is not installed (sudo apt-get install -y chromium chromium-driver ffmpeg espeak-ng; .ci/run installs them)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.support.ui import Select, WebDriverWait
    except ImportError:
        fail("selenium is not installed (python3 -m pip install selenium; .ci/run installs it)")

    os.makedirs(SHOTS, exist_ok=True)
    for old in os.listdir(SHOTS):
        os.remove(os.path.join(SHOTS, old))
    work = tempfile.mkdtemp(prefix="yard-browser-")
    home = os.path.join(work, "home")
    guard_log = os.path.join(work, "network-guard.log")
    env = dict(os.environ, YARD_HOME=home, YARD_PLUGIN_PATH="", YARD_NETWORK_GUARD="loopback", YARD_NETWORK_GUARD_LOG=guard_log)
    children, driver = [], None

    def run(*args, stdin=None):
        done = subprocess.run([yard, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            fail(f"yard {' '.join(args[:3])} exited {done.returncode}: {done.stderr.strip()[-400:]}")
        return done.stdout

    started = time.time()
    try:
        # Engines without a stand-in here point at a closed loopback port: a health check never leaves the machine.
        dead = "http://127.0.0.1:9"
        os.makedirs(os.path.join(home, "config"), exist_ok=True)
        for engine, config in {
            "fal": {"queue_url": dead, "rest_url": dead, "webhook_jwks_url": dead + "/.well-known/jwks.json"},
            "kling": {"base_url": dead}, "modal": {"app_url": dead}, "comfyui": {"base_url": dead},
            "huggingface": {"hub_url": dead, "router_url": dead}, "stripe-billing": {"base_url": dead},
        }.items():
            with open(os.path.join(home, "config", f"{engine}.json"), "w") as f:
                json.dump(config, f)

        # The provider to connect: RunPod's stand-in, pointed at as its banner says.
        standin = subprocess.Popen([yard, "standin", "runpod", "--port", "0"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        children.append(standin)
        config_line = read_until(standin.stderr, r"yard config set runpod (.*)$", 20, "the RunPod stand-in").group(1).split()
        run("config", "set", "runpod", *config_line)

        serve_log = os.path.join(SHOTS, "serve.log")
        log = open(serve_log, "w")
        token = json.loads(run("tokens", "create", "--account", "acme", "--scope", "admin", "--name", "browser", "--json"))["token"]
        serve = subprocess.Popen([yard, "serve", "--port", "0"], env=env, stdout=subprocess.PIPE, stderr=log)
        children.append(serve)
        print(f"browser-check: yard serve's log: {serve_log}")
        base = read_until(serve.stdout, r"(http://127\.0\.0\.1:\d+)", 30, "yard serve").group(1)

        downloads = os.path.join(work, "downloads")
        os.makedirs(downloads)
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium")
        options.add_experimental_option("prefs", {"download.default_directory": downloads, "download.prompt_for_download": False})
        # CI runs as root, where Chromium's sandbox cannot start.
        for flag in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1800",
                     "--autoplay-policy=no-user-gesture-required", "--no-first-run", "--disable-background-networking", "--disable-sync",
                     "--disable-component-update", "--disable-default-apps", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]:
            options.add_argument(flag)
        try:
            driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        except Exception as error:  # the browser not starting fails the check
            fail(f"Chromium did not start: {str(error).splitlines()[0]}")
        driver.set_script_timeout(30)
        # The page re-renders rows and cards as work moves on: an element found a moment ago may be
        # replaced, so each wait (and `act`, for clicks and typing) looks it up again until it holds.
        wait = lambda seconds: WebDriverWait(driver, seconds, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,))

        def act(action, seconds=10):
            wait(seconds).until(lambda d: action() or True)
        shot = lambda name: driver.save_screenshot(os.path.join(SHOTS, name + ".png"))

        driver.get(base + "/")
        if driver.title != "Switchyard":
            fail(f"the page's title is {driver.title!r}")
        # Keyboard: the first Tab reaches the skip link, then the navigation; every control has a label; buttons are buttons.
        unlabelled = driver.execute_script("""return [...document.querySelectorAll('input, select, textarea')]
            .filter(e => e.type !== 'hidden' && !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.id || e.name)""")
        if unlabelled:
            fail(f"controls without a label: {unlabelled}")
        driver.find_element(By.TAG_NAME, "body").send_keys("\t")
        if driver.switch_to.active_element.get_attribute("class") != "skip":
            fail("the first Tab does not reach the skip link")

        # The token, once: it is kept in sessionStorage and the field is emptied.
        # Enter in the field submits it: the keyboard is enough.
        driver.find_element(By.ID, "token").send_keys(token + Keys.ENTER)
        if driver.find_element(By.ID, "token").get_attribute("value") != "":
            fail("the token field still shows the token")
        if driver.execute_script("return sessionStorage.getItem('yard-token')") != token:
            fail("the token is not kept in sessionStorage")

        # Setup Hub: connect RunPod with a masked key; Test Connection says OK with the stand-in's balance.
        key_field = wait(30).until(lambda d: d.find_element(By.ID, "secret-runpod-RUNPOD_API_KEY"))
        if key_field.get_attribute("type") != "password":
            fail("the key field is not masked")
        act(lambda: driver.find_element(By.ID, "secret-runpod-RUNPOD_API_KEY").send_keys(RUNPOD_KEY))
        shot("01-setup-hub")
        act(lambda: driver.find_element(By.CSS_SELECTOR, "#provider-runpod button[type=submit]").click())
        result = wait(30).until(lambda d: (t := d.find_element(By.ID, "connect-result-runpod").text) and t != "Testing…" and t)
        if not result.startswith("Connection OK"):
            fail(f"Test Connection on the stand-in: {result}")
        if "balance:" not in result or "n/a" in result:
            fail(f"no balance after connecting: {result}")
        if RUNPOD_KEY in driver.page_source:
            fail("the key is shown on the page after it was stored")
        ffmpeg_card = driver.find_element(By.ID, "local-local-media").text
        if "ok" not in ffmpeg_card.split("\n")[1]:
            fail(f"the ffmpeg card does not say ok: {ffmpeg_card}")
        health = driver.find_element(By.ID, "health-runpod").text
        if "ok" not in health:
            fail(f"the healthcheck matrix does not show runpod ok: {health}")
        shot("02-connected")

        # Export diagnostics: a download of the redacted bundle, with the key just stored nowhere in it.
        driver.find_element(By.ID, "export-diagnostics").click()
        wait(60).until(lambda d: d.find_element(By.ID, "diagnostics-status").text.startswith("Saved"))
        bundle = wait(20).until(lambda d: [f for f in os.listdir(downloads) if f.startswith("yard-diagnostics-") and f.endswith(".json")])
        with open(os.path.join(downloads, bundle[0])) as f:
            text = f.read()
        if RUNPOD_KEY in text or token in text:
            fail("the diagnostics bundle holds a secret")
        states = {s["name"]: s["state"] for s in json.loads(text)["secrets"]}
        if states.get("RUNPOD_API_KEY") != "set (vault)":
            fail(f"the diagnostics bundle does not say the key is set: {states}")

        # Presets: the UGC preset's form, a plan preview with each step's engine, then run.
        Select(driver.find_element(By.ID, "preset-select")).select_by_value("ugc-product-clip")
        wait(10).until(lambda d: d.find_elements(By.ID, "input-product_image"))
        driver.find_element(By.ID, "input-product_image").send_keys(os.path.join(REPO, "Registry", "samples", "product.png"))
        driver.find_element(By.ID, "input-script").send_keys(SCRIPT)
        driver.find_element(By.ID, "plan-button").click()
        wait(60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#plan-table .plan-step"))
        engines = {row.find_element(By.TAG_NAME, "th").text: row.find_element(By.CSS_SELECTOR, ".plan-engine").text
                   for row in driver.find_elements(By.CSS_SELECTOR, "#plan-table .plan-step")}
        if engines.get("speech") != "local-speech" or engines.get("motion") != "local-media" or engines.get("export") != "local-media":
            fail(f"the plan does not run on the local engines: {engines}")
        if "ready to run" not in driver.find_element(By.ID, "plan").text:
            fail(f"the plan is not ready: {driver.find_element(By.ID, 'plan').text[:400]}")
        shot("03-plan")
        driver.find_element(By.ID, "run-button").click()
        run_row = wait(30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#run-rows tr"))[0]
        run_id = run_row.get_attribute("id")[4:]
        driver.execute_script("document.getElementById('jobs').scrollIntoView()")
        # Progress: the run's steps advance (seen at least once part-way), then it succeeds.
        seen_progress, deadline = set(), time.time() + 240
        while time.time() < deadline:
            # One read of the row as it is now (the page replaces it as the run moves on).
            row = driver.execute_script("""const r = document.getElementById('run-' + arguments[0]);
                return r && [r.dataset.state, r.querySelector('progress').value, r.innerText]""", run_id)
            if row:
                state, done, text = row
                seen_progress.add(done)
                if state in ("failed", "cancelled", "needs_attention"):
                    shot("04-run-failed")
                    fail(f"run {run_id} {state}: {text}")
                if state == "succeeded":
                    break
                if len(seen_progress) == 2:
                    shot("04-run-progress")
            time.sleep(0.3)
        else:
            shot("04-run-timeout")
            fail(f"run {run_id} did not finish in 240 s")
        if len(seen_progress) < 2:
            fail(f"no progress was shown while the run ran (step counts seen: {sorted(seen_progress)})")
        live_jobs = driver.find_elements(By.CSS_SELECTOR, "#job-rows tr[data-state=succeeded]")
        if len(live_jobs) < 4:
            fail(f"the jobs table shows {len(live_jobs)} finished step jobs")
        shot("05-run-succeeded")

        # Logs of the run's last job, from the jobs table.
        export_job = driver.execute_script("""return [...document.querySelectorAll('#job-rows tr')].find(r => r.innerText.includes('video.export')).id.slice(4)""")
        act(lambda: driver.find_element(By.CSS_SELECTOR, f"button[aria-label='Logs of {export_job}']").click())
        wait(20).until(lambda d: "succeeded" in d.find_element(By.ID, "logs").text)
        if driver.switch_to.active_element.get_attribute("id") != "logs-h":
            fail("opening the logs does not move the focus to them")
        driver.find_element(By.ID, "logs-close").click()

        # Gallery: the newest video is the exported clip; its poster loads, and it plays.
        digest = wait(30).until(lambda d: d.execute_script("const c = document.querySelector('.gallery-item[data-kind=video]'); return c && c.dataset.artifact"))
        card_css = f".gallery-item[data-artifact='{digest}']"
        wait(30).until(lambda d: d.execute_script("const i = document.querySelector(arguments[0] + ' img.thumbnail'); return i && i.complete && i.naturalWidth > 0", card_css))
        act(lambda: driver.execute_script("document.querySelector(arguments[0]).scrollIntoView()", card_css))
        act(lambda: driver.find_element(By.CSS_SELECTOR, card_css + " button.play").send_keys(Keys.ENTER))
        duration = wait(60).until(lambda d: d.execute_script("""const v = document.querySelector(arguments[0] + ' video');
            return v && v.readyState >= 1 && v.duration > 0 ? v.duration : null""", card_css))
        playing = driver.execute_async_script("""const v = document.querySelector(arguments[0] + ' video'), done = arguments[arguments.length - 1];
            v.muted = true; v.play().then(() => setTimeout(() => done(v.currentTime), 800)).catch(e => done('play failed: ' + e));""", card_css)
        if not isinstance(playing, (int, float)) or playing <= 0:
            fail(f"the clip did not play: {playing}")
        video_card = driver.find_element(By.CSS_SELECTOR, card_css)
        made_by = video_card.text
        if "made by job_" not in made_by:
            fail(f"the gallery item does not name its job: {made_by}")
        shot("06-gallery-playing")
        print(f"browser-check: clip plays ({duration:.2f} s long, at {playing:.2f} s after 0.8 s)")

        # 360 px wide: nothing scrolls sideways, and every button stays reachable.
        driver.set_window_size(360, 800)
        driver.get(base + "/")
        wait(30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".gallery-item"))
        overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        if overflow > 1:
            wide = driver.execute_script("""return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > window.innerWidth + 1
                && !e.closest('.scroll')).slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className)""")
            fail(f"the page scrolls sideways at 360 px by {overflow} px: {wide}")
        shot("07-narrow-360-top")
        driver.execute_script("document.getElementById('gallery').scrollIntoView()")
        shot("08-narrow-360-gallery")
        with open(guard_log) if os.path.exists(guard_log) else open(os.devnull) as f:
            refused = f.read().strip()
        if refused:
            fail(f"yard tried to reach hosts outside loopback: {refused}")
        print(f"browser-check: ok in {time.time() - started:.0f} s; screenshots in {os.path.relpath(SHOTS, REPO)}/")
    finally:
        if driver is not None:
            driver.quit()
        stop(*children)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
