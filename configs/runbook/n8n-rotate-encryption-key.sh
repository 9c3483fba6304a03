#!/bin/sh
# Re-encrypts every n8n credential from the old N8N_ENCRYPTION_KEY to the new one
# (docs/runbook.md; proved against the real n8n by tests/test_n8n_key_rotation.py):
#   1. with the OLD key, `n8n export:credentials --all --decrypted` into a private directory
#      (0700, on a tmpfs: /dev/shm unless N8N_ROTATE_TMPDIR says otherwise; never a volume);
#   2. with the NEW key, `n8n import:credentials` of that file (each credential is encrypted
#      again, same id, same owner);
#   3. with the NEW key, `n8n export:credentials --all --decrypted --output=/dev/null`: every
#      credential decrypts, as many as were exported;
# then the decrypted file is shredded, on failure too (trap).
#
# Every n8n process (main, webhook processes, workers) must be stopped before step 1 and start
# again only with the new key after step 3: a process still on the old key fails on every
# re-encrypted credential, and one that writes a credential in between (an edit, an OAuth token
# refresh) is overwritten by step 2.
#
# Environment (keys never on a command line):
#   N8N_OLD_ENCRYPTION_KEY_FILE, N8N_NEW_ENCRYPTION_KEY_FILE  files holding the keys, or
#   N8N_OLD_ENCRYPTION_KEY, N8N_NEW_ENCRYPTION_KEY           the keys themselves
#   N8N_EXPECTED_CREDENTIALS  rows in n8n's credentials_entity, counted independently
#                             (psql -Atc 'SELECT count(*) FROM credentials_entity'); the export
#                             must find exactly that many. Unset, an export of zero is refused:
#                             a command pointed at the wrong (empty) database also finds none.
#   N8N_CMD                   how to run n8n's CLI (default: n8n), split on blanks. It gets
#                             N8N_ENCRYPTION_KEY and N8N_USER_FOLDER (a fresh folder of its own
#                             under the private directory, so no settings file of a volume holds
#                             a mismatching key) in its environment and must pass them on, and
#                             must see the private directory at the same path, e.g.
#                             N8N_ROTATE_TMPDIR=/dev/shm/n8n-rotate (0700, owned by uid 1000)
#                             N8N_CMD="docker run --rm -u 1000:1000 --network <net>
#                               --env-file <n8n's env without the key> -e N8N_ENCRYPTION_KEY
#                               -e N8N_USER_FOLDER -v /dev/shm/n8n-rotate:/dev/shm/n8n-rotate
#                               docker.n8n.io/n8nio/n8n:<pinned version>"
#   N8N_ROTATE_TMPDIR         where the private directory is made (default: /dev/shm)
# Exit status: 0 done (or nothing to do with N8N_EXPECTED_CREDENTIALS=0), 1 failed, 2 refused
# (bad input, or the counts disagree; no credential was written).

set -eu
umask 077

say() { printf 'n8n-rotate-encryption-key: %s\n' "$*" >&2; }
fail() { say "$1"; exit "${2:-1}"; }

work=
cleanup() {
    if [ -n "$work" ] && [ -d "$work" ]; then
        # The decrypted export, and the user folders' settings files (they hold the keys).
        find "$work" -type f -exec shred -u {} + 2>/dev/null || :
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# $1: which key (OLD or NEW), $2: its file (may be empty), $3: its value (may be empty).
read_key() {
    if [ -n "$2" ]; then
        [ -r "$2" ] || fail "cannot read N8N_$1_ENCRYPTION_KEY_FILE ($2)" 2
        value=$(cat "$2")
    else
        value=$3
    fi
    [ -n "$value" ] || fail "no $1 key: set N8N_$1_ENCRYPTION_KEY_FILE or N8N_$1_ENCRYPTION_KEY" 2
    case $value in
        *"
"*) fail "the $1 key has more than one line" 2 ;;
    esac
    printf '%s' "$value"
}

old=$(read_key OLD "${N8N_OLD_ENCRYPTION_KEY_FILE:-}" "${N8N_OLD_ENCRYPTION_KEY:-}")
new=$(read_key NEW "${N8N_NEW_ENCRYPTION_KEY_FILE:-}" "${N8N_NEW_ENCRYPTION_KEY:-}")
[ "$old" != "$new" ] || fail "the old and the new key are the same" 2
expected=${N8N_EXPECTED_CREDENTIALS:-}
case $expected in
    '') ;;
    *[!0-9]*) fail "N8N_EXPECTED_CREDENTIALS is not a count: $expected" 2 ;;
esac
cmd=${N8N_CMD:-n8n}
parent=${N8N_ROTATE_TMPDIR:-/dev/shm}
[ -d "$parent" ] || fail "no directory $parent for the decrypted export (N8N_ROTATE_TMPDIR)" 2

work=$(mktemp -d "$parent/n8n-rotate.XXXXXX")
chmod 700 "$work"
file=$work/credentials.json
runs=0

# $1: the key; the rest: n8n's arguments. Its output goes to $work/out.
n8n_with() {
    key=$1
    shift
    runs=$((runs + 1))
    mkdir -m 700 "$work/home-$runs"
    # shellcheck disable=SC2086 # N8N_CMD is a command prefix: split on purpose
    N8N_ENCRYPTION_KEY=$key N8N_USER_FOLDER=$work/home-$runs $cmd "$@" >"$work/out" 2>&1
}

# $1: the word n8n logs its count after (exported or imported).
count_of() {
    sed -n "s/.*Successfully $1 \([0-9][0-9]*\) credential.*/\1/p" "$work/out" | tail -n 1
}

output_tail() { tail -n 20 "$work/out" >&2; }

say "exporting every credential with the old key"
if n8n_with "$old" export:credentials --all --decrypted "--output=$file"; then
    exported=$(count_of exported)
    if [ -z "$exported" ] || [ ! -s "$file" ]; then
        output_tail
        fail "the export wrote no credentials file"
    fi
elif grep -q 'No credentials found' "$work/out"; then
    exported=0
else
    output_tail
    fail "the export with the old key failed (is the old key the one n8n runs with?)"
fi

if [ -n "$expected" ] && [ "$exported" -ne "$expected" ]; then
    fail "refusing: exported $exported credentials, the database holds $expected" 2
fi
if [ "$exported" -eq 0 ]; then
    [ -n "$expected" ] || fail "refusing: the export found no credentials; if the database really \
holds none, set N8N_EXPECTED_CREDENTIALS=0" 2
    say "no credentials: nothing to re-encrypt"
    exit 0
fi

say "importing $exported credentials with the new key"
n8n_with "$new" import:credentials "--input=$file" || { output_tail; fail "the import with the new key failed"; }
imported=$(count_of imported)
[ "$imported" = "$exported" ] || { output_tail; fail "imported ${imported:-no} credentials of $exported"; }
# The decrypted copy is not needed any more.
shred -u "$file" 2>/dev/null || rm -f "$file"

say "checking that every credential decrypts with the new key"
n8n_with "$new" export:credentials --all --decrypted --output=/dev/null || {
    output_tail
    fail "a credential does not decrypt with the new key"
}
verified=$(count_of exported)
[ "$verified" = "$exported" ] || fail "the new key decrypts ${verified:-no} credentials of $exported"
say "re-encrypted $exported credentials; start n8n (every process) with the new key"
