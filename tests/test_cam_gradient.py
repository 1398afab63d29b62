"""Grad-CAM with the backward stopped at the tapped stage map (issue 13) still equals Grad-CAM
computed by hand from d(score)/d(stage map), and writes no parameter gradient."""
import dataclasses

import numpy as np
import torch

import uniformer
import uniformer.explain as E


def test_grad_cam_equals_the_hand_computed_map():
    torch.manual_seed(0)
    model = uniformer.create_model("uniformer_small_in1k", depths=(1, 1, 1, 1), dims=(32, 64, 128, 256))
    cfg = dataclasses.replace(model.pretrained_cfg, input_size=(3, 64, 64))
    rng = np.random.default_rng(0)
    image = (rng.random((80, 96, 3)) * 255).astype(np.uint8)
    analysis = E.analyze(model, image, pretrained_cfg=cfg)
    cam = E.class_activation_map(model, analysis, "GradCAM", stage=2, class_index=3)

    x = analysis.input.clone().requires_grad_(True)
    with torch.enable_grad():
        maps = model.forward_stages(x)
        acts = maps[2]
        score = model.forward_head(model.norm(maps[3]))[0, 3]
        (grad,) = torch.autograd.grad(score, acts)
    weights = grad[0].mean((1, 2))  # (C,): Grad-CAM's channel weights
    manual = torch.relu((weights[:, None, None] * acts[0]).sum(0)).detach().numpy()  # (h, w)
    manual = (manual - manual.min()) / max(manual.max() - manual.min(), 1e-7)
    import cv2

    manual = cv2.resize(manual.astype(np.float32), (64, 64))
    np.testing.assert_allclose(cam.input_map, np.clip(manual, 0, 1), atol=1e-4)
    assert all(p.grad is None for p in model.parameters())
