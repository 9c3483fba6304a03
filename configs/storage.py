"""Object storage as the platform uses it, wherever it runs (S3 or dev's MinIO)."""

# content: what the API stores; images: uploads the site serves; backups: every backup set.
BUCKETS = ("content", "images", "backups")
