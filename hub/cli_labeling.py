"""``ymir-hub labeling ...`` (filled in by the labeling work)."""

COMMANDS: list = []
