"""The driver of scripts/openresponses (see there): suite dependencies, gateway, run, report."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import fake_upstream as fu  # noqa: E402
from tests.support.gateway import API_KEY, GatewayServer, gateway_config  # noqa: E402

#: The suite's HTTP tests (bin/compliance-test.ts `-f` ids at commit 92c12d9).
HTTP_TESTS = (
    "basic-response",
    "assistant-phase",
    "response-output-phase-schema",
    "streaming-response",
    "system-prompt",
    "tool-calling",
    "image-input",
    "multi-turn",
)
BUN = "bun@1.4.5"
ZOD = "zod@3.25.76"  # the suite's bun.lock
DEPS = Path(tempfile.gettempdir()) / "opencode-openai-openresponses-deps"
MODEL = "fake/fake-vision-model"  # the image test needs image input
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def dependencies(checkout: Path) -> Path:
    """bun, and zod as the checkout's node_modules (with it there, bun installs nothing)."""
    bun = DEPS / "node_modules" / ".bin" / "bun"
    if not bun.exists() or not (DEPS / "node_modules" / "zod").exists():
        DEPS.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--prefix", str(DEPS), "--no-audit", "--no-fund",
             "--loglevel=error", BUN, ZOD],
            check=True,
        )  # fmt: skip
    modules = checkout / "node_modules"
    if not modules.exists():
        modules.symlink_to(DEPS / "node_modules")
    return bun


def script(fake: fu.FakeUpstream) -> None:
    """What the model does: call get_weather when asked about the weather, else echo."""
    fake.script("", fu.echo("Hello: "))
    call = fu.ToolCall("get_weather", json.dumps({"location": "San Francisco, CA"}))
    fake.script("weather like in San Francisco", fu.tool_calls(call))


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__, "\nusage: scripts/openresponses PATH_OF_A_CHECKOUT [TEST_ID,...]")
        return 2
    checkout = Path(argv[0]).resolve()
    runner = checkout / "bin" / "compliance-test.ts"
    if not runner.exists():
        print(f"{checkout} is not a checkout of openresponses (no bin/compliance-test.ts)")
        return 2
    tests = argv[1] if len(argv) > 1 else ",".join(HTTP_TESTS)
    bun = dependencies(checkout)
    with tempfile.TemporaryDirectory() as tmp, fu.FakeUpstream() as fake:
        script(fake)
        gateway = GatewayServer(gateway_config(Path(tmp), fake.base_url)).start()
        try:
            proc = subprocess.run(
                [str(bun), "run", str(runner), "-u", gateway.base_url, "-k", API_KEY,
                 "-m", MODEL, "-f", tests, "--json"],
                cwd=checkout, capture_output=True, text=True, timeout=600,
                env={**os.environ, "NO_COLOR": "1"},
            )  # fmt: skip
        finally:
            gateway.stop()
    return report(proc)


def report(proc: subprocess.CompletedProcess[str]) -> int:
    start = proc.stdout.find("{")
    try:
        results = json.loads(proc.stdout[start:]) if start >= 0 else None
    except ValueError:
        results = None
    if results is None:
        print(_ANSI.sub("", proc.stdout), _ANSI.sub("", proc.stderr), sep="\n")
        return proc.returncode or 1
    passed = failed = 0
    for result in results.get("results", []):
        status = result.get("status")
        passed += status == "passed"
        failed += status == "failed"
        print(f"{str(status).upper():8} {result.get('id')}  ({result.get('duration', 0)} ms)")
        for error in result.get("errors") or []:
            print(f"         {error}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
