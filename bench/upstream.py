"""The bench's model provider: the tests' scripted fake upstream, in a process of its own.

Run as `python -m bench.upstream`; it prints its base URL on stdout, then serves until its
stdin closes (the bench holds the other end, so it also goes when the bench dies). Every reply
is a tiny echo of the prompt in about three streamed chunks (one catch-all rule); with
`--long-chunks N`, a prompt holding `[long answer]` gets N chunks (bench/responses.py). The fake
records every request; the bench sends tens of thousands, so the records are dropped every
second to keep this process (not what is measured) small.

With `--stress-log FILE` it serves the stress run instead (bench/stress.py): a request with a
stress marker gets the reply scripted for its id (bench/stress_replies.py), and each such id is
appended to FILE.
"""

from __future__ import annotations

import argparse
import select
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.fake_upstream import FakeUpstream, echo, text  # noqa: E402

#: A request with this in its prompt gets the long answer (`--long-chunks`, bench/responses.py).
LONG_MARKER = "[long answer]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.upstream")
    parser.add_argument("--stress-log", type=Path, metavar="FILE", help="serve the stress run")
    parser.add_argument(
        "--long-chunks",
        type=int,
        default=0,
        metavar="N",
        help=f"answer prompts holding {LONG_MARKER!r} with N streamed chunks",
    )
    args = parser.parse_args(argv)
    if args.stress_log is not None:
        from bench.stress_replies import StressUpstream

        fake: FakeUpstream = StressUpstream(args.stress_log).start()
    else:
        fake = FakeUpstream().start()
        fake.script("", echo())
        if args.long_chunks:
            fake.script(LONG_MARKER, text([f"w{i} " for i in range(args.long_chunks)]))
    print(fake.base_url, flush=True)
    try:
        while True:
            readable, _, _ = select.select([sys.stdin], [], [], 1.0)
            if readable and not sys.stdin.buffer.read1(4096):
                return 0  # the bench closed our stdin: it is done (or gone)
            fake.forget_requests()
    finally:
        fake.stop()


if __name__ == "__main__":
    raise SystemExit(main())
