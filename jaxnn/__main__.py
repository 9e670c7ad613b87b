"""``python -m jaxnn``: the labs (:mod:`jaxnn.labs.registry`); ``python -m jaxnn LAB --help``: one lab's flags."""

import sys

from jaxnn.cli import launch
from jaxnn.labs.registry import LABS


def _list() -> str:
    width = max(map(len, LABS))
    lines = ["usage: python -m jaxnn LAB [flags]   (python -m jaxnn LAB --help: its flags)", "", "labs:"]
    for lab in LABS.values():
        number = f"lab {lab.lab}" if lab.lab else ""
        lines.append(f"  {lab.name:<{width}}  {lab.kind:<6}  {number:<14}  {lab.summary}")
    return "\n".join(lines)


def main() -> None:
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        print(_list())
        return
    name = args[0]
    if name not in LABS:
        print(f"python -m jaxnn: error: no lab named {name!r}; choose one of: {', '.join(LABS)}", file=sys.stderr)
        sys.exit(2)
    sys.argv[0] = f"jaxnn {name}"  # the program argparse names in its messages
    launch(name, args[1:], prog=f"jaxnn {name}")


if __name__ == "__main__":
    main()
