"""List the shipped presets, or save a trained workdir as one.

    python -m keras_s2v.pretrained                      # name<TAB>family<TAB>summary, one per line
    python -m keras_s2v.pretrained save WORKDIR NAME --summary TEXT --card CARD.md [--out DIR] [--float32]

``save`` writes ``DIR/NAME`` (default: this package's folder, where shipped presets live).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m keras_s2v.pretrained", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    save = commands.add_parser("save", help="save a trained workdir as a preset")
    save.add_argument("workdir")
    save.add_argument("name")
    save.add_argument("--summary", required=True)
    save.add_argument("--card", required=True, help="the model card (markdown)")
    save.add_argument("--out", default=str(Path(__file__).parent))
    save.add_argument("--float32", action="store_true", help="keep float32 weights (default float16)")
    args = parser.parse_args(argv)
    from keras_s2v import cli, pretrained

    if args.command == "save":

        def body():
            card = Path(args.card).read_text()
            folder = Path(args.out) / args.name
            info = pretrained.save_preset(args.workdir, folder, args.name, args.summary, card, float16=not args.float32)
            return f"saved preset {info['name']} ({info['family']}, {info['weights_dtype']}) in {folder}"

        return cli.run_main(body)
    for preset in pretrained.list_presets():
        print(f"{preset['name']}\t{preset['family']}\t{preset['summary']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
