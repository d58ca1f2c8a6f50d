"""Mining: a cache of each asset's perceptual hash (near-duplicate removal hashes an image once, ever)."""

from hub.store.schema import run_script


def up(db) -> None:
    run_script(
        db,
        """
        CREATE TABLE asset_phashes (
            asset_sha1 TEXT PRIMARY KEY REFERENCES assets(sha1),
            phash INTEGER NOT NULL            -- imagehash.phash (8x8 DCT), 64 bits as a signed integer
        ) WITHOUT ROWID;
        """,
    )
