"""Imports point one way: launch → portal and doubles. The app package never imports the launchers or
the doubles, not even with the demo's configuration, whose button talks to the fake Stripe over HTTP."""

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTSIDE_THE_APP = ("doubles", "launch")


def imported_modules(path: Path) -> set[str]:
    """Every absolute module a source file imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.add(node.module)
    return found


def test_no_module_of_the_app_package_imports_the_launchers_or_the_doubles():
    offenders = {
        str(path.relative_to(ROOT)): sorted(name for name in imported_modules(path)
                                             if name.split(".")[0] in OUTSIDE_THE_APP)
        for path in sorted((ROOT / "portal").rglob("*.py"))
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_app_with_the_demo_configuration_loads_neither_the_doubles_nor_the_launchers(tmp_path):
    """A fresh interpreter, so nothing the test suite imported itself can hide an import."""
    script = textwrap.dedent("""
        import sys

        import portal
        import portal.demo_routes

        app = portal.create_app()
        assert "demo.send_invoice" in app.view_functions, sorted(app.view_functions)
        loaded = sorted(name for name in sys.modules if name.split(".")[0] in {"doubles", "launch"})
        assert loaded == [], loaded
    """)
    env = {name: value for name, value in os.environ.items() if name not in {"REDIS_URL", "DATABASE_URL"}}
    env.update({
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": "sqlite:///" + str(tmp_path / "portal.db"),
        "DEMO_STRIPE_CONTROL_URL": "http://127.0.0.1:9",  # what registers the demo's button; never called here
    })
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
