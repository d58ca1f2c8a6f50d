"""The fleet: broker connection, devices, algorithms, deployments with staged rollout, ingest of
device uplinks and edge captures (see ``docs/fleet.md``)."""
