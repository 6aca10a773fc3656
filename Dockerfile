# The image deploy/trainjob.yaml and deploy/tfjob.yaml run: TensorFlow's own image of the version requirements.txt
# pins, with requirements.txt's pinned set and this package installed as `make install` installs them, in the
# working directory the manifests name, and their command as its command.
#
#   make image IMAGE=registry.example.com/alexnet-keras:latest    # docker build (GPU: CUDA inside)
#   docker push registry.example.com/alexnet-keras:latest         # to the registry the cluster pulls from
#   make image BASE_IMAGE=tensorflow/tensorflow:2.21.0            # the CPU variant
#
# Not built on the machine this project is developed on (it has no container runtime): tests/test_install.py
# holds the base image's tag to requirements.txt's TensorFlow, the requirements file to make install's and the
# command to the manifests'. The base image's Python must be requires-python's (3.11 or later): pip refuses the
# package otherwise, and the build stops there.
ARG BASE_IMAGE=tensorflow/tensorflow:2.21.0-gpu
FROM ${BASE_IMAGE}

WORKDIR /workspace/alexnet-keras

# The manifests run .venv/bin/python, as after `make install`. The environment sees the image's own packages
# (--system-site-packages), so TensorFlow stays the image's build of the pinned version, with its CUDA libraries;
# pip adds the rest of the pinned set. The image's pip does the installing (no ensurepip needed).
RUN python3 -m venv --without-pip --system-site-packages .venv
COPY requirements.txt ./
RUN .venv/bin/python -m pip install --no-cache-dir -r requirements.txt

COPY . .
RUN .venv/bin/python -m pip install --no-cache-dir --no-deps . && rm -rf build src/*.egg-info

# deploy/'s command (logs/ and data/ are volumes the manifests mount here); `docker run IMAGE` trains the same.
CMD [".venv/bin/python", "-m", "alexnet", "train", "--config", "configs/imagenet2012.yaml", "--run", "imagenet2012"]
