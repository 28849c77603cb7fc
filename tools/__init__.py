"""pgformer's Python side: reference models, data, exporters, training and
evaluation.  Run the scripts as modules from the repository root, e.g.

    python3 -m tools.train.fintrec --help
    python3 -m tools.eval.fintrec demo/models/fintrec_movielens.pgf

Layers, each importing only from the ones above it in this list
(test/setup/test_layers.sh checks it):

    tools.pgf       the model-file format (.pgf), writer and reader
    tools.models    PyTorch reference models and the tokenizer
    tools.data      datasets: MovieLens, Hiformer's features, Fashion-MNIST
    tools.metrics   quality metrics and the evaluation loops trainers share
    tools.export    exporters and converters (.pgf, Hugging Face, ONNX)
    tools.train     training scripts of the demo models
    tools.eval      evaluation scripts

Golden-file and SQL-case generators for the tests live in test/gen/.
"""
