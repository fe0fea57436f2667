"""The Procfile and the systemd units in deploy/ run what the README's Production section says, and
deploy/env.example names exactly the variables of its Configuration table."""

import configparser
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from portal.config import load_config

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
CHECKOUT = "/opt/invoice-sync"  # where the units expect the checkout, its .venv inside
VENV_BIN = Path(sys.executable).parent  # this checkout's .venv/bin, standing in for the units' one
# Values env.example sets for production; every other variable it sets to the default.
PRODUCTION_VALUES = {"SECRET_KEY", "ENCRYPTION_KEYS", "DATABASE_URL", "REDIS_URL", "INSTANCE_PATH",
                     "TRUSTED_PROXIES", "FORCE_HTTPS", "PUBLIC_BASE_URL"}


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def readme_command(starts_with: str) -> list[str]:
    """The one command in the README's Production section that starts with `starts_with`."""
    found = [span for span in re.findall(r"`([^`]+)`", readme_section("Production")) if span.startswith(starts_with)]
    assert len(set(found)) == 1, found
    return shlex.split(found[0])


def procfile() -> dict[str, list[str]]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, command = line.split(":", 1)
            entries[name.strip()] = shlex.split(command)
    return entries


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd's keys are case-sensitive
    parser.read_string((DEPLOY / name).read_text())
    return parser


def env_example() -> dict[str, str]:
    """deploy/env.example as systemd's EnvironmentFile= reads it (double quotes around a value dropped)."""
    values = {}
    for line in (DEPLOY / "env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, value = line.split("=", 1)
            values[name.strip()] = value[1:-1] if value[:1] == value[-1:] == '"' and len(value) > 1 else value
    return values


def configuration_table_names() -> set[str]:
    names = set()
    for row in readme_section("Configuration").splitlines():
        if row.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1]))
    return names


def seconds(span: str) -> float:
    value, unit_name = re.fullmatch(r"(\d+)\s*(s|sec|min)?", span).groups()
    return int(value) * (60 if unit_name == "min" else 1)


def test_the_readme_names_the_commands():
    assert readme_command("gunicorn ") == ["gunicorn", "wsgi:app", "--workers", "4", "--threads", "4"]
    assert readme_command("python worker.py") == ["python", "worker.py"]
    assert readme_command("flask --app wsgi db upgrade") == ["flask", "--app", "wsgi", "db", "upgrade"]


def test_the_procfile_runs_the_readme_commands():
    assert procfile() == {
        "release": readme_command("flask --app wsgi db upgrade"),
        "web": readme_command("gunicorn ") + ["--bind", "0.0.0.0:$PORT"],
        "worker": readme_command("python worker.py"),
    }


def test_the_web_unit_runs_the_readme_commands_from_the_venv():
    service = unit("invoice-sync-web.service")["Service"]
    gunicorn, flask = readme_command("gunicorn "), readme_command("flask --app wsgi db upgrade")
    assert shlex.split(service["ExecStart"]) == [
        f"{CHECKOUT}/.venv/bin/gunicorn", *gunicorn[1:], "--bind", "127.0.0.1:8000"]
    assert shlex.split(service["ExecStartPre"]) == [f"{CHECKOUT}/.venv/bin/flask", *flask[1:]]  # migrations first
    assert service["Restart"] == "always"


def test_the_worker_unit_is_a_template_that_runs_python_worker_py_and_comes_back_quickly():
    service = unit("invoice-sync-worker@.service")["Service"]
    worker = readme_command("python worker.py")
    assert shlex.split(service["ExecStart"]) == [f"{CHECKOUT}/.venv/bin/python", *worker[1:]]
    assert service["Restart"] == "always"
    assert seconds(service["RestartSec"]) <= 5
    assert seconds(service["TimeoutStopSec"]) > 600  # SIGTERM lets a job (timeout 10 minutes) finish
    assert "%i" in unit("invoice-sync-worker@.service")["Unit"]["Description"]


@pytest.mark.parametrize("name", ["invoice-sync-web.service", "invoice-sync-worker@.service"])
def test_each_unit_runs_as_a_dedicated_user_writing_only_to_the_instance_folder(name):
    parsed = unit(name)
    service = parsed["Service"]
    assert service["User"] == service["Group"] == "invoice-sync"
    assert service["WorkingDirectory"] == CHECKOUT
    assert service["EnvironmentFile"] == "/etc/invoice-sync/env"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["PrivateTmp"] == "yes"  # gunicorn's heartbeat files; /tmp is read-only otherwise
    assert service["ReadWritePaths"] == env_example()["INSTANCE_PATH"]
    assert parsed["Install"]["WantedBy"] == "multi-user.target"


def test_the_commands_the_units_run_exist(tmp_path):
    for program in ("gunicorn", "flask", "python"):
        assert (VENV_BIN / program).exists(), program
    assert (ROOT / "worker.py").exists() and (ROOT / "wsgi.py").exists()
    env = {**os.environ, "INSTANCE_PATH": str(tmp_path)}
    gunicorn = readme_command("gunicorn ")
    # --check-config parses the flags and loads wsgi:app, then exits.
    subprocess.run([VENV_BIN / "gunicorn", *gunicorn[1:], "--bind", "127.0.0.1:0", "--check-config"],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=60)
    subprocess.run([VENV_BIN / "flask", *readme_command("flask --app wsgi db upgrade")[1:], "--help"],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=60)


def test_env_example_names_exactly_the_readme_configuration_table():
    assert set(env_example()) == configuration_table_names()
    assert len(configuration_table_names()) >= 20


def test_env_example_sets_the_defaults_except_for_production_values(tmp_path, monkeypatch):
    example = env_example()
    for name in example:
        monkeypatch.delenv(name, raising=False)
    defaults = load_config(str(tmp_path))
    for name, value in example.items():
        if name not in PRODUCTION_VALUES:
            monkeypatch.setenv(name, value)
    assert load_config(str(tmp_path)) == defaults
    for name in PRODUCTION_VALUES - {"INSTANCE_PATH"}:
        monkeypatch.setenv(name, example[name])
    production = load_config(str(tmp_path))
    assert production["FORCE_HTTPS"] is True and production["TRUSTED_PROXIES"] == 1
    assert production["SESSION_COOKIE_SECURE"] is True
    assert production["SECRET_KEY"] and production["ENCRYPTION_KEYS"]  # empty: generated into the instance folder
    assert "CHANGE-ME" in production["SQLALCHEMY_DATABASE_URI"] and "CHANGE-ME" in production["REDIS_URL"]


def test_the_readme_and_deploy_readme_point_at_files_that_exist():
    production = readme_section("Production")
    for name in ("Procfile", "deploy/invoice-sync-web.service", "deploy/invoice-sync-worker@.service",
                 "deploy/env.example", "deploy/README.md"):
        assert f"`{name}`" in production or name in production, name
        assert (ROOT / name).exists(), name
    assert "systemctl enable --now invoice-sync-worker@{1..2}" in production
    guide = (DEPLOY / "README.md").read_text()
    for mentioned in re.findall(r"deploy/[\w@.-]+", guide):
        assert (ROOT / mentioned).exists(), mentioned
    assert "systemctl enable --now invoice-sync-web invoice-sync-worker@{1..2}" in guide
