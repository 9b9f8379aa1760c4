"""The public weight plans of keras_models and torch_models, and the one Keras environment set-up."""
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from torch import nn

import keras_models as km
import scratch
import torch_models as tm
from keras_models import layout
from scratch import architectures

CNN = architectures.get("course_cnn")


def test_torch_weight_plan_unpacks_and_names_every_weight():
    model = tm.build(CNN, (1, 8, 8))
    plan, entries = tm.weight_plan(model)
    assert [w.key for w in plan] == ["0.kernel", "0.bias", "3.kernel", "3.bias", "4.kernel", "4.bias"]
    assert len(entries) == len(CNN)
    for key, param, transposed, entry in plan:
        assert param is entry.module.get_parameter(key.split(".")[1].replace("kernel", "weight"))
        assert transposed == (key.endswith(".kernel") and isinstance(entry.module, nn.Linear))


def test_torch_weight_plan_rejects_layers_without_counterpart():
    with pytest.raises(ValueError, match="BatchNorm2d holds parameters or buffers"):
        tm.weight_plan(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_keras_weight_plan_and_array_conversions(dtype):
    ref = scratch.build(CNN, (1, 8, 8), dtype=dtype, seed=3)
    model = km.build(CNN, (1, 8, 8), dtype=dtype)
    km.from_scratch(model, ref.state_dict())
    plan = km.weight_plan(model)
    assert [(item["index"], item["kind"]) for item in plan] == [(0, "Conv2D"), (3, "Dense"), (4, "Dense")]
    assert plan[1]["perm"] is not None and plan[0]["perm"] is None and plan[2]["perm"] is None
    np.testing.assert_array_equal(plan[1]["perm"], km.flatten_permutation((10, 3, 3)))
    state = ref.state_dict()
    for item in plan:
        for key in ("kernel", "bias"):
            value = np.asarray(getattr(item["layer"], key))
            mine = state[f"{item['index']}.{key}"]
            np.testing.assert_array_equal(km.to_scratch_array(item, key, value), mine)
            np.testing.assert_array_equal(layout.to_keras_array(item, key, mine), value)


def test_keras_environment_is_set_in_one_place():
    """Importing keras_models sets the backend and oneDNN (the user's log level wins); only
    env.py sets them."""
    code = ("import os; os.environ.pop('KERAS_BACKEND', None); os.environ.pop('TF_ENABLE_ONEDNN_OPTS', None); "
            "os.environ['TF_CPP_MIN_LOG_LEVEL'] = '1'; import torch, keras_models, keras; "
            "print(os.environ['KERAS_BACKEND'], os.environ['TF_CPP_MIN_LOG_LEVEL'], "
            "os.environ['TF_ENABLE_ONEDNN_OPTS'], keras.backend.backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["tensorflow", "1", "1", "tensorflow"]
    package = pathlib.Path(km.__file__).parent
    setters = sorted(p.name for p in package.glob("*.py") if "os.environ" in p.read_text())
    assert setters == ["env.py"]
