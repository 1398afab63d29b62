"""How much bf16 autocast changes UniFormer's predictions: top-1 kept? largest probability change?

    python benchmarks/bf16_agreement.py [--reference-dir tests/reference] [--json out.json]

Models: the reference variants with their synthetic official-format weights (``tests/reference/synth.py``,
the weights the goldens were made with: real checkpoints cannot be downloaded here) and the
project-trained digits model (real trained weights). Inputs: the app's example photos (skimage /
sklearn samples, preprocessed as the checkpoint was evaluated) and each golden's reference input.
For each (model, input) it prints top-1 fp32 vs bf16, the largest |p_fp32 - p_bf16| over all classes,
and for light models whether the token-shrinking kept / fused indices are equal, and their dtype
(the scores are computed and sorted in float32 under autocast).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uniformer  # noqa: E402
from uniformer.inference import autocast, preprocess_images  # noqa: E402

VARIANTS = {  # reference variant -> registered model
    "image_s": "uniformer_small_in1k", "image_s_plus": "uniformer_small_plus_in1k", "tl_s": "uniformer_small_tl_224",
    "light_xxs": "uniformer_xxs_224_in1k", "light_video_xxs": None, "video_s16": "uniformer_small_k400_16x8",
}


def photos() -> list[Path]:
    spec = importlib.util.find_spec("app.examples")
    if spec is None:
        return []
    from app.examples import write_examples

    return list(write_examples().values())


def _model_for(variant: str) -> str:
    for name in uniformer.list_models():
        v = uniformer.get_entry(name).pretrained.reference_variant or ()
        if variant in ((v,) if isinstance(v, str) else v):
            return name
    raise KeyError(variant)


def compare(model, x: torch.Tensor) -> dict:
    """fp32 vs bf16 autocast on the CPU for input x -> top-1s, max |dp|, max relative logit change."""
    dev = torch.device("cpu")
    with torch.inference_mode():
        ref = model(x).float()
        with autocast(dev, "bf16"):
            low = model(x).float()
        out = {}
        if hasattr(model, "forward_trace"):
            _, tr32 = model.forward_trace(x)
            with autocast(dev, "bf16"):
                _, tr16 = model.forward_trace(x)
            same = all(torch.equal(a.kept, b.kept) and torch.equal(a.fused, b.fused) for a, b in zip(tr32, tr16))
            score_dtypes = {str(b.scores.dtype) for b in tr16 if b.scores is not None}
            out.update(shrink_indices_equal=same, shrink_score_dtype=",".join(sorted(score_dtypes)))
    p32, p16 = ref.softmax(-1), low.softmax(-1)
    out.update(top1_fp32=p32.argmax(-1).tolist(), top1_bf16=p16.argmax(-1).tolist(),
               top1_kept=bool((p32.argmax(-1) == p16.argmax(-1)).all()),
               max_prob_diff=(p32 - p16).abs().max().item(), p_top1_fp32=p32.max(-1).values.tolist(),
               rel_logit_diff=((ref - low).abs().max() / ref.abs().max()).item())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference-dir", default=str(Path(__file__).resolve().parents[1] / "tests" / "reference"))
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ref_dir = Path(args.reference_dir)
    spec = importlib.util.spec_from_file_location("synth", ref_dir / "synth.py")
    synth = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(synth)
    rows = []
    pics = photos()
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants:
            name = VARIANTS.get(variant) or _model_for(variant)
            keys = json.loads((ref_dir / "specs" / f"{variant}.json").read_text())["keys"]
            path = Path(tmp) / f"{variant}.pth"
            torch.save(synth.synthesize(keys), path)
            model = uniformer.create_model(name, checkpoint_path=path)
            golden = torch.load(ref_dir / "golden" / f"{variant}.pt", weights_only=True)
            inputs = {"reference input": synth.reference_input(golden["input_shape"])}
            if len(model.pretrained_cfg.input_size) == 3 and pics:
                inputs[f"{len(pics)} example photos"] = preprocess_images([str(p) for p in pics], model.pretrained_cfg)
            for label, x in inputs.items():
                rows.append({"model": name, "weights": f"synth ({variant})", "input": label, **compare(model, x)})
                print(json.dumps(rows[-1]), flush=True)
    digits = uniformer.create_model("uniformer_xxs_digits", pretrained=True)
    from sklearn.datasets import load_digits

    from uniformer.train.digits import digit_image

    counts = load_digits().images[-200:]  # sklearn's 8x8 digits (the last 200)
    x = preprocess_images([digit_image(c) for c in counts], digits.pretrained_cfg)
    rows.append({"model": digits.model_name, "weights": "project-trained", "input": f"{len(counts)} sklearn digits",
                 **compare(digits, x)})
    print(json.dumps(rows[-1]), flush=True)
    print("\n| model | weights | input | top-1 kept | max abs prob diff | max rel logit diff | shrink indices equal |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['weights']} | {r['input']} | {'yes' if r['top1_kept'] else 'NO'} | "
              f"{r['max_prob_diff']:.2e} | {r['rel_logit_diff']:.2e} | {r.get('shrink_indices_equal', '-')} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
