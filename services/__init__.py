"""Every service of the platform, described once (services/spec.py): image, user, port,
environment, secrets, health check, writable paths, drain, and the one-off steps before them.
Each placement runs these same specs (placements/)."""
