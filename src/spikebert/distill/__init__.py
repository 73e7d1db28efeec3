"""Knowledge distillation: losses, layer maps and loss weights (:mod:`.losses`), data augmentation
(:mod:`.augment`), and the jobs (:mod:`.stages`: stage 1, stage 2, direct training)."""
