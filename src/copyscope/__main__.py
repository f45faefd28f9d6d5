"""``python -m copyscope`` is the same as the ``copyscope`` command."""

from copyscope.cli import main

main()
