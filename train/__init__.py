"""Training of the digit classifiers in numpy; `python3 -m train --help` lists the settings."""

import os

# train.parallel spreads the work over two threads itself, so BLAS must run each matrix
# product in the calling thread. This only takes effect if numpy is not loaded yet, as
# with `python3 -m train`. A value set by the caller is kept.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
