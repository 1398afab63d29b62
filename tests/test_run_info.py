"""Every result carries what produced it (model, weights, device, precision, timings) as a RunInfo,
and one formatter (describe_run) shows it: the tabs, the CLI and the notebooks say it the same way."""
from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

import uniformer
from uniformer.hub import WeightsInfo
from uniformer.inference import RunInfo, describe_run, device_label, predict_image
from uniformer.tasks.detection import DetectionResult


def test_describe_run_names_device_precision_and_every_step():
    info = RunInfo("m", WeightsInfo("untrained"), "cpu", "bf16", 41.4, (("preprocessing", 3.2), ("resizing", 7.0)))
    assert describe_run(info) == ("**Device:** CPU \u00b7 **Precision:** bf16 \u00b7 **Inference:** 41 ms "
                                  "(+ 3 ms preprocessing, 7 ms resizing)")
    bare = dataclasses.replace(info, precision=None, steps=())
    assert describe_run(bare) == "**Device:** CPU \u00b7 **Inference:** 41 ms"
    noted = dataclasses.replace(info, precision_note="the device's default")
    assert "**Precision:** bf16 (the device's default)" in describe_run(noted)
    assert device_label("cpu") == "CPU"


def test_a_real_prediction_carries_its_run():
    model = uniformer.create_model("uniformer_xxs_digits", pretrained=True)
    image = Image.fromarray(np.full((64, 64, 3), 255, np.uint8))
    pred = predict_image(model, image, device="cpu")
    info = pred.run_info
    assert (info.model_name, info.device, info.precision) == ("uniformer_xxs_digits", "cpu", pred.precision)
    assert info.weights == pred.weights and info.weights.source == "project"
    assert info.inference_ms == pred.inference_ms and info.steps == (("preprocessing", pred.preprocess_ms),)
    assert describe_run(info).startswith("**Device:** CPU \u00b7 **Precision:** fp32 \u00b7 **Inference:** ")


def test_detection_run_splits_the_network_from_the_steps_around_it():
    times = {"preprocess": 5.0, "backbone": 20.0, "neck": 2.0, "rpn": 3.0, "roi_heads": 10.0, "paste": 4.0}
    r = DetectionResult(boxes=np.zeros((0, 4), np.float32), scores=np.zeros(0, np.float32), labels=np.zeros(0, int),
                        masks=None, class_names=("person",), image_size=(60, 40), input_size=(60, 40), model_name="d",
                        weights=WeightsInfo("untrained"), device="cpu", precision="fp32", stage3_attention="hybrid",
                        times=times, num_proposals=0)
    info = r.run_info
    assert info.inference_ms == 35.0 and info.steps == (("preprocessing", 5.0), ("mask pasting", 4.0))
    assert info.inference_ms + sum(ms for _, ms in info.steps) == r.total_ms()
