#!/usr/bin/env python3
"""read_pgf.py FILE: checks that tools/pgf.py reads the file the C writer
wrote in test/unit/test_pgf.c (tensor a = [[1,2,3],[4,5,6]] f32, ids =
[10,20,30] i64, checksum verified).  Exit status 0 when everything matches.
Run from the repository root with PYTHONPATH=. (the Makefile sets it)."""
import sys

import numpy as np

from tools import pgf

model = pgf.read(sys.argv[1], verify=True)
ok = (model.header.architecture == "golden"
      and model.header.name == "round trip"
      and np.array_equal(model["a"], np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32))
      and model["ids"].dtype == np.int64
      and list(model["ids"]) == [10, 20, 30])
sys.exit(0 if ok else 1)
