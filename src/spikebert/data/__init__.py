"""Data in: the task registry (:mod:`.registry`), readers for every release format and user file
(:mod:`.readers`), a run's data and the user's own files (:mod:`.own`), loading a task's or hub
dataset's splits (:mod:`.tasks`, which also re-exports the other three), tokenisation and
length-bucketed batches (:mod:`.batching`), stage-1 corpora (:mod:`.corpus`)."""
