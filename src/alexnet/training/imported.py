"""`make import WEIGHTS=... RUN=name`: a network another framework trained, as a finished run directory.

    make import WEIGHTS=imagenet RUN=torchvision                        # torchvision's (downloaded once)
    make import WEIGHTS=path/to/bvlc_alexnet.caffemodel RUN=caffe       # BVLC's
    make eval RUN=caffe                    # centre-crop and 10-crop errors on ILSVRC-2012 (TFDS imagenet2012)
    make report RUN=caffe                  # its conv1 filters (the paper's Figure 3) and the evaluation

The run directory holds what eval, export, predict and report read from a run trained here: the resolved
config (configs/imagenet2012.yaml's data unless --config or overrides name other data of as many classes,
and the file's layout), the class names (for ImageNet the WordNet ids, from the labels TFDS ships with
imagenet2012, offline), best.keras, the SavedModel, conv1's filters in TensorBoard,
and imported.json (where the weights came from, written last: it marks the run complete, so `make train`
never writes over it).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import keras
import tensorflow as tf

from alexnet import rundir, tags
from alexnet.applications import fetch_torchvision_weights, load_weights, source_weights
from alexnet.architectures import build_from_config
from alexnet.config import WEIGHT_FILE_LAYOUTS, load_config
from alexnet.data.pipeline import dataset_info
from alexnet.errors import DataError
from alexnet.export import export_run
from alexnet.files import write_json
from alexnet.records import ImportedNetwork, provenance
from alexnet.rundir import RunDir, RunLock
from alexnet.training.pictures import conv1_filter_grid, first_convolution

# The published single-network errors on ILSVRC-2012 validation, one centre crop (top-1, top-5).
PUBLISHED_CENTRE = {"torchvision": (0.4348, 0.2093), "caffe": (0.429, 0.198)}


def imagenet_class_names() -> list[str]:
    """The 1,000 ILSVRC-2012 classes as WordNet ids, in the sorted order both frameworks' networks use."""
    names = (resources.files("tensorflow_datasets") / "datasets" / "imagenet2012" / "labels.txt").read_text().split()
    if len(names) != 1000:
        raise DataError(f"tensorflow_datasets' imagenet2012 labels.txt has {len(names)} names, not 1000")
    return names


def import_weights(weights: str, run_dir: str | Path, config_path: str | Path, overrides: list[str] = ()) -> Path:
    """Writes the run directory of the module doc for weights ("imagenet" or a .pth / .caffemodel path)."""
    path = fetch_torchvision_weights() if weights == "imagenet" else Path(weights)
    if path.suffix.lower() not in WEIGHT_FILE_LAYOUTS:
        raise DataError(f"WEIGHTS={weights}: expected 'imagenet', torchvision's alexnet .pth or BVLC's "
                        f"bvlc_alexnet.caffemodel")
    trained = source_weights(path)
    classes = len(trained["fc8"][-1])
    config = load_config(config_path, [f"model.init_from={path}", f"model.num_classes={classes}", *overrides])
    imagenet = config.data.source == "tfds" and (config.data.name or "").startswith("imagenet2012")
    names = imagenet_class_names() if imagenet else dataset_info(config.data).class_names
    if len(names) != classes:
        data = f"{config.data.source} {config.data.name or config.data.dir}"
        raise DataError(f"{path} classifies {classes} classes, {data} has {len(names)}: import it with data of its "
                        f"classes (ILSVRC-2012 for 1000)")
    run = RunDir(run_dir)
    with RunLock(run.path):
        run.start(config)
        model = build_from_config(config.model, len(names))
        load_weights(model, trained, path)
        write_json(run / rundir.CLASSES, names)
        model.save(run / rundir.BEST_MODEL)
        writer = tf.summary.create_file_writer(str(run.path))
        with writer.as_default(step=0):
            kernel = keras.ops.convert_to_numpy(first_convolution(model).kernel)
            tf.summary.image(tags.FILTERS, conv1_filter_grid(kernel), step=0)
        writer.close()
        export_dir = export_run(run.path)
        record = ImportedNetwork(provenance(), str(path), config.model.layout, model.count_params(),
                                 *PUBLISHED_CENTRE[config.model.layout])
        record.write(run / rundir.IMPORTED)
    print(f"imported {path} ({record.layout}'s network, {record.parameters:,} parameters) into {run.path}\n"
          f"SavedModel:  {export_dir}\n"
          f"evaluate:    make eval RUN={run.name}   (ILSVRC-2012 through TFDS: the archives in data/tfds/downloads/"
          f"manual/)\n"
          f"Figure 3:    make report RUN={run.name}", flush=True)
    return run.path
