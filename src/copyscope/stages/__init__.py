"""The stages of a study, each a function from artifacts to artifacts in a run directory.

    train   (training SPEC) -> checkpoints/, train_indices.npy        TrainRecord
    sample  (checkpoint or pipeline) -> samples/*.npy                 SampleRecord
    audit   (samples, training set, held-out set) -> samples/controls/items.parquet,
            summary.json                                             AuditRecord, AuditSummary
    quality (samples, held-out set) -> quality.json                   QualityRecord

Each stage computes its identity from its inputs, asks :meth:`copyscope.rundir.RunDir.done`
whether that run is already complete, and writes its typed record (:mod:`copyscope.records`).
Stages import data, models and the measures (search, detect, similarity); analysis, report, app
and cli import stages, never the reverse.
"""
