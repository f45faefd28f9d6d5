"""A density model as a lossless compressor: what it stores about each training item, in bits.

    codec.py      encode / decode / code_lengths: range coding (constriction) driven by a
                  DensityModel's autoregressive path; the .cs layout lives in format.py
    baselines.py  gzip, bz2, lzma, zstd, png, webp behind one Compressor protocol
    stored.py     stored bits per item (held-out calibrated), membership ROC, Min-K%

The stages that use them on run directories: :mod:`copyscope.stages.coding` (.cs files with a
training run's model) and :mod:`copyscope.stages.measure` (compression.parquet and .json).

gzip as a generative model (Delétang et al. 2023, Sec. 3.4) is a model family like the others:
``copyscope.models.gzipmodel``.
"""
