"""Assets in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, ...), through boto3.

Objects are ``[<prefix>/]assets/<sha1[-2:]>/<sha1>``. The workspace's ``assets/`` folder is a
read-through cache with the local layout: :meth:`S3Store.local_path` returns the cached file,
downloading it first when it is not there (to a temporary name, then an atomic rename). The cache
holds immutable content-addressed files, so it never needs invalidating and may be deleted at any
time. Credentials come from boto3's standard chain (``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``, an instance or pod role).
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from detkit.errors import NotFound, Unavailable
from hub.datasets.asset_store import asset_path_str, store_asset

log = logging.getLogger(__name__)

#: parallel transfers of publish / ensure_local (boto3 clients are thread-safe)
TRANSFER_THREADS = 8
_tmp = itertools.count()


class S3Store:
    key = "s3"

    def __init__(self, settings):
        import boto3  # lazily: only hubs that use S3 need the SDK
        from botocore.config import Config

        cfg = settings.s3
        self.bucket = cfg["bucket"]
        self.prefix = cfg.get("prefix") or ""
        self.endpoint_url = cfg.get("endpoint_url")
        self.local_dir = Path(settings.assets_dir)
        self._client = boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=cfg.get("region") or None,
            config=Config(
                connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"},
                # MinIO and most self-hosted servers want path-style addressing
                s3={"addressing_style": "path" if self.endpoint_url else "auto"},
                max_pool_connections=TRANSFER_THREADS * 2,
            ),
        )

    # -- naming -----------------------------------------------------------------------------------
    def describe(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"s3://{self.bucket}/{self.prefix + '/' if self.prefix else ''}assets{where}"

    def object_key(self, sha1: str) -> str:
        rel = f"assets/{sha1[-2:]}/{sha1}"
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def _cached(self, sha1: str) -> str:
        return asset_path_str(self.local_dir, sha1)

    def _unavailable(self, what: str, exc: Exception) -> Unavailable:
        return Unavailable(f"asset storage {self.describe()}: {what} failed: {_reason(exc)}")

    # -- the protocol -----------------------------------------------------------------------------
    def check(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except Exception as exc:  # unreachable endpoint, no such bucket, refused credentials
            raise self._unavailable(f"reaching bucket {self.bucket!r}", exc) from None

    def exists(self, sha1: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._client.head_object(Bucket=self.bucket, Key=self.object_key(sha1))
            return True
        except ClientError as exc:
            if _status(exc) == 404:
                return False
            raise self._unavailable(f"looking up {sha1}", exc) from None
        except Exception as exc:
            raise self._unavailable(f"looking up {sha1}", exc) from None

    def put(self, sha1: str, data: bytes) -> bool:
        added = not self.exists(sha1)
        if added:
            try:
                self._client.put_object(Bucket=self.bucket, Key=self.object_key(sha1), Body=data)
            except Exception as exc:
                raise self._unavailable(f"storing {sha1}", exc) from None
        store_asset(self.local_dir, sha1, data)  # warm cache: the next read is local
        return added

    def _upload(self, sha1: str) -> bool:
        if self.exists(sha1):
            return False
        try:
            with open(self._cached(sha1), "rb") as fh:
                self._client.put_object(Bucket=self.bucket, Key=self.object_key(sha1), Body=fh)
        except Exception as exc:
            raise self._unavailable(f"storing {sha1}", exc) from None
        return True

    def publish(self, sha1s: Iterable[str]) -> list[str]:
        todo = list(dict.fromkeys(sha1s))
        added: list[str] = []
        error: Exception | None = None
        with ThreadPoolExecutor(TRANSFER_THREADS) as pool:
            futures = [(s, pool.submit(self._upload, s)) for s in todo]
            for sha1, fut in futures:
                try:
                    if fut.result():
                        added.append(sha1)
                except Exception as exc:  # keep collecting: what was uploaded must be known to remove it
                    error = error or exc
        if error is not None:
            self.discard(added)
            raise error
        log.info("published %d new asset(s) of %d to %s", len(added), len(todo), self.describe())
        return added

    def open(self, sha1: str) -> BinaryIO:
        return open(self.local_path(sha1), "rb")

    def local_path(self, sha1: str) -> Path:
        path = self._cached(sha1)
        if not os.path.isfile(path):
            self._download(sha1, path)
        return Path(path)

    def _download(self, sha1: str, path: str) -> None:
        from botocore.exceptions import ClientError

        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f".{sha1}.{os.getpid()}.{next(_tmp)}.part")
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=self.object_key(sha1))["Body"]
            with open(tmp, "wb") as fh:
                for chunk in body.iter_chunks(1 << 20):
                    fh.write(chunk)
            os.replace(tmp, path)  # a reader never sees half a file
        except ClientError as exc:
            if _status(exc) == 404:
                raise NotFound(f"asset {sha1} is missing from {self.describe()}") from None
            raise self._unavailable(f"fetching {sha1}", exc) from None
        except OSError:
            raise
        except Exception as exc:
            raise self._unavailable(f"fetching {sha1}", exc) from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def ensure_local(self, sha1s: Iterable[str]) -> None:
        missing = [s for s in dict.fromkeys(sha1s) if not os.path.isfile(self._cached(s))]
        if not missing:
            return
        with ThreadPoolExecutor(TRANSFER_THREADS) as pool:
            for _ in pool.map(self.local_path, missing):
                pass
        log.info("fetched %d asset(s) from %s into the cache", len(missing), self.describe())

    def discard(self, sha1s: Iterable[str]) -> None:
        keys = [{"Key": self.object_key(s)} for s in dict.fromkeys(sha1s)]
        for i in range(0, len(keys), 1000):
            try:
                self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys[i:i + 1000], "Quiet": True})
            except Exception as exc:  # the caller is already failing; say what is left behind
                log.warning("could not remove %d object(s) from %s: %s", len(keys[i:i + 1000]),
                            self.describe(), _reason(exc))


def _status(exc) -> int | None:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _reason(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and response.get("Error"):
        err = response["Error"]
        return f"{err.get('Code')}: {err.get('Message') or 'no message'}"
    return str(exc) or type(exc).__name__
