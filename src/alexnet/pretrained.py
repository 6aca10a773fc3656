"""Trained AlexNets from other frameworks, read from their files alone (neither PyTorch nor Caffe is needed).

    torchvision   alexnet-owt-7be5be79.pth: torch.save's zip of a pickled state dict and raw tensor storages.
                  The owt layout (model.layout=torchvision): 61,100,840 parameters, 56.5% / 79.1% top-1 / top-5
                  on ILSVRC-2012 validation with one centre crop (torchvision's figures).
    caffe         bvlc_alexnet.caffemodel: a protobuf NetParameter, its layers in the current `layer` (field 100)
                  or the older V1 `layers` (field 2) form. The paper's two towers (model.layout=caffe):
                  60,965,224 parameters, 57.1% / 80.2% (BVLC's figures).

`read_weights(path)` gives {layer name: [kernel, bias]} in Keras's shapes, named as this project names the
paper's layers (conv1..conv5, fc6..fc8), for `alexnet.AlexNet(weights=path)` and `model.init_from`. Both
frameworks store a convolution's kernel as (out, in, height, width) and flatten pool5 as (channel, row,
column), where Keras has (height, width, in, out) and (row, column, channel): fc6's rows are reordered.

Only what a state dict or a caffemodel holds is read: the pickle may name nothing but tensors, storages and
an ordered dict (anything else is refused before it runs), and the protobuf is parsed by field number.
"""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from alexnet.errors import DataError

# torchvision's alexnet weights: the file, its address, and the first 8 hex digits of its SHA-256 (torch.hub's check).
TORCHVISION_FILE = "alexnet-owt-7be5be79.pth"
TORCHVISION_URL = f"https://download.pytorch.org/models/{TORCHVISION_FILE}"
TORCHVISION_SHA256_PREFIX = "7be5be79"
# torchvision's state-dict keys, in the order of the paper's layers.
TORCHVISION_KEYS = {"conv1": "features.0", "conv2": "features.3", "conv3": "features.6", "conv4": "features.8",
                    "conv5": "features.10", "fc6": "classifier.1", "fc7": "classifier.4", "fc8": "classifier.6"}
PAPER_LAYERS = tuple(TORCHVISION_KEYS)
# torch storage class names -> NumPy dtypes (the ones a float model's state dict holds).
TORCH_DTYPES = {"FloatStorage": np.float32, "HalfStorage": np.float16, "DoubleStorage": np.float64,
                "BFloat16Storage": None, "LongStorage": np.int64, "IntStorage": np.int32, "ByteStorage": np.uint8}


def read_weights(path: str | Path) -> dict[str, list[np.ndarray]]:
    """{paper layer name: [Keras kernel, bias]} of a torchvision .pth or a Caffe .caffemodel; DataError naming the
    file and what was expected when it is neither, or not an AlexNet."""
    path = Path(path)
    if path.suffix.lower() == ".pth":
        return keras_weights(torchvision_layers(read_torch_state_dict(path), path), path)
    if path.suffix.lower() == ".caffemodel":
        return keras_weights(caffe_layers(path), path)
    raise DataError(f"{path}: expected torchvision's alexnet .pth or BVLC's bvlc_alexnet.caffemodel (or a .keras file)")


def keras_weights(layers: dict[str, list[np.ndarray]], path: Path) -> dict[str, list[np.ndarray]]:
    """(out, in, h, w) kernels and (out, in) matrices, as both frameworks store them, in Keras's shapes."""
    missing = [name for name in PAPER_LAYERS if name not in layers]
    if missing:
        raise DataError(f"{path} is not an AlexNet: it has no {', '.join(missing)} (expected the layers "
                        f"{', '.join(PAPER_LAYERS)} with a weight and a bias each)")
    weights = {}
    for name in PAPER_LAYERS:
        kernel, bias = layers[name]
        if name.startswith("conv"):
            if kernel.ndim != 4:
                raise DataError(f"{path}: {name}'s weight has shape {kernel.shape}, expected (out, in, height, width)")
            kernel = kernel.transpose(2, 3, 1, 0)
        else:
            if kernel.ndim != 2:
                raise DataError(f"{path}: {name}'s weight has shape {kernel.shape}, expected (out, in)")
            kernel = kernel.T
        weights[name] = [np.ascontiguousarray(kernel, np.float32), np.asarray(bias, np.float32).reshape(-1)]
    channels = weights["conv5"][0].shape[-1]
    rows, out = weights["fc6"][0].shape
    side = int(round((rows / channels) ** 0.5))
    if side * side * channels != rows:
        raise DataError(f"{path}: fc6 takes {rows} inputs, not conv5's {channels} maps of a square")
    # (channel, row, column) -> (row, column, channel): the order Keras's Flatten gives pool5.
    weights["fc6"][0] = np.ascontiguousarray(
        weights["fc6"][0].reshape(channels, side, side, out).transpose(1, 2, 0, 3).reshape(rows, out))
    return weights


# ----- torchvision: torch.save's zip format -----


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickles a state dict with the tensors rebuilt from the archive's storages, refusing any other class."""

    def __init__(self, file, archive: zipfile.ZipFile, prefix: str, path: Path):
        super().__init__(file)
        self.archive, self.prefix, self.path = archive, prefix, path
        self.storages: dict[str, np.ndarray] = {}

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return lambda tensor, requires_grad, hooks: tensor
        if module == "torch" and name in TORCH_DTYPES:
            return name
        raise DataError(f"{self.path} holds {module}.{name}, which a state dict of tensors does not: expected "
                        f"torchvision's alexnet state dict (torch.save(model.state_dict(), path))")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, count = pid
        if kind != "storage" or TORCH_DTYPES.get(storage_type) is None:
            raise DataError(f"{self.path}: storage {storage_type} is not one this reader knows (float32 expected)")
        if key not in self.storages:
            raw = self.archive.read(f"{self.prefix}/data/{key}")
            self.storages[key] = np.frombuffer(raw, TORCH_DTYPES[storage_type], count)
        return self.storages[key]


def _rebuild_tensor(storage, offset, size, stride, *args):
    """torch._utils._rebuild_tensor_v2 for NumPy: a strided view of the storage, copied; ValueError (a damaged
    file) when the view would reach past the storage."""
    last = offset + sum((n - 1) * step for n, step in zip(size, stride, strict=True)) if all(size) else offset - 1
    if offset < 0 or min(stride, default=0) < 0 or last >= len(storage):
        raise ValueError(f"a tensor of shape {tuple(size)} reaches past its storage of {len(storage)} values")
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size), strides=[s * item for s in stride])
    return np.array(view)


def read_torch_state_dict(path: Path) -> dict[str, np.ndarray]:
    """{key: array} of a torch.save'd state dict (the zip format torch has written since 1.6), without torch."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{path} is not a state dict saved by torch.save in its zip format ({e}): expected "
                        f"torchvision's {TORCHVISION_FILE}") from e
    with archive:
        pickles = [name for name in archive.namelist() if name.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise DataError(f"{path} is a zip without torch.save's data.pkl: expected torchvision's {TORCHVISION_FILE}")
        prefix = pickles[0][: -len("/data.pkl")]
        byteorder = f"{prefix}/byteorder"  # written by torch 2.1 and later; older files are little-endian
        if byteorder in archive.namelist() and archive.read(byteorder) != b"little":
            raise DataError(f"{path} was saved on a big-endian machine; this reader takes little-endian files")
        try:
            with archive.open(pickles[0]) as f:
                state = _StateDictUnpickler(f, archive, prefix, path).load()
        except (pickle.UnpicklingError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            raise DataError(f"{path} is damaged: {e}; expected torchvision's {TORCHVISION_FILE}") from e
    if not isinstance(state, dict):
        raise DataError(f"{path} holds a {type(state).__name__}, not a state dict: expected torchvision's "
                        f"{TORCHVISION_FILE}")
    return state


def torchvision_layers(state: dict, path: Path) -> dict[str, list[np.ndarray]]:
    """{paper layer name: [weight, bias]} of torchvision's alexnet state dict."""
    layers = {}
    for name, key in TORCHVISION_KEYS.items():
        if f"{key}.weight" in state and f"{key}.bias" in state:
            layers[name] = [state[f"{key}.weight"], state[f"{key}.bias"]]
    if len(layers) != len(TORCHVISION_KEYS):
        raise DataError(f"{path} is not torchvision's alexnet state dict: expected the keys "
                        f"{', '.join(k + '.weight' for k in TORCHVISION_KEYS.values())} (and their biases); it has "
                        f"{', '.join(list(state)[:8])}{'...' if len(state) > 8 else ''}")
    return layers


def torchvision_file_ok(path: Path) -> bool:
    """Whether path's SHA-256 starts with torchvision's published prefix for its alexnet file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest().startswith(TORCHVISION_SHA256_PREFIX)


# ----- Caffe: a protobuf NetParameter, parsed by field number (BVLC/caffe's caffe.proto) -----

# NetParameter: layer = 100 (LayerParameter), layers = 2 (V1LayerParameter, the older form).
# LayerParameter: name = 1, blobs = 7. V1LayerParameter: name = 4, blobs = 6.
# BlobProto: shape = 7 (BlobShape: dim = 1, packed int64), data = 5 (packed float), double_data = 8,
# num = 1, channels = 2, height = 3, width = 4 (the older 4-D shape).
NET_LAYER, NET_V1_LAYERS = 100, 2
LAYER_FIELDS = {NET_LAYER: {"name": 1, "blobs": 7}, NET_V1_LAYERS: {"name": 4, "blobs": 6}}


def _fields(data: bytes, path: Path) -> list[tuple[int, int, object]]:
    """(field number, wire type, value) of every field of one protobuf message; length-delimited values as bytes."""
    fields, position = [], 0
    try:
        while position < len(data):
            key, position = _varint(data, position)
            number, wire = key >> 3, key & 7
            if wire == 0:
                value, position = _varint(data, position)
            elif wire == 1:
                value, position = data[position : position + 8], position + 8
            elif wire == 2:
                length, position = _varint(data, position)
                value, position = data[position : position + length], position + length
            elif wire == 5:
                value, position = data[position : position + 4], position + 4
            else:
                raise ValueError(f"wire type {wire}")
            if position > len(data):
                raise ValueError("a field runs past the end")
            fields.append((number, wire, value))
    except (ValueError, IndexError) as e:
        raise DataError(f"{path} is not a Caffe model (a protobuf NetParameter) or is cut short: {e}") from e
    return fields


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
        if shift > 63:
            raise ValueError("a varint longer than 10 bytes")


def _blob(data: bytes, path: Path) -> np.ndarray:
    """One BlobProto as an array of its shape (float data, packed or not, or double data)."""
    values, shape, legacy = [], None, {}
    for number, wire, value in _fields(data, path):
        if number == 5:  # packed (wire type 2) or one float at a time (wire type 5): little-endian float32s
            values.append(np.frombuffer(value, "<f4"))
        elif number == 8:
            values.append(np.frombuffer(value, "<f8").astype(np.float32))
        elif number == 7:
            shape = []
            for dim_number, dim_wire, dim in _fields(value, path):
                if dim_number == 1 and dim_wire == 2:  # packed
                    position = 0
                    while position < len(dim):
                        size, position = _varint(dim, position)
                        shape.append(size)
                elif dim_number == 1:
                    shape.append(dim)
        elif number in (1, 2, 3, 4) and wire == 0:
            legacy[number] = value
    if shape is None:
        shape = [legacy.get(n, 0) for n in (1, 2, 3, 4)]
        shape = shape if all(shape) else [d for d in shape if d] or [0]
    array = np.concatenate(values) if values else np.zeros(0, np.float32)
    if array.size != int(np.prod(shape)):
        raise DataError(f"{path}: a blob of shape {shape} holds {array.size} values")
    return array.reshape(shape)


def caffe_layers(path: Path) -> dict[str, list[np.ndarray]]:
    """{layer name: [weight, bias]} of the layers with blobs in a .caffemodel, in either layer form."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e}") from e
    layers = {}
    for number, wire, value in _fields(data, path):
        if number not in LAYER_FIELDS or wire != 2:
            continue
        names = LAYER_FIELDS[number]
        name, blobs = None, []
        for field, field_wire, content in _fields(value, path):
            if field == names["name"] and field_wire == 2:
                name = content.decode(errors="replace")
            elif field == names["blobs"] and field_wire == 2:
                blobs.append(_blob(content, path))
        if name and len(blobs) == 2:
            weight, bias = blobs
            if weight.ndim == 4 and name.startswith("fc"):  # V1 files store a matrix as (1, 1, out, in)
                weight = weight.reshape(weight.shape[-2], weight.shape[-1])
            layers[name] = [weight, bias.reshape(-1)]
    if not layers:
        raise DataError(f"{path} has no layers with weights: expected BVLC's bvlc_alexnet.caffemodel, a protobuf "
                        f"NetParameter whose layers conv1..conv5, fc6..fc8 each hold a weight and a bias blob")
    return layers
