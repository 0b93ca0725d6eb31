"""``python -m tillflow``: the ``tillflow`` command (how ``serve --workers`` starts its
HTTP workers)."""

from tillflow.cli import main

if __name__ == "__main__":
    main()
