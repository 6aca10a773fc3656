"""The package away from the checkout: the wheel and what it ships (the configs, the licence, the GPU extra), configs
found by name and the demo data made on first use from any directory, the Python floor, the image for deploy/.

The slow test installs the wheel into an environment of its own, where the checkout cannot be imported (the
dependencies come from this environment's site-packages through a .pth line, whose own .pth files, the editable
install's among them, are not read), and trains and predicts from an empty directory.
"""

import email
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import venv
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from alexnet import __main__ as entry
from alexnet.config import find_config, load_config, shipped_configs
from alexnet.data.demo import CLASSES, MANIFEST
from alexnet.data.pipeline import dataset_info
from alexnet.errors import ConfigError
from helpers import CLUSTER_COMMAND, ROOT, TINY, encode, solid

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CONFIG_FILES = sorted((ROOT / "configs").glob("*.yaml"))
# What the wheel is built from: the files pyproject.toml names (readme, license-files, package-dir).
BUILD_SOURCES = ("pyproject.toml", "README.md", "LICENSE", "src", "configs")


def pinned(name: str) -> str:
    """requirements.txt's version of a package."""
    (version,) = re.findall(rf"^{re.escape(name)}==(\S+)$", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
    return version


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `pip wheel` builds from a copy of the sources (a build in the checkout would leave build/ there)."""
    where = tmp_path_factory.mktemp("wheel")
    (where / "src").mkdir()
    for name in BUILD_SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, where / "src" / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, where / "src" / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(where / "dist"), str(where / "src")], check=True, capture_output=True,
                   timeout=120)
    (built,) = (where / "dist").glob("alexnet_keras-*.whl")
    return built


# ----- the wheel and its metadata -----


def test_the_wheel_ships_every_module_the_configs_and_the_licence(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {str(p.relative_to(ROOT / "src")) for p in (ROOT / "src" / "alexnet").rglob("*.py")}
    assert modules <= names, sorted(modules - names)  # pyproject.toml's packages list every sub-package
    assert {f"alexnet/configs/{p.name}" for p in CONFIG_FILES} <= names
    dist_info = f"alexnet_keras-{PYPROJECT['project']['version']}.dist-info"
    assert zipfile.ZipFile(wheel).read(f"{dist_info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
    meta = email.message_from_bytes(zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA"))
    assert meta["License-Expression"] == "Apache-2.0" and meta["License-File"] == "LICENSE"
    assert meta["Requires-Python"] == PYPROJECT["project"]["requires-python"]
    assert f'tensorflow[and-cuda]=={pinned("tensorflow")}; extra == "gpu"' in meta.get_all("Requires-Dist")


def test_the_licence_is_apache_2_with_the_projects_copyright():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("Copyright 2026 The alexnet-keras Authors.\n\n")
    body = [line.strip() for line in text.splitlines()[2:] if line.strip()]
    assert body[:3] == ["Apache License", "Version 2.0, January 2004", "http://www.apache.org/licenses/"]
    assert "END OF TERMS AND CONDITIONS" in body and body[-1] == "limitations under the License."
    assert len(body) > 150  # the whole text, not a pointer to it
    assert PYPROJECT["project"]["license"] == "Apache-2.0" and PYPROJECT["project"]["license-files"] == ["LICENSE"]


def test_the_gpu_extra_is_tensorflow_with_cuda_at_the_pinned_version():
    assert PYPROJECT["project"]["optional-dependencies"]["gpu"] == [f"tensorflow[and-cuda]=={pinned('tensorflow')}"]


def test_version_is_the_installed_metadatas(capsys):
    with pytest.raises(SystemExit) as done:
        entry.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"alexnet-keras {metadata.version('alexnet-keras')}\n"


# ----- configs by name, data on first use -----


def test_the_shipped_configs_are_the_checkouts_configs_folder():
    shipped = shipped_configs()
    assert list(shipped) == [p.stem for p in CONFIG_FILES]
    for path in CONFIG_FILES:
        assert shipped[path.stem].read_text() == path.read_text()


def test_a_config_is_found_by_name_from_any_directory_and_a_file_still_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    demo = load_config(ROOT / "configs" / "demo.yaml")
    for name in ("demo", "demo.yaml", "configs/demo.yaml"):  # the Makefile's and the manifests' form too
        assert load_config(name) == demo, name
    assert load_config("imagenet2012").data.name == "imagenet2012"
    (tmp_path / "demo.yaml").write_text("train:\n  epochs: 3\n")  # a file of that name here is read instead
    assert load_config("demo.yaml").train.epochs == 3 and load_config("demo").train.epochs == 14
    for missing in ("nope", "elsewhere/demo.yaml", "demo.yml"):
        with pytest.raises(ConfigError) as error:
            find_config(missing)
        assert str(error.value) == (
            f"config file {missing} does not exist, and no config of that name is shipped: give the path of a YAML "
            f"file or one of the shipped names, claims, compare, demo, folder, imagenet2012, imagenette "
            f"(e.g. --config demo)")


def test_the_demo_data_is_made_on_first_use_where_data_dir_says(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    data = load_config("demo", ["data.demo_images_per_class=1"]).data

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:  # Ctrl-C halfway: no half set left to be read as the data next time
        patched.setattr("alexnet.data.demo.write_all", interrupted)
        with pytest.raises(KeyboardInterrupt):
            dataset_info(data)
    assert list((tmp_path / "data").iterdir()) == []
    capsys.readouterr()
    info = dataset_info(data)
    out = capsys.readouterr().out
    assert out.splitlines()[0] == (f"demo data: none in data/demo yet, making it there on first use "
                                   f"({tmp_path / 'data' / 'demo'})")
    assert (tmp_path / "data" / "demo" / MANIFEST).is_file() and (info.num_train, info.num_val) == (10, 10)
    assert dataset_info(data) == info and capsys.readouterr().out == ""  # made once
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["demo"]  # written beside, renamed into place
    # A folder of one's own images read through the demo source (make eval ARGS="data.dir=...") is left as it is.
    for split in ("train", "val"):
        (tmp_path / "mine" / split / "apple").mkdir(parents=True)
        (tmp_path / "mine" / split / "apple" / "a.jpg").write_bytes(encode(solid("RGB", (1, 2, 3)), "JPEG"))
    mine = load_config("demo", ["data.dir=mine"]).data
    assert dataset_info(mine).class_names == ["apple"] and capsys.readouterr().out == ""
    assert sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "mine").rglob("*.jpg")) == [
        "mine/train/apple/a.jpg", "mine/val/apple/a.jpg"]
    folder = load_config(None, ["data.source=folder", "data.dir=elsewhere"]).data
    with pytest.raises(Exception, match="image folder elsewhere/train does not exist"):
        dataset_info(folder)  # only the demo source is generated
    assert not (tmp_path / "elsewhere").exists()


# ----- the Python floor -----


def test_requires_python_ruff_and_vermin_name_one_floor_and_it_is_the_codes():
    floor = re.fullmatch(r">=(3\.\d+)", PYPROJECT["project"]["requires-python"])[1]
    assert PYPROJECT["tool"]["ruff"]["target-version"] == "py" + floor.replace(".", "")
    makefile = (ROOT / "Makefile").read_text()
    assert "PYTHON_FLOOR := $(shell sed -n 's/^requires-python = \">=\\([0-9.]*\\)\"$$/\\1/p' pyproject.toml)" \
        in makefile
    assert "vermin --no-tips --eval-annotations --quiet --target=$(PYTHON_FLOOR) src tests" in makefile
    assert pinned("vermin")
    vermin = Path(sys.executable).parent / "vermin"

    def meets(target: str) -> bool:
        return subprocess.run([str(vermin), "--no-tips", "--eval-annotations", "--quiet", f"--target={target}",
                               str(ROOT / "src"), str(ROOT / "tests")], capture_output=True).returncode == 0

    # The code needs exactly the floor (vermin's exact target: no newer Python, and not runnable on an older one);
    # the one before fails, as the check must be able to.
    assert meets(floor) and not meets(f"3.{int(floor.split('.')[1]) - 1}")


# ----- the image deploy/ runs -----


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined, comments left out."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    return [tuple(line.split(None, 1)) for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_the_image_is_tensorflows_of_the_pinned_version_with_make_installs_set_and_the_manifests_command():
    steps = dockerfile_instructions()
    tensorflow = pinned("tensorflow")
    assert steps[0] == ("ARG", f"BASE_IMAGE=tensorflow/tensorflow:{tensorflow}-gpu")
    assert steps[1] == ("FROM", "${BASE_IMAGE}")
    cpu_variant = f"make image BASE_IMAGE=tensorflow/tensorflow:{tensorflow}"
    assert cpu_variant in (ROOT / "Dockerfile").read_text()
    assert cpu_variant in (ROOT / "docs" / "distributed.md").read_text()
    # The same requirements file as `make install`, then the package without dependencies.
    makefile = (ROOT / "Makefile").read_text()
    install = re.search(r"^\$\(VENV\)/\.installed:.*?\n\n", makefile, re.MULTILINE | re.DOTALL)[0]
    assert "$(PY) -m pip install --quiet -r requirements.txt" in install
    runs = [args for step, args in steps if step == "RUN"]
    assert ("COPY", "requirements.txt ./") in steps
    assert any(re.fullmatch(r"\.venv/bin/python -m pip install --no-cache-dir -r requirements\.txt", r) for r in runs)
    assert any(r.startswith(".venv/bin/python -m pip install --no-cache-dir --no-deps . ") for r in runs)
    # The manifests' working directory, image and command.
    containers = [doc["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]
                  for doc in yaml.safe_load_all((ROOT / "deploy" / "tfjob.yaml").read_text())]
    containers += [doc["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
                   ["containers"][0] for doc in yaml.safe_load_all((ROOT / "deploy" / "trainjob.yaml").read_text())
                   if doc["kind"] == "ClusterTrainingRuntime"]
    assert len(containers) == 2
    (image,) = re.findall(r"^IMAGE \?= (\S+)$", makefile, re.MULTILINE)
    for container in containers:
        assert ("WORKDIR", container["workingDir"]) in steps
        assert container["image"] == image
        assert container["command"] == CLUSTER_COMMAND.split()
    cmd = [json.loads(args) for step, args in steps if step == "CMD"]
    assert cmd == [CLUSTER_COMMAND.split()]
    assert "docker build $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) --tag $(IMAGE) ." in makefile
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {"data", "logs", ".venv", ".git"} <= set(ignored)  # volumes in the pods, or this machine's


# ----- installed away from the checkout -----


def installed_environment(wheel: Path, where: Path) -> Path:
    """A new virtual environment holding the wheel; its dependencies are this environment's site-packages."""
    venv.create(where, with_pip=False)
    (site,) = (where / "lib").glob("python3.*/site-packages")
    deps = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    (site / "_dependencies.pth").write_text("\n".join(deps) + "\n")
    subprocess.run([str(where / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--ignore-installed", str(wheel)], check=True, capture_output=True, timeout=120)
    return where


@pytest.mark.slow
def test_the_installed_wheel_trains_the_demo_and_predicts_from_an_empty_directory(wheel, tmp_path):
    started = time.perf_counter()
    environment = installed_environment(wheel, tmp_path / "venv")
    work = tmp_path / "empty"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"

    def run(*args, timeout=240):
        done = subprocess.run([str(a) for a in args], cwd=work, env=env, capture_output=True, text=True,
                              timeout=timeout)
        assert done.returncode == 0, (args, done.stdout[-3000:], done.stderr[-3000:])
        return done.stdout

    # The installed copy is what runs (not the checkout's src/), with the installed metadata and licence.
    python = environment / "bin" / "python"
    found = json.loads(run(python, "-c", "import importlib.util, json; from importlib import metadata; "
                                         "d = metadata.distribution('alexnet-keras'); print(json.dumps(["
                                         "importlib.util.find_spec('alexnet').origin, str(d.locate_file('')), "
                                         "d.metadata['License-Expression'], "
                                         "[str(d.locate_file(f)) for f in d.files if f.name == 'LICENSE']]))"))
    origin, site, licence, licence_files = found
    assert Path(origin).is_relative_to(environment) and Path(site).is_relative_to(environment), found
    assert licence == "Apache-2.0" and [Path(f).read_text() for f in licence_files] == [(ROOT / "LICENSE").read_text()]
    assert run(environment / "bin" / "alexnet", "--version") == f"alexnet-keras {PYPROJECT['project']['version']}\n"

    out = run(environment / "bin" / "alexnet", "train", "--config", "demo", *TINY, "data.demo_images_per_class=2",
              "train.epochs=1", "train.global_batch_size=8", "train.steps_per_epoch=2", "tensorboard.histograms=false",
              "tensorboard.layer_stats_steps=0", "tensorboard.images=false")
    assert f"demo data: none in data/demo yet, making it there on first use ({work / 'data' / 'demo'})" in out
    assert (work / "logs" / "demo" / "export" / "saved_model.pb").is_file()
    image = work / "data" / "demo" / "val" / "star" / "star_00000.jpg"
    predicted = run(python, "-m", "alexnet", "predict", "--run", "demo", image.relative_to(work))
    top5 = re.fullmatch(rf"{image.relative_to(work)}: (.+)\n", predicted)[1].split(", ")
    assert len(top5) == 5 and {entry.rsplit(" ", 1)[0] for entry in top5} <= set(CLASSES), predicted
    assert sorted(p.name for p in work.iterdir()) == ["data", "logs"]  # all it wrote is under the working directory
    assert time.perf_counter() - started < 90, "the CI budget has 90 s for this test"
