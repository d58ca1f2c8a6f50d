"""Where asset bytes live: an :class:`~hub.storage.base.AssetStore` chosen by ``YMIR_STORAGE``.

``local`` (default): the workspace's ``assets/`` folder is the store. ``s3``: an S3-compatible
bucket (AWS S3, MinIO, ...) is the store and ``assets/`` is its read-through cache. See
docs/storage.md.
"""

from hub.storage.base import STORES, AssetStore, open_store, unavailable_reason

__all__ = ["STORES", "AssetStore", "open_store", "unavailable_reason"]
