"""The AUC (tie-aware Mann-Whitney), the logistic-regression
baseline (dense features normalised as the model does, categorical and
multi-hot features one-hot / mean-of-one-hot, L2, full-batch L-BFGS) and
batched prediction, on the time split of tools/data/hiformer_features.py
(training rows before the cutoff, the latest 20% of events held out).
"""
import numpy as np
import torch

from tools.models import hiformer as hf


def auc(labels, scores):
    """Area under the ROC curve, ties counted half."""
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos = labels.sum()
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    ranks = np.empty(len(s))
    _, first, counts = np.unique(s, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def design_matrix(features, codes, weights, dense):
    """[B, n] inputs of the logistic regression: normalised dense values and
    the one-hot (multi-hot: mean of one-hot) of every categorical feature."""
    cols = [dense]
    cats = [f for f in features if f.kind != hf.DENSE]
    for f, c, w in zip(cats, codes, weights):
        onehot = torch.zeros(c.shape[0], f.vocab_size)
        onehot.scatter_add_(1, c, w)
        cols.append(onehot)
    return torch.cat(cols, 1)


def train_logistic(x, y, l2=1e-4, iters=200):
    """Weights [n], bias, fitted by L-BFGS on the mean BCE + l2 |w|^2."""
    torch.manual_seed(0)
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=iters, history_size=20,
                            line_search_fn="strong_wolfe")
    y = torch.as_tensor(y, dtype=torch.float32)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y) \
            + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def logistic_baseline(features, ex, enc_all, task=0):
    """Held-out AUC of a logistic regression trained on the training rows."""
    codes, weights, dense = enc_all
    x = design_matrix(features, codes, weights, dense)
    tr = torch.as_tensor(ex.train)
    te = torch.as_tensor(ex.test)
    w, b = train_logistic(x[tr], ex.labels[ex.train, task])
    scores = (x[te] @ w + b).numpy()
    return auc(ex.labels[ex.test, task], scores)


def predict(model, enc, idx, batch=4096):
    codes, weights, dense = enc
    out = []
    with torch.no_grad():
        for s in range(0, len(idx), batch):
            i = torch.as_tensor(idx[s:s + batch])
            out.append(model([c[i] for c in codes], [w[i] for w in weights], dense[i]))
    return torch.cat(out).numpy()


def encode_examples(features, ex):
    return hf.encode_arrays(features, {f.name: ex.columns[f.name] for f in features})
