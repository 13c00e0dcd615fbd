"""The lock files pin what setup.cfg allows, and agree with each other (scripts/lock writes them).

The images install requirements/runtime.lock and .venv installs requirements/test.lock,
both with --require-hashes: so what runs in a container is what the tests ran.
"""

import configparser
import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.M)


def pins(lock: str) -> dict[str, str]:
    return {canonicalize_name(name): version for name, version in PIN.findall((ROOT / lock).read_text())}


def requirements(*keys: str) -> list[Requirement]:
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    lines = []
    for section, key in keys:
        lines += setup[section][key].splitlines()
    return [Requirement(line) for line in (line.strip() for line in lines) if line and not line.startswith("#")]


def assert_pinned_within_ranges(lock: str, wanted: list[Requirement]) -> None:
    pinned = pins(lock)
    for requirement in wanted:
        version = pinned.get(canonicalize_name(requirement.name))
        assert version is not None, f"{lock} has no pin for {requirement}: run scripts/lock"
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{lock} pins {requirement.name}=={version}, outside setup.cfg's {requirement}: run scripts/lock"
        )


def test_the_images_lock_pins_every_runtime_dependency_within_its_range():
    assert_pinned_within_ranges("requirements/runtime.lock", requirements(("options", "install_requires")))


def test_the_venvs_lock_pins_the_test_tools_too():
    assert_pinned_within_ranges(
        "requirements/test.lock",
        requirements(("options", "install_requires"), ("options.extras_require", "test")),
    )


def test_both_locks_pin_the_services_dependencies_alike():
    runtime, test = pins("requirements/runtime.lock"), pins("requirements/test.lock")
    assert runtime, "requirements/runtime.lock pins nothing"
    assert {name: test.get(name) for name in runtime} == runtime


def test_the_benchs_lock_adds_its_tools_to_the_venvs_versions():
    assert_pinned_within_ranges("requirements/bench.lock", requirements(("options.extras_require", "bench")))
    bench, test = pins("requirements/bench.lock"), pins("requirements/test.lock")
    shared = bench.keys() & test.keys()
    assert shared >= pins("requirements/runtime.lock").keys()
    assert {name: bench[name] for name in shared} == {name: test[name] for name in shared}


def test_checkovs_lock_pins_checkov():
    # Its own venv (scripts/bootstrap): its pins clash with the project's.
    assert "checkov" in pins("requirements/checkov.lock")


def test_every_pin_carries_hashes():
    for lock in (
        "requirements/runtime.lock",
        "requirements/test.lock",
        "requirements/bench.lock",
        "requirements/checkov.lock",
    ):
        blocks = re.split(r"^(?=[A-Za-z0-9])", (ROOT / lock).read_text(), flags=re.M)
        for block in blocks:
            if PIN.match(block):
                assert "--hash=sha256:" in block, f"{lock}: {block.splitlines()[0]} has no hash"
