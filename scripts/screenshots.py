"""Regenerate the README's screenshots from a real demo store, served and drawn in headless Chromium.

    make screenshots                       # a fresh small demo store in a temporary folder
    python scripts/screenshots.py --store DIR   # reuse a folder where `cldx init` and `cldx demo` ran

The pictures are of the real app on the demo data (nothing staged): the provider portal's home
page as the first demo provider's submitter, and the roll-out overview (an analyst's home page) as
the demo analyst, who types the one-time code the demo's TOTP secret gives. They are written to
docs/screenshots/ at a fixed viewport so a regeneration changes only what the app changed.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 900}
DEMO_TODAY = "2018-08-30"  # as the Makefile's demo target
DEMO_CLIENTS = 4_000  # enough for every report to have released figures; loads in well under a minute

# (file name, account kind, path): what the README shows.
SHOTS = (
    ("provider-home.png", "submitter", "/"),
    ("rollout-overview.png", "analyst", "/"),
)


def cldx(store: Path, *args: str) -> None:
    subprocess.run([str(Path(sys.executable).parent / "cldx"), *args], cwd=store, check=True)


def accounts(store: Path) -> dict[str, tuple[str, str]]:
    """username -> (password, TOTP secret or "") from the demo's accounts file."""
    found = {}
    for line in (store / "demo-data" / "accounts.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        parts = line.split()
        found[parts[0]] = (parts[1], parts[3] if len(parts) > 3 else "")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, server: subprocess.Popen, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"cldx serve stopped (exit {server.returncode})")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"cldx serve did not answer within {timeout_s:.0f} s")


def sign_in(page, base: str, username: str, password: str, secret: str) -> None:
    from cldx.access import totp

    page.goto(base + "/sign-in")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    if secret:
        page.get_by_label("Code").fill(totp.code_at(secret, totp.step_at(datetime.now(timezone.utc))))
        page.get_by_role("button", name="Sign in").click()
    page.locator("#signed-in-as").wait_for()


def shoot(store: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    people = accounts(store)
    submitter = next(name for name in sorted(people) if name.endswith(".submitter"))
    who = {"submitter": submitter, "analyst": "analyst"}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # Served as `make demo` serves it: as of the day after the demo's last submission.
    server = subprocess.Popen([str(Path(sys.executable).parent / "cldx"), "serve", "--port", str(port)], cwd=store,
                              env={**os.environ, "CLDX_TODAY": DEMO_TODAY}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    written = []
    try:
        wait_until_up(base, server)
        OUT.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            for file_name, kind, path in SHOTS:
                context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
                page = context.new_page()
                username = who[kind]
                sign_in(page, base, username, *people[username])
                page.goto(base + path)
                page.wait_for_load_state("networkidle")
                # Charts are drawn after load by charts.js: wait for each figure's SVG.
                for figure in page.locator("figure.chart").all():
                    figure.locator("svg").first.wait_for()
                target = OUT / file_name
                page.screenshot(path=str(target), full_page=False)
                written.append(target)
                context.close()
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="A folder where `cldx init` and `cldx demo` already ran (else a fresh one).")
    parser.add_argument("--clients", type=int, default=DEMO_CLIENTS, help="Clients in a fresh demo store.")
    args = parser.parse_args()
    for name in list(os.environ):
        if name.startswith("CLDX_"):
            del os.environ[name]  # the demo store's own defaults, relative to its folder
    if args.store is not None:
        written = shoot(args.store.resolve())
    else:
        with tempfile.TemporaryDirectory(prefix="cldx-screenshots-") as folder:
            store = Path(folder)
            cldx(store, "init")
            cldx(store, "demo", "--clients", str(args.clients))
            written = shoot(store)
    for path in written:
        print(f"wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
