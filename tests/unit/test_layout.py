"""The layout rule (top of pyproject.toml): `opencode_openai.<folder>.<module>` is
`<folder>/<module>.py` at the top of the repository; `opencode_openai/` holds the package's
`__init__.py` and a link to each code folder. Fails when a folder, its link and the packaging
disagree, and checks that an installed wheel holds exactly the checkout's modules and finds
OpenCode by the same rule."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMPORT_ROOT = ROOT / "opencode_openai"
#: Top-level folders with Python in them that are not part of the package.
NOT_PACKAGED = {"tests", "contract", "bench", "opencode_openai", "docs", "scripts", "deploy"}


def code_folders() -> set[str]:
    return {
        path.name
        for path in ROOT.iterdir()
        if path.is_dir()
        and not path.is_symlink()
        and (path / "__init__.py").exists()
        and path.name not in NOT_PACKAGED
    }


def test_every_code_folder_is_linked_into_the_import_root_and_nothing_else_is() -> None:
    entries = {p.name for p in IMPORT_ROOT.iterdir() if p.name not in {"__pycache__"}}
    assert entries - {"__init__.py", "py.typed"} == code_folders()
    for name in code_folders():
        link = IMPORT_ROOT / name
        assert link.is_symlink() and os.readlink(link) == f"../{name}", link


def test_each_module_is_imported_by_its_path() -> None:
    import opencode_openai.backend.turn as turn

    assert Path(turn.__file__) == IMPORT_ROOT / "backend" / "turn.py"
    assert Path(turn.__file__).resolve() == ROOT / "backend" / "turn.py"


def _checkout_files() -> set[str]:
    """What the package is, by the layout rule: every module and data file of a code folder."""
    files = {"opencode_openai/__init__.py", "opencode_openai/py.typed"}
    for name in code_folders():
        for path in (ROOT / name).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.add(f"opencode_openai/{path.relative_to(ROOT)}")
    return files


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [built] = out.glob("opencode_openai-*.whl")
    return built


def test_the_wheel_holds_exactly_the_checkouts_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        packaged = {n for n in archive.namelist() if n.startswith("opencode_openai/")}
    assert packaged == _checkout_files()


def test_an_installed_wheel_finds_opencode_as_the_checkout_does(
    wheel: Path, tmp_path: Path
) -> None:
    """Both look in their Python environment's scripts directory first."""
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    where_site = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = Path(
        subprocess.run(
            [env / "bin" / "python", "-c", where_site], check=True, capture_output=True, text=True
        ).stdout.strip()
    )
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    # The dependencies, from this environment (its own .pth files, the editable install's
    # among them, are not run for a path added this way).
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    (env / "bin" / "opencode").symlink_to(ROOT / "node_modules" / ".bin" / "opencode")
    probe = (
        "import opencode_openai.backend.process as p, opencode_openai as o;"
        "print(p.find_opencode(None)); print(o.__file__)"
    )
    found, where = subprocess.run(
        [env / "bin" / "python", "-c", probe], check=True, capture_output=True, text=True,
        cwd=tmp_path, env={"PATH": "/usr/bin:/bin"},
    ).stdout.split()  # fmt: skip
    assert found == str(env / "bin" / "opencode")
    assert Path(where).is_relative_to(site)
    from opencode_openai.backend.process import find_opencode

    assert find_opencode(None) == str(Path(sysconfig.get_path("scripts")) / "opencode")
