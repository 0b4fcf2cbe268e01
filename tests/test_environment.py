"""pyproject.toml and environment.yml must name the same packages at the same pins."""
import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pyproject_pins() -> dict:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {}
    for d in deps:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", d.strip())
        assert m, f"pyproject dependency {d!r} is not pinned exactly (name==version)"
        pins[norm(m[1])] = m[2]
    return pins


def environment_pins() -> dict:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pins = {}
    for d in env["dependencies"]:
        if isinstance(d, dict):
            for p in d["pip"]:
                if p.startswith("-e"):
                    continue
                name, version = p.split("==")
                pins[norm(name)] = version
        elif d != "pip" and not d.startswith("python="):
            name, version = d.split("=", 1)
            pins[norm(name)] = version.lstrip("=")
    return pins


def test_pins_match():
    py, env = pyproject_pins(), environment_pins()
    assert set(py) == set(env), f"only in pyproject: {set(py) - set(env)}; only in environment.yml: {set(env) - set(py)}"
    diff = {k: (py[k], env[k]) for k in py if py[k] != env[k]}
    assert not diff, f"pins differ (pyproject, environment.yml): {diff}"


def test_required_packages_are_pinned():
    py = pyproject_pins()
    for name in ["torch", "torchvision", "torch-fidelity", "papermill", "jupytext", "nbval", "jupyter-book",
                 "matplotlib", "tqdm", "pytest", "ipykernel"]:
        assert name in py, f"{name} missing from pyproject.toml"
    assert py["torch"] == "2.14.1" and py["torchvision"] == "0.29.1"
    assert py["jupyter-book"].startswith("1."), "Jupyter Book 2.x needs the network to build; stay on 1.x"
