"""SavedModel export and prediction with it.

The export has two signatures, usable with `tf.saved_model.load` and no code of this project:
  serve(images: uint8 (N, S, S, 3)) -> {"probabilities": float32 (N, classes)}
  classify(image_bytes: string (N,)) -> {"classes": int32 (N, 5), "class_names": string (N, 5),
                                          "probabilities": float32 (N, 5)}
`classify` takes encoded JPEG/PNG/BMP/GIF bytes of any size and applies the evaluation pre-processing
(shorter side to 256, central crop) inside the graph.
"""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

import alexnet.metrics  # noqa: F401  registers the smoothed training loss
import alexnet.model  # noqa: F401  registers the custom layers a .keras file names
import alexnet.optim  # noqa: F401  registers the optimizer
from alexnet import rundir
from alexnet.data.preprocess import eval_preprocess
from alexnet.errors import DataError
from alexnet.rundir import RunDir


def load_best_model(run: RunDir) -> keras.Model:
    """The run's best.keras, loaded with safe_mode=True; DataError naming the command to run when there is none."""
    path = run.require(rundir.BEST_MODEL, f"train the run to the end of an epoch with `make train RUN={run.name}`")
    return keras.saving.load_model(path, safe_mode=True)


def export_savedmodel(model: keras.Model, class_names: list[str], export_dir, resize_size: int) -> Path:
    """Writes model as a SavedModel with the `serve` and `classify` signatures; returns export_dir."""
    image_size = model.input.shape[1]
    names = tf.constant(class_names)
    top_k = min(5, len(class_names))

    def serve(images):
        # The signature alone does not check the shape at call time; this names both shapes when they differ.
        images = tf.ensure_shape(images, (None, image_size, image_size, 3))
        return {"probabilities": model(images, training=False)}

    def classify(image_bytes):
        images = tf.map_fn(
            lambda b: eval_preprocess(b, resize_size, image_size),
            image_bytes,
            fn_output_signature=tf.TensorSpec((image_size, image_size, 3), tf.uint8),
        )
        top = tf.math.top_k(model(images, training=False), k=top_k)
        return {"classes": top.indices, "class_names": tf.gather(names, top.indices), "probabilities": top.values}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serve", serve, input_signature=[tf.TensorSpec((None, image_size, image_size, 3), tf.uint8, name="images")]
    )
    archive.add_endpoint("classify", classify, input_signature=[tf.TensorSpec((None,), tf.string, name="image_bytes")])
    export_dir = Path(export_dir)
    archive.write_out(str(export_dir), verbose=False)
    return export_dir


def export_run(run_dir, model: keras.Model | None = None) -> Path:
    """Exports run_dir's best checkpoint (best.keras, loaded with safe_mode) to run_dir/export/.

    model: a model built from the run's config, into which best.keras's weights are read (training passes the
    copy of its model it keeps on the host, so that no second model is built); None: best.keras is loaded.
    The class names and the evaluation pre-processing are the run's own (its classes.json and config.yaml).
    """
    run = RunDir(run_dir)
    config, class_names = run.load_config(), run.class_names()
    if model is None:
        model = load_best_model(run)
    else:
        model.load_weights(run / rundir.BEST_MODEL)  # read from the file as it goes, not into memory first
    export_dir = export_savedmodel(model, class_names, run / rundir.EXPORT, config.data.resize_size)
    print(f"exported {run / rundir.BEST_MODEL} to {export_dir} (signatures: serve, classify)")
    return export_dir


def predict_files(run_dir, files: list[str]) -> list[dict]:
    """Prints and returns the top-5 classes of each image file, using run_dir's exported SavedModel."""
    run = RunDir(run_dir)
    export_dir = run.require(rundir.EXPORT, f"run `make export RUN={run.name}` first")
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise DataError(f"no such file: {', '.join(missing)}")
    classify = tf.saved_model.load(str(export_dir)).signatures["classify"]
    results = []
    for path in files:
        try:
            out = classify(image_bytes=tf.constant([Path(path).read_bytes()]))
        except tf.errors.InvalidArgumentError:
            print(f"{path}: not a readable JPEG, PNG, BMP or GIF image; skipped")
            continue
        names, probabilities = out["class_names"][0].numpy(), out["probabilities"][0].numpy()
        top = [(n.decode(), float(p)) for n, p in zip(names, probabilities, strict=True)]
        results.append({"file": path, "top5": top})
        print(f"{path}: " + ", ".join(f"{name} {p:.1%}" for name, p in top))
    return results
