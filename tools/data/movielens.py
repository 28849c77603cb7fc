"""MovieLens ratings (data/movielens.csv, written by
tools/data/movielens.sh from Debian's package) as FinTRec sequences, and the
leave-one-out split: each user's ratings sorted by timestamp, ties broken by
movieId; the last rating is the test target, the one before it the
validation target, the rest is training data.  A request for target j holds
every earlier event of the user and its time ("now") is the target's
timestamp.
"""
import csv

import numpy as np

from tools.models.fintrec import Sequence

ITEM_PAD, ITEM_UNKNOWN, ITEM_FIRST = 0, 1, 2
N_EVENT_TYPES = 11          # 0 unspecified, 1..10 = rating in half stars



class MovieLens:
    """Ratings grouped per user, sorted by (timestamp, movieId)."""

    def __init__(self, path):
        movie, user, rating, ts = [], [], [], []
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                movie.append(int(row["movieId"]))
                user.append(int(row["userId"]))
                rating.append(float(row["rating"]))
                ts.append(int(row["timestamp"]))
        movie = np.array(movie, np.int64)
        user = np.array(user, np.int64)
        rating = np.array(rating)
        ts = np.array(ts, np.int64)
        self.item_ids = np.unique(movie)                 # sorted external ids
        rows = np.searchsorted(self.item_ids, movie) + ITEM_FIRST
        etype = np.clip(np.rint(rating * 2).astype(np.int64), 1, N_EVENT_TYPES - 1)
        order = np.lexsort((movie, ts, user))
        self.users = []
        bounds = np.flatnonzero(np.diff(user[order])) + 1
        for chunk in np.split(order, bounds):
            self.users.append({"user": int(user[chunk[0]]), "rows": rows[chunk],
                               "ids": movie[chunk], "types": etype[chunk],
                               "times": ts[chunk]})
        self.n_items = ITEM_FIRST + len(self.item_ids)
        self.n_ratings = len(movie)

    def train_part(self, u):
        """The training events of user record u (all but the last two)."""
        return {k: (v[:-2] if isinstance(v, np.ndarray) else v) for k, v in u.items()}

    def request(self, u, split):
        """(Sequence, target row) for split "val" or "test"."""
        j = len(u["rows"]) - (1 if split == "test" else 2)
        seq = Sequence(rows=u["rows"][:j], times=u["times"][:j], types=u["types"][:j],
                       now=int(u["times"][j]))
        return seq, int(u["rows"][j])
