"""Devices keep a Mosquitto password hash of their token (PBKDF2-SHA512, salted; never the token)
so an embedded Mosquitto can require passwords (``YMIR_BROKER_AUTH``)."""


def up(db) -> None:
    db.execute("ALTER TABLE devices ADD COLUMN mqtt_hash TEXT NOT NULL DEFAULT ''")
