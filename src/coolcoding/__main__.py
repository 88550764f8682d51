"""``python -m coolcoding``: the ``coolcoding`` command (how ``serve --workers`` starts its
workers, with the supervisor's own interpreter)."""

from coolcoding.cli import main

main()
