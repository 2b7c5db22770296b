"""`opencode-openai keys new NAME`: a fresh key, printed once, and the config lines to paste.

The gateway keeps only the key's hash, so this is the one time the key itself is shown.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from opencode_openai.core.keys import check_key_name, hash_key, new_key

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> None:
    """The `keys` subcommand, on the CLI's subparsers."""
    parser = commands.add_parser(
        "keys",
        help="make API keys for the config file's [[keys]]",
        description="Make API keys. The config file keeps only their hashes.",
    )
    actions = parser.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    new = actions.add_parser(
        "new",
        help="print a fresh key once, and the [[keys]] lines to paste into the config file",
        description="Print a fresh key once (hand it to its user), and the [[keys]] lines "
        "with its hash to paste into the config file.",
    )
    new.add_argument("name", metavar="NAME", help="the key's name, as metrics and logs show it")


def run(args: argparse.Namespace) -> int:
    complaint = check_key_name(args.name)
    if complaint:
        print(f"opencode-openai: key name {args.name!r}: {complaint}", file=sys.stderr)
        return 2
    key = new_key()
    print(f"Key {args.name!r} (shown once; the gateway keeps only its hash): {key}")
    print("Paste into the config file (models, limits and expiry are optional):")
    print()
    print("[[keys]]")
    print(f'name = "{args.name}"')
    print(f'key = "{hash_key(key)}"')
    print('# models = ["provider/model", "alias", "provider/*"]')
    print("# requests-per-minute = 60")
    print("# tokens-per-minute = 100000")
    print("# max-concurrent-turns = 4")
    print("# expires = 2027-01-31")
    return 0
