"""One running gateway per state dir (app/state_lock.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from opencode_openai.app.state_lock import StateDirInUse, check_state_dir, hold_state_dir

HOLD = """
import sys, time
from pathlib import Path
from opencode_openai.app.state_lock import hold_state_dir
with hold_state_dir(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_held_state_dir_is_refused_naming_its_holder(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(StateDirInUse) as info:
            check_state_dir(tmp_path)
        message = str(info.value)
        assert f"pid {holder.pid}" in message and "--state-dir" in message
        assert str(tmp_path) in message
        with pytest.raises(StateDirInUse), hold_state_dir(tmp_path):
            pass
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    # The kernel let go of the lock with the process: the dir is free again.
    check_state_dir(tmp_path)
    with hold_state_dir(tmp_path):
        assert (tmp_path / "gateway.lock").read_text().startswith(f"{os.getpid()}\n")


def test_in_one_process_a_second_hold_is_refused_too(tmp_path: Path) -> None:
    with hold_state_dir(tmp_path):
        with pytest.raises(StateDirInUse):
            check_state_dir(tmp_path)
        with pytest.raises(StateDirInUse), hold_state_dir(tmp_path):
            pass
    check_state_dir(tmp_path)
