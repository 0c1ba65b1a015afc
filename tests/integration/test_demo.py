"""The README's run command shows the demo: it must complete, every time."""

from __future__ import annotations

import subprocess
import sys


def test_lgsp_demo_check_completes_every_journey() -> None:
    done = subprocess.run([sys.executable, "-m", "bus.cli", "demo", "--check",
                           "--timeout", "120"], capture_output=True, text=True, timeout=240)
    print(done.stdout[-1500:])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "every journey completed" in done.stdout
