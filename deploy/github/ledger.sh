#!/usr/bin/env bash
# Keep ethixctl's ledger (releases, rotations, drills, smoke runs) between CI runs: a runner starts
# empty, and preflight, history and --resume read the ledger. The workflows call this before and after
# every ethixctl step; their shared concurrency group keeps two runs from writing it at once.
#   deploy/github/ledger.sh restore|save
# Needs: ETHIXCTL_STATE_DIR, LEDGER_BUCKET (a GCS bucket with object versioning), gcloud authenticated.
set -euo pipefail
: "${ETHIXCTL_STATE_DIR:?}" "${LEDGER_BUCKET:?set the repository variable ETHIXCTL_LEDGER_BUCKET}"
remote="gs://${LEDGER_BUCKET}/ethixctl"
case "${1:-}" in
  restore)
    mkdir -p "$ETHIXCTL_STATE_DIR"
    if gcloud storage ls "$remote/ledger.db" >/dev/null 2>&1; then
      gcloud storage cp "$remote/ledger.db" "$ETHIXCTL_STATE_DIR/ledger.db"
    else
      echo "no ledger in $remote yet: starting an empty one" >&2
    fi
    ;;
  save)
    # ethixctl has exited, so SQLite has checkpointed its WAL into ledger.db.
    if [ -f "$ETHIXCTL_STATE_DIR/ledger.db" ]; then
      gcloud storage cp "$ETHIXCTL_STATE_DIR/ledger.db" "$remote/ledger.db"
    fi
    ;;
  *)
    echo "usage: $0 restore|save" >&2
    exit 2
    ;;
esac
