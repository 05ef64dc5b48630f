"""What scripts/api-fuzz.py and scripts/browser-check.py share: stopping the
processes a check started, gently first."""
import subprocess


def stop(*children):
    """Ends each child: SIGTERM, then SIGKILL if it has not exited within 10 s."""
    for child in children:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
