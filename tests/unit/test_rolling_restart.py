"""deploy/nginx/rolling-restart's handling of the site file, offline: it finds the replicas of
deploy/nginx/replicas.conf, marks exactly one `down` and back, and refuses an address that is
not in the upstream. tests/deploy/test_replicas.py runs the whole procedure for real."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import re
import shutil
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "nginx" / "rolling-restart"
SITE = ROOT / "deploy" / "nginx" / "replicas.conf"
ADDRESSES = ["127.0.0.1:4041", "127.0.0.1:4042", "127.0.0.1:4043"]


@pytest.fixture(scope="module")
def script() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("rolling_restart", str(SCRIPT))
    spec = importlib.util.spec_from_loader("rolling_restart", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_it_finds_the_replicas_of_the_shipped_site(script: ModuleType) -> None:
    assert script.servers(SITE.read_text()) == ADDRESSES


def test_down_marks_one_server_line_and_up_restores_the_file(
    script: ModuleType, tmp_path: Path
) -> None:
    site = tmp_path / "site.conf"
    shutil.copy(SITE, site)
    script.mark(site, "127.0.0.1:4042", down=True)
    changed = [
        (before, after)
        for before, after in zip(
            SITE.read_text().splitlines(), site.read_text().splitlines(), strict=True
        )
        if before != after
    ]
    assert changed == [
        (
            "    server 127.0.0.1:4042 max_fails=1 fail_timeout=5s;",
            "    server 127.0.0.1:4042 max_fails=1 fail_timeout=5s down;",
        )
    ]
    script.mark(site, "127.0.0.1:4042", down=True)  # twice: still one `down`
    assert site.read_text().count(" down;") == 1
    script.mark(site, "127.0.0.1:4042", down=False)
    assert site.read_text() == SITE.read_text()


def test_an_address_outside_the_upstream_is_refused(
    script: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site.conf"
    shutil.copy(SITE, site)
    with pytest.raises(SystemExit) as exited:
        script.main(["--site", str(site), "--restart", "true", "127.0.0.1:4044"])
    assert exited.value.code == 2
    assert "127.0.0.1:4044 is not a server of upstream" in capsys.readouterr().err
    assert site.read_text() == SITE.read_text()
    # A site that names a replica twice: which line to mark is not clear, so none is.
    site.write_text(site.read_text().replace("server 127.0.0.1:4042 ", "server 127.0.0.1:4041 "))
    with pytest.raises(SystemExit, match=re.escape("2 `server 127.0.0.1:4041` lines")):
        script.mark(site, "127.0.0.1:4041", down=True)
