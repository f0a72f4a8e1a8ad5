# Work units, resumable batches, the Slurm executor, STAC catalogs, the end-to-end pipeline, surveys.
deforma_module(pipeline DEPENDS timeseries filter correlate render io core)
