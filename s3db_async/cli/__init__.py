"""The ``s3db`` command line.

::

    s3db --url file://./data resources
    s3db --url file://./data list users --limit 10 --partition by_region --value region=eu
    s3db export users > users.ndjson
    s3db import users users.ndjson

``--url`` defaults to ``S3DB_URL``; ``--passphrase`` to ``S3DB_PASSPHRASE``; both (and
``--debug``) go before or after the command. Errors print one message with a hint in CLI
terms and exit non-zero; ``--debug`` shows the traceback. The record commands live in
:mod:`.commands`, the administration commands (registered on the same app) in :mod:`.admin`.
"""

from __future__ import annotations

from . import admin as admin
from . import backup as backup
from .commands import app, cli_suggestion, main

__all__ = ["app", "cli_suggestion", "main"]
