"""``python -m iqa_core`` runs the ``iqa`` command line."""

from .cli import main

if __name__ == "__main__":
    main()
