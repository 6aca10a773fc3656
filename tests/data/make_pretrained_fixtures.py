"""Writes the small trained-network files tests/test_pretrained.py reads, with the outputs each framework gives.

Not part of the test run (it needs PyTorch, which this project does not install): run it once, by hand, in an
environment with torch, numpy and protobuf, and commit what it writes:

    python -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch==2.13.0 numpy protobuf
    /tmp/torchenv/bin/python tests/data/make_pretrained_fixtures.py

    torchvision_w16.pth / .npz     torchvision's alexnet at 1/16 of its widths, 10 classes, saved by torch.save;
                                   its probabilities on 4 images computed by PyTorch itself
    caffe_w16.caffemodel           the paper's two-tower network at 1/16 of its widths as Caffe stores it (the
    caffe_w16_v1.caffemodel        current `layer` form and the older V1 `layers` form), written with the
    caffe_w16.npz                  protobuf runtime from caffe.proto's field numbers; its probabilities computed
                                   by a NumPy forward pass written from Caffe's layer definitions
"""

from pathlib import Path

import numpy as np
import torch
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from torch import nn

HERE = Path(__file__).resolve().parent
CLASSES = 10
SHARPEN, CAFFE_SHARPEN = 300, 0.03  # fc8's weights scaled so that the top probabilities fall between 0.2 and 0.9
# Four different pictures: coarse random patterns (blocks of 33 pixels) in different colours, so that the
# networks' outputs differ from image to image.
_rng = np.random.default_rng(0)
IMAGES = np.clip(np.stack([np.kron(_rng.uniform(0, 255, (7, 7, 3)), np.ones((33, 33, 1)))[:227, :227]
                           * _rng.uniform(0.3, 1.0, 3) for _ in range(4)]), 0, 255).astype(np.uint8)


def torchvision_fixture() -> None:
    """torchvision's AlexNet definition (torchvision/models/alexnet.py) at widths 4-12-24-16-16, fc 256."""
    torch.manual_seed(0)
    model = nn.Module()
    model.features = nn.Sequential(
        nn.Conv2d(3, 4, 11, stride=4, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(4, 12, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(12, 24, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(24, 16, 3, padding=1),
        nn.ReLU(inplace=True), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))
    model.avgpool = nn.AdaptiveAvgPool2d((6, 6))
    model.classifier = nn.Sequential(
        nn.Dropout(0.5), nn.Linear(16 * 6 * 6, 256), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(256, 256),
        nn.ReLU(inplace=True), nn.Linear(256, CLASSES))
    with torch.no_grad():
        model.classifier[6].weight.mul_(SHARPEN)  # outputs far from uniform: a wrong layout shows in them
    model.eval()
    images = IMAGES[:, :224, :224]
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        features = model.avgpool(model.features((x - mean) / std))
        probabilities = torch.softmax(model.classifier(torch.flatten(features, 1)), dim=1).numpy()
    torch.save(model.state_dict(), HERE / "torchvision_w16.pth")
    np.savez(HERE / "torchvision_w16.npz", images=images, probabilities=probabilities)


# ----- Caffe -----

CAFFE_MEAN_BGR = np.array([104.00698793, 116.66876762, 122.67891434])
# name, kind, blob shapes (the paper's layout at 1/16: conv 6-16-24-24-16 with groups of 2 in conv2, 4, 5).
CAFFE_LAYERS = [("conv1", "Convolution", (6, 3, 11, 11)), ("conv2", "Convolution", (16, 3, 5, 5)),
                ("conv3", "Convolution", (24, 16, 3, 3)), ("conv4", "Convolution", (24, 12, 3, 3)),
                ("conv5", "Convolution", (16, 12, 3, 3)), ("fc6", "InnerProduct", (256, 16 * 6 * 6)),
                ("fc7", "InnerProduct", (256, 256)), ("fc8", "InnerProduct", (CLASSES, 256))]
V1_TYPES = {"Convolution": 4, "InnerProduct": 14, "ReLU": 18}


def caffe_messages():
    """NetParameter, LayerParameter, V1LayerParameter and BlobProto classes from caffe.proto's field numbers."""
    file = descriptor_pb2.FileDescriptorProto(name="caffe_subset.proto", package="caffe", syntax="proto2")
    F = descriptor_pb2.FieldDescriptorProto

    def message(name, fields):
        proto = file.message_type.add(name=name)
        for field_name, number, kind, label, type_name, packed in fields:
            field = proto.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = type_name
            if packed:
                field.options.packed = True

    repeated, optional = F.LABEL_REPEATED, F.LABEL_OPTIONAL
    message("BlobShape", [("dim", 1, F.TYPE_INT64, repeated, None, True)])
    message("BlobProto", [("shape", 7, F.TYPE_MESSAGE, optional, ".caffe.BlobShape", False),
                          ("data", 5, F.TYPE_FLOAT, repeated, None, True),
                          ("num", 1, F.TYPE_INT32, optional, None, False),
                          ("channels", 2, F.TYPE_INT32, optional, None, False),
                          ("height", 3, F.TYPE_INT32, optional, None, False),
                          ("width", 4, F.TYPE_INT32, optional, None, False)])
    message("LayerParameter", [("name", 1, F.TYPE_STRING, optional, None, False),
                               ("type", 2, F.TYPE_STRING, optional, None, False),
                               ("bottom", 3, F.TYPE_STRING, repeated, None, False),
                               ("top", 4, F.TYPE_STRING, repeated, None, False),
                               ("blobs", 7, F.TYPE_MESSAGE, repeated, ".caffe.BlobProto", False)])
    message("V1LayerParameter", [("bottom", 2, F.TYPE_STRING, repeated, None, False),
                                 ("top", 3, F.TYPE_STRING, repeated, None, False),
                                 ("name", 4, F.TYPE_STRING, optional, None, False),
                                 ("type", 5, F.TYPE_INT32, optional, None, False),
                                 ("blobs", 6, F.TYPE_MESSAGE, repeated, ".caffe.BlobProto", False)])
    message("NetParameter", [("name", 1, F.TYPE_STRING, optional, None, False),
                             ("layers", 2, F.TYPE_MESSAGE, repeated, ".caffe.V1LayerParameter", False),
                             ("layer", 100, F.TYPE_MESSAGE, repeated, ".caffe.LayerParameter", False)])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"caffe.{name}"))
            for name in ("NetParameter", "BlobProto")}


def caffe_weights():
    rng = np.random.default_rng(1)
    weights = {}
    for name, _, shape in CAFFE_LAYERS:
        fan_in = int(np.prod(shape[1:]))
        kernel = rng.normal(0, np.sqrt(2 / fan_in), shape).astype(np.float32)
        if name == "fc8":
            kernel *= CAFFE_SHARPEN
        weights[name] = [kernel, rng.normal(0, 0.1, shape[0]).astype(np.float32)]
    weights["conv1"][0] *= 20  # activations of tens, as 0-255 inputs give: Caffe's LRN normalises there
    return weights


def write_caffemodel(path, weights, v1: bool) -> None:
    classes = caffe_messages()
    net = classes["NetParameter"](name="AlexNet")
    bottom = "data"
    for name, kind, _ in CAFFE_LAYERS:
        layer = net.layers.add(name=name, type=V1_TYPES[kind]) if v1 else net.layer.add(name=name, type=kind)
        layer.bottom.append(bottom)
        layer.top.append(name)
        for blob_values in weights[name]:
            blob = layer.blobs.add()
            blob.data.extend(blob_values.ravel().tolist())
            if v1:  # the older 4-D shape: a matrix is (1, 1, out, in), a bias (1, 1, 1, out)
                dims = (1,) * (4 - blob_values.ndim) + blob_values.shape
                blob.num, blob.channels, blob.height, blob.width = dims
            else:
                blob.shape.dim.extend(blob_values.shape)
        relu = net.layers.add(name=f"relu{name[-1]}", type=V1_TYPES["ReLU"]) if v1 else net.layer.add(
            name=f"relu{name[-1]}", type="ReLU")
        relu.bottom.append(name)
        relu.top.append(name)
        bottom = name
    path.write_bytes(net.SerializeToString())


def conv(x, kernel, bias, stride=1, pad=0, group=1):
    """Caffe's convolution, NCHW, by explicit windows."""
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    n, c, h, w = x.shape
    out, per_group, kh, kw = kernel.shape
    oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1
    result = np.zeros((n, out, oh, ow))
    for g in range(group):
        xs = x[:, g * per_group : (g + 1) * per_group]
        ks = kernel[g * out // group : (g + 1) * out // group]
        for i in range(oh):
            for j in range(ow):
                patch = xs[:, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
                result[:, g * out // group : (g + 1) * out // group, i, j] = np.einsum("nchw,ochw->no", patch, ks)
    return result + bias[None, :, None, None]


def lrn(x, size=5, alpha=1e-4, beta=0.75, k=1.0):
    """Caffe's LRN across channels: x / (k + alpha / size * sum of x^2 over size neighbouring channels)^beta."""
    squares = np.pad(x**2, ((0, 0), (size // 2, size // 2), (0, 0), (0, 0)))
    window = sum(squares[:, i : i + x.shape[1]] for i in range(size))
    return x / (k + alpha / size * window) ** beta


def max_pool(x, size=3, stride=2):
    n, c, h, w = x.shape
    oh, ow = int(np.ceil((h - size) / stride)) + 1, int(np.ceil((w - size) / stride)) + 1  # Caffe rounds up
    return np.stack([np.stack([x[:, :, i * stride : i * stride + size, j * stride : j * stride + size].max(axis=(2, 3))
                               for j in range(ow)], -1) for i in range(oh)], -2)


def caffe_forward(images, weights):
    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    x = images[..., ::-1].astype(np.float64) - CAFFE_MEAN_BGR  # RGB -> BGR, minus the mean pixel
    x = x.transpose(0, 3, 1, 2)
    x = max_pool(lrn(relu(conv(x, *weights["conv1"], stride=4))))
    x = max_pool(lrn(relu(conv(x, *weights["conv2"], pad=2, group=2))))
    x = relu(conv(x, *weights["conv3"], pad=1))
    x = relu(conv(x, *weights["conv4"], pad=1, group=2))
    x = max_pool(relu(conv(x, *weights["conv5"], pad=1, group=2)))
    x = x.reshape(len(x), -1)
    for name in ("fc6", "fc7"):
        x = relu(x @ weights[name][0].T + weights[name][1])
    logits = x @ weights["fc8"][0].T + weights["fc8"][1]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def caffe_fixture() -> None:
    weights = caffe_weights()
    write_caffemodel(HERE / "caffe_w16.caffemodel", weights, v1=False)
    write_caffemodel(HERE / "caffe_w16_v1.caffemodel", weights, v1=True)
    np.savez(HERE / "caffe_w16.npz", images=IMAGES, probabilities=caffe_forward(IMAGES, weights))


if __name__ == "__main__":
    torchvision_fixture()
    caffe_fixture()
    for path in sorted(HERE.glob("*_w16*")):
        print(f"{path.name}: {path.stat().st_size:,} bytes")
