"""Looking at a trained student: energy estimates against its teacher (:mod:`.energy`) and spike
rasters (:mod:`.raster`)."""
