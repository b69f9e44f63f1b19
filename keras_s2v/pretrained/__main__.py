"""List the shipped presets, one per line: ``name<TAB>family<TAB>summary``.

    python -m keras_s2v.pretrained
"""

from __future__ import annotations

import sys


def main() -> int:
    from keras_s2v import pretrained

    for preset in pretrained.list_presets():
        print(f"{preset['name']}\t{preset['family']}\t{preset['summary']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
