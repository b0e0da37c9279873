"""Training work split over two threads, each taking half of a batch.

numpy releases the GIL inside its loops and matrix products, so two Python
threads, each working on half of an array's rows, run on two cores. BLAS is
then kept to one thread (train/__init__.py sets OPENBLAS_NUM_THREADS before
numpy loads): BLAS's own worker threads keep spinning for a while after each
matrix product, and took the second core away from the numpy work that followed.

The split is always into PARTS halves, whatever the number of cores, so that
sums over the halves, and with them the trained weights, come out the same on
every machine.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np

PARTS = 2
# Below this many elements, elementwise work is done in one piece: handing it to the other
# thread took about 20 microseconds, and a ReLU on the MLP's 128 x 512 activations takes 6.
MIN_SPLIT_ELEMENTS = 1 << 17

_helper = ThreadPoolExecutor(max_workers=PARTS - 1, thread_name_prefix="train-half")


def in_row_halves(function, *arrays, min_elements=MIN_SPLIT_ELEMENTS):
    """Call function on the first and on the second half of every array's rows (first axis), at the same time.

    Each call gets the matching halves of all arrays, and the two results are
    returned in order. If the first array has fewer than min_elements elements
    or fewer than two rows, function is called once on the whole arrays, and
    the result is a list of one.
    """
    rows = len(arrays[0])
    if arrays[0].size < min_elements or rows < PARTS:
        return [function(*arrays)]
    middle = rows // 2
    second = _helper.submit(function, *(array[middle:] for array in arrays))
    first = function(*(array[:middle] for array in arrays))
    return [first, second.result()]


def add_up(parts, out):
    """Write the sum of the arrays in parts (such as in_row_halves' results) to out."""
    np.copyto(out, parts[0])
    for part in parts[1:]:
        out += part
