# shellcheck shell=sh
# Published sets are directories named by their UTC stamp; anything else is left alone.
sets_in() {
  for d in "$1"/[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z; do
    if [ -d "$d" ]; then basename "$d"; fi
  done
}
