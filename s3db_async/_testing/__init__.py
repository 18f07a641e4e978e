"""Helpers behind :mod:`s3db_async.testing`."""
