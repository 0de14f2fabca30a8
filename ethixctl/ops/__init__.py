"""Long, resumable operations: releases, secret rotations, DR drills and restores share one ledger
(:mod:`.ledger`), one cross-process lock (:mod:`.lock`) and one persisted state machine (:mod:`.machine`)."""
