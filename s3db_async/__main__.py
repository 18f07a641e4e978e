"""``python -m s3db_async`` runs the CLI."""

from .cli import main

main()
