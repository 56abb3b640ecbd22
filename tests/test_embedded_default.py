"""The README's first command works on a fresh machine with nothing configured: SQLite and a
filesystem broker. Runs migrate, seed_demo (twice: it is idempotent) and the web server."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _embedded_env(var_dir: Path) -> dict[str, str]:
    env = {
        key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "REDIS_URL"}
    }
    env.update({"CLINIC_VAR_DIR": str(var_dir), "DJANGO_SETTINGS_MODULE": "clinic.settings"})
    return env


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_migrate_seed_and_serve_on_sqlite(tmp_path: Path) -> None:
    env = _embedded_env(tmp_path)

    _manage(env, "migrate", "--noinput")
    first = _manage(env, "seed_demo")
    second = _manage(env, "seed_demo")

    database = sqlite3.connect(tmp_path / "clinic.sqlite3")
    counts = {
        table: database.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        for table in (
            "clinic_clinic",
            "clinic_room",
            "clinic_staffmember",
            "clinic_patient",
            "protocols_protocol",
        )
    }
    sessions = database.execute("SELECT count(*) FROM scheduling_session").fetchone()[0]
    assert counts == {
        "clinic_clinic": 1,
        "clinic_room": 9,
        "clinic_staffmember": 8,
        "clinic_patient": 20,
        "protocols_protocol": 4,
    }
    assert sessions > 100
    assert "frontdesk       demo-" in first
    assert "0 new session(s) booked" in second
    assert "frontdesk       (unchanged)" in second
    assert (tmp_path / "celery" / "queue").is_dir()

    _manage(env, "collectstatic", "--noinput", "--verbosity", "0")
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "clinic.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        body = ""
        for _ in range(100):
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/admin/login/", timeout=2
                ) as answer:
                    body = answer.read().decode()
                    break
            except OSError:
                time.sleep(0.1)
        assert "Log in" in body
    finally:
        server.terminate()
        server.wait(timeout=10)
