"""Knowledge distillation: its configuration as data (:mod:`.config`: the student's shape, loss
weights, layer map, augmentation settings, each default defined once), the losses (:mod:`.losses`),
data augmentation (:mod:`.augment`), and the jobs (:mod:`.stages`: stage 1, stage 2, direct
training)."""
