"""The training machinery every job shares: the loop (:mod:`.trainer`), atomic files and
checkpoints (:mod:`.checkpoint`), dev metrics (:mod:`.metrics`) and training plots (:mod:`.plots`)."""
