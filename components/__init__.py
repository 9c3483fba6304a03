"""One ComponentResource per module; each receives settings-derived args, never config."""
