"""``ymir-hub iterations ...`` (filled in by the iterations work)."""

COMMANDS: list = []
