"""AWS API calls obstore does not make (bucket creation), through aioboto3.

aioboto3 is optional (``pip install 's3db-async[aws]'``) and imported on first use::

    created = await ensure_bucket(parse_connection_string("http://K:S@127.0.0.1:8333/my-bucket"))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from ..errors import (
    AuthenticationError,
    ConfigError,
    EndpointUnreachableError,
    MissingDependencyError,
    StoreError,
)
from ._url import ConnectionConfig, parse_connection_string

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client

__all__ = ["client_kwargs", "ensure_bucket", "require_aioboto3"]

_MISSING_BUCKET = {"404", "NoSuchBucket", "NotFound"}
_DENIED = {"403", "AccessDenied", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch"}


def require_aioboto3() -> Any:
    """Import aioboto3 or raise :class:`MissingDependencyError` with the pip extra."""
    try:
        import aioboto3
    except ImportError:
        raise MissingDependencyError(
            "this operation needs aioboto3, which is not installed",
            suggestion="pip install 's3db-async[aws]'",
            metadata={"packages": ["aioboto3"], "extra": "aws"},
        ) from None
    return aioboto3


def client_kwargs(config: ConnectionConfig) -> dict[str, Any]:
    """Keyword arguments for ``session.client("s3", ...)`` matching a connection string."""
    from aiobotocore.config import AioConfig

    virtual = config.options.get("virtual_hosted")
    style: Literal["auto", "virtual", "path"] = (
        "virtual" if virtual else "path" if config.endpoint else "auto"
    )
    connect_timeout = float(config.options.get("connect_timeout") or 3.0)  # type: ignore[arg-type]
    read_timeout = float(config.options.get("timeout") or 30.0)  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {
        "region_name": config.region or ("us-east-1" if config.endpoint else None),
        "config": AioConfig(
            s3={"addressing_style": style},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        ),
    }
    if config.endpoint:
        kwargs["endpoint_url"] = config.endpoint
    if config.access_key and config.secret_key:
        kwargs["aws_access_key_id"] = config.access_key
        kwargs["aws_secret_access_key"] = config.secret_key
        token = config.options.get("session_token")
        if token:
            kwargs["aws_session_token"] = str(token)
    return kwargs


async def ensure_bucket(config: ConnectionConfig | str) -> bool:
    """Create the connection string's bucket unless it exists.

    :returns: ``True`` when the bucket was created, ``False`` when it was already there.
    :raises MissingDependencyError: aioboto3 is not installed.
    :raises AuthenticationError: the credentials were refused.
    :raises EndpointUnreachableError: the endpoint did not answer.
    :raises StoreError: the name is taken by another account, or another failure.
    """
    cfg = config if isinstance(config, ConnectionConfig) else parse_connection_string(config)
    if cfg.scheme not in ("s3", "http", "https"):
        raise ConfigError(
            f"{cfg.masked} is not an S3 connection string; only S3 buckets can be created",
            suggestion="use s3://bucket or http(s)://host:port/bucket",
        )
    aioboto3 = require_aioboto3()
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
    )

    where = cfg.endpoint or "AWS"
    meta = {"bucket": cfg.bucket, "endpoint": where}
    session = aioboto3.Session()
    try:
        s3: S3Client
        async with session.client("s3", **client_kwargs(cfg)) as s3:
            try:
                await s3.head_bucket(Bucket=cfg.bucket)
                return False
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                if code in _DENIED:
                    raise _denied(cfg, code, meta) from None
                if code not in _MISSING_BUCKET:
                    raise
            create: dict[str, Any] = {"Bucket": cfg.bucket}
            region = _bucket_region(cfg)
            if not cfg.endpoint and region and region != "us-east-1":
                create["CreateBucketConfiguration"] = {"LocationConstraint": region}
            try:
                await s3.create_bucket(**create)
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                if code == "BucketAlreadyOwnedByYou":
                    return False
                if code in _DENIED:
                    raise _denied(cfg, code, meta) from None
                if code == "BucketAlreadyExists":
                    raise StoreError(
                        f"bucket name {cfg.bucket!r} is taken by another account",
                        suggestion="bucket names are global on AWS: pick another name",
                        metadata=meta,
                        status_code=409,
                    ) from None
                raise
            return True
    except EndpointConnectionError as exc:
        raise EndpointUnreachableError(
            f"cannot reach {where}: {exc}",
            suggestion="is the server running and the host/port right?",
            metadata=meta,
        ) from None
    except NoCredentialsError:
        raise AuthenticationError(
            f"no AWS credentials found to create bucket {cfg.bucket!r}",
            suggestion="put KEY:SECRET@ in the connection string or configure AWS credentials",
            metadata=meta,
        ) from None
    except (ClientError, BotoCoreError) as exc:
        raise StoreError(
            f"cannot create bucket {cfg.bucket!r} at {where}: {exc}", metadata=meta
        ) from None


def _bucket_region(config: ConnectionConfig) -> str | None:
    """The region a bucket is created in (the URL's, else the AWS default chain's)."""
    if config.region:
        return config.region
    if config.endpoint:
        return "us-east-1"
    from botocore.session import get_session

    region = get_session().get_config_variable("region")
    return str(region) if region else None


def _denied(cfg: ConnectionConfig, code: str, meta: dict[str, Any]) -> AuthenticationError:
    return AuthenticationError(
        f"{cfg.endpoint or 'AWS'} refused access to bucket {cfg.bucket!r} ({code})",
        suggestion="check KEY:SECRET in the connection string and the account's permissions",
        metadata={**meta, "code": code},
    )
