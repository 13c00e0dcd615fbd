"""Checks on the code itself: no SQL built from strings; bandit and ruff find nothing; ruff formatted it."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["common", "users", "products", "orders", "kong"]
# Functions that hand SQL text to the database.
SQL_SINKS = {"text", "execute", "exec_driver_sql", "executescript"}
RUFF = Path(sys.executable).parent / "ruff"


def python_files():
    for package in PACKAGES:
        yield from (path for path in (ROOT / package).rglob("*.py") if "migrations" not in path.parts)


def string_built_sql(path: Path):
    """Calls of a SQL sink whose first argument isn't a plain string literal
    (f-strings, %, .format, concatenation): SQL made from data."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
        first = node.args[0]
        if name in SQL_SINKS and not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            if isinstance(first, (ast.JoinedStr, ast.BinOp)) or (
                isinstance(first, ast.Call)
                and getattr(first.func, "attr", None) == "format"
                and not _is_composed_sql(first.func.value)
            ):
                yield f"{path}:{node.lineno}"


def _is_composed_sql(node) -> bool:
    """psycopg2's sql.SQL("... {}").format(sql.Identifier(...)): quoting done by
    the driver, the safe way to put names into statements."""
    return isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "SQL"


def test_no_sql_is_built_from_strings():
    offenders = [place for path in python_files() for place in string_built_sql(path)]
    assert offenders == [], "SQL built from strings (use the ORM or bound parameters)"


def test_the_check_itself_catches_string_built_sql(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "db.session.execute(text(f\"SELECT * FROM users WHERE email = '{email}'\"))\n"
        'cursor.execute("SELECT %s" % value)\n'
        'cursor.execute("DROP TABLE {}".format(name))\n'
        # Composed by the driver, which quotes the identifier: allowed.
        'cursor.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))\n'
    )
    assert len(list(string_built_sql(bad))) == 3


def test_bandit_finds_nothing_of_medium_severity_or_worse():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bandit",
            "-q",
            "-r",
            *PACKAGES,
            "--severity-level",
            "medium",
            "--exclude",
            ",".join(f"./{p}/migrations" for p in PACKAGES),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_finds_nothing():
    # pyflakes' mistakes, pycodestyle, import order, bugbear, pyupgrade, naming
    # (pyproject.toml), in the code, the tests and the scripts.
    result = subprocess.run([str(RUFF), "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_code_is_formatted_by_ruff():
    result = subprocess.run(
        [str(RUFF), "format", "--check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, "run: .venv/bin/ruff format .\n" + result.stdout + result.stderr


@pytest.mark.parametrize("package", PACKAGES)
def test_no_bare_excepts(package):
    bare = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in (ROOT / package).rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ExceptHandler) and node.type is None
    ]
    assert bare == []
