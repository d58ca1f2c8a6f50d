"""``ymir-hub mining ...`` (filled in by the mining work)."""

COMMANDS: list = []
