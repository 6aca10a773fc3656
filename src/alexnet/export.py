"""SavedModel export and prediction with it.

The export has two signatures, usable with `tf.saved_model.load` and no code of this project:
  serve(images: uint8 (N, S, S, 3)) -> {"probabilities": float32 (N, classes)}
  classify(image_bytes: string (N,)) -> {"classes": int32 (N, 5), "class_names": string (N, 5),
                                          "probabilities": float32 (N, 5)}
`classify` takes encoded JPEG/PNG/BMP/GIF bytes of any size and applies the evaluation pre-processing
(shorter side to 256, central crop) inside the graph.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import keras
import tensorflow as tf
import yaml

import alexnet.model  # noqa: F401  registers the custom layers a .keras file names
import alexnet.optim  # noqa: F401  registers the optimizer
from alexnet.input_pipeline import eval_preprocess

BEST_MODEL = "best.keras"
EXPORT_DIR = "export"


def load_best_model(run_dir) -> keras.Model:
    """run_dir's best.keras, loaded with safe_mode=True; exits naming the command to run when there is none."""
    path = Path(run_dir) / BEST_MODEL
    if not path.exists():
        sys.exit(f"error: {path} does not exist; train first with `make train RUN={Path(run_dir).name}`")
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


def export_run(run_dir) -> Path:
    """Exports run_dir's best checkpoint (best.keras, loaded with safe_mode) to run_dir/export/."""
    run_dir = Path(run_dir)
    model = load_best_model(run_dir)
    class_names = json.loads((run_dir / "classes.json").read_text())
    resize_size = yaml.safe_load((run_dir / "config.yaml").read_text())["data"]["resize_size"]
    export_dir = export_savedmodel(model, class_names, run_dir / EXPORT_DIR, resize_size)
    print(f"exported {run_dir / BEST_MODEL} to {export_dir} (signatures: serve, classify)")
    return export_dir


def predict_files(run_dir, files: list[str]) -> list[dict]:
    """Prints and returns the top-5 classes of each image file, using run_dir's exported SavedModel."""
    export_dir = Path(run_dir) / EXPORT_DIR
    if not export_dir.exists():
        sys.exit(f"error: {export_dir} does not exist; run `make export RUN={Path(run_dir).name}` first")
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        sys.exit(f"error: no such file: {', '.join(missing)}")
    classify = tf.saved_model.load(str(export_dir)).signatures["classify"]
    results = []
    for path in files:
        try:
            out = classify(image_bytes=tf.constant([Path(path).read_bytes()]))
        except tf.errors.InvalidArgumentError:
            print(f"{path}: not a readable JPEG, PNG, BMP or GIF image; skipped")
            continue
        top = [(n.decode(), float(p)) for n, p in zip(out["class_names"][0].numpy(), out["probabilities"][0].numpy())]
        results.append({"file": path, "top5": top})
        print(f"{path}: " + ", ".join(f"{name} {p:.1%}" for name, p in top))
    return results
