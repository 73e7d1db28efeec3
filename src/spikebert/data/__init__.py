"""Data in: the task registry and readers for every release format and user file (:mod:`.tasks`),
tokenisation and length-bucketed batches (:mod:`.batching`), stage-1 corpora (:mod:`.corpus`)."""
