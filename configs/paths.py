"""Paths inside the containers that more than one service uses."""

# Secret files are uploaded here (mode 0400, owned by the service's user), never passed as
# plain environment values where the image can read a file instead.
SECRETS_DIR = "/etc/sos/secrets"
