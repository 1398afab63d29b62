"""``python -m uniformer``: the command line (:mod:`uniformer.cli`)."""
import sys

from uniformer.cli import main

if __name__ == "__main__":
    sys.exit(main())
