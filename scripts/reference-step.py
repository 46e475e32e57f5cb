#!/usr/bin/env python3
"""Times the reference Python CT-CLIP training step (the public CT-CLIP code) for the side-by-side bench.

    CTCLIP_REFERENCE_DIR=/path/to/CT-CLIP python scripts/reference-step.py --spec JSON

CTCLIP_REFERENCE_DIR is a checkout of the public CT-CLIP repository (the folders CT_CLIP/ and
transformer_maskgit/); vector-quantize-pytorch 1.1.2 (the version the reference pins) must be importable, either
installed or checked out as CTCLIP_REFERENCE_DIR/vector-quantize-pytorch. Nothing of the reference is part of
this repository; this script only imports it.

--spec is the bench preset as bench/ctclip.ts builds it (one source of truth for the shapes):
    {"image": {...CTViT arguments...}, "text": {...BertConfig fields...}, "dim_latent": N, "batch": B,
     "frames": F, "seq": L, "threads": T, "warmup": W, "iters": K, "device": "cpu" | "cuda",
     "precision": "fp32" | "bf16", "lr": 1e-5, "weight_decay": 0.01, "betas": [b1, b2], "eps": e,
     "max_grad_norm": 0.5}

The step is the reference trainer's (CTClipTrainer.train_step): forward with return_loss=True, backward,
clip_grad_norm_(max_grad_norm), optimizer step, zero_grad — with torch.optim.AdamW at the same hyper-parameters as
our bench (the reference trainer's default wd = 0 would select plain Adam). bf16 runs the forward under
torch.autocast like the reference's accelerate autocast. Prints ONE JSON line: {"stepTimesMs": [...],
"stepMs": median, "cpuMsPerStep": median, "torch": version, "threads": T, "device": ...}.

Two harness adaptations, both needed to run the reference off a GPU and neither changing its maths: the CTViT and
its position bias create their grid on torch.device('cuda') unconditionally, so their module-level `torch` is
given a `device` that names the run device; and CTCLIP's constructor downloads a tokenizer it never uses in the
step, so BertTokenizer.from_pretrained is replaced by a stub.
"""

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import time
import types


def fail(msg):
    print(f"reference-step: {msg}", file=sys.stderr)
    sys.exit(2)


def import_reference(ref_dir, run_device):
    for sub in ("CT_CLIP", "transformer_maskgit"):
        if not os.path.isdir(os.path.join(ref_dir, sub)):
            fail(f"CTCLIP_REFERENCE_DIR={ref_dir} has no {sub}/ folder (expected a CT-CLIP checkout)")
    vq_dir = os.path.join(ref_dir, "vector-quantize-pytorch")
    if os.path.isdir(vq_dir):
        sys.path.insert(0, vq_dir)
    import torch

    # torchvision is imported by the reference modules for image I/O and augmentations the step never calls; an
    # empty stand-in keeps the CPU wheel's venv free of it when it is not installed.
    try:
        import torchvision  # noqa: F401
    except ImportError:
        tv = types.ModuleType("torchvision")
        tv.transforms = types.ModuleType("torchvision.transforms")
        tv.utils = types.ModuleType("torchvision.utils")
        sys.modules.update({"torchvision": tv, "torchvision.transforms": tv.transforms, "torchvision.utils": tv.utils})

    # Import the two packages' modules without their __init__ (which pull in trainers, datasets, accelerate).
    for pkg, sub in (("transformer_maskgit", "transformer_maskgit/transformer_maskgit"), ("ct_clip", "CT_CLIP/ct_clip")):
        mod = types.ModuleType(pkg)
        mod.__path__ = [os.path.join(ref_dir, sub)]
        sys.modules[pkg] = mod
    try:
        import vector_quantize_pytorch
        from transformer_maskgit import attention, ctvit
        from ct_clip import ct_clip
    except ImportError as e:
        fail(f"cannot import the reference from CTCLIP_REFERENCE_DIR={ref_dir}: {e}")
    vq_version = getattr(vector_quantize_pytorch, "__version__", None)
    if vq_version is None:  # 1.1.2 has no __version__: read the checkout's setup.py, else the installed metadata
        import re
        from importlib import metadata

        setup = os.path.join(vq_dir, "setup.py")
        if os.path.isfile(setup):
            m = re.search(r"version\s*=\s*'([^']+)'", open(setup, encoding="utf8").read())
            vq_version = m.group(1) if m else None
        else:
            try:
                vq_version = metadata.version("vector-quantize-pytorch")
            except metadata.PackageNotFoundError:
                pass

    class TorchOnDevice(types.ModuleType):
        """`torch` for the reference modules, with torch.device(...) naming the run device."""

        def __getattr__(self, name):
            return getattr(torch, name)

        @staticmethod
        def device(*_args, **_kwargs):
            return torch.device(run_device)

    shim = TorchOnDevice("torch")
    attention.torch = shim
    ctvit.torch = shim
    ct_clip.BertTokenizer = types.SimpleNamespace(from_pretrained=lambda *a, **k: None)
    return ctvit.CTViT, ct_clip.CTCLIP, vq_version


def perf_window(command):
    """The steady-state window for `perf record --control` (bench/profile.ts; the same protocol as
    bench/perf-control.ts): a no-op unless CTCLIP_PERF_CTL and CTCLIP_PERF_ACK name perf's control FIFOs."""
    ctl, ack = os.environ.get("CTCLIP_PERF_CTL"), os.environ.get("CTCLIP_PERF_ACK")
    if not ctl or not ack:
        return
    with open(ctl, "w") as f:
        f.write(command + "\n")
    with open(ack) as f:
        f.readline()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", required=True, help="the preset as JSON (see the module docstring)")
    args = ap.parse_args()
    try:
        spec = json.loads(args.spec)
    except json.JSONDecodeError as e:
        fail(f"--spec is not JSON: {e}")
    ref_dir = os.environ.get("CTCLIP_REFERENCE_DIR")
    if not ref_dir:
        fail("CTCLIP_REFERENCE_DIR is not set (a checkout of the public CT-CLIP repository)")

    import torch
    from transformers import BertConfig, BertModel

    torch.set_num_threads(int(spec.get("threads", 2)))
    device = spec.get("device", "cpu")
    CTViT, CTCLIP, vq_version = import_reference(ref_dir, device)

    torch.manual_seed(0)
    im = spec["image"]
    image_encoder = CTViT(
        dim=im["dim"],
        codebook_size=im["codebook_size"],
        image_size=im["image_size"],
        patch_size=im["patch_size"],
        temporal_patch_size=im["temporal_patch_size"],
        spatial_depth=im["spatial_depth"],
        temporal_depth=im["temporal_depth"],
        dim_head=im["dim_head"],
        heads=im["heads"],
    )
    tx = spec["text"]
    text_encoder = BertModel(BertConfig(**tx), add_pooling_layer=False)
    hp = im["image_size"] // im["patch_size"]
    clip = CTCLIP(
        image_encoder=image_encoder,
        text_encoder=text_encoder,
        dim_text=tx["hidden_size"],
        dim_image=hp * hp * im["dim"],
        dim_latent=spec["dim_latent"],
        extra_latent_projection=False,
        use_mlm=False,
        downsample_image_embeds=False,
        use_all_token_embeds=False,
    ).to(device)
    clip.train()
    opt = torch.optim.AdamW(
        clip.parameters(),
        lr=spec.get("lr", 1e-5),
        weight_decay=spec.get("weight_decay", 0.01),
        betas=tuple(spec.get("betas", (0.9, 0.99))),
        eps=spec.get("eps", 1e-8),
    )

    B, F, L, H = spec["batch"], spec["frames"], spec["seq"], im["image_size"]
    g = torch.Generator().manual_seed(7)
    video = (torch.rand(B, 1, F, H, H, generator=g) * 2 - 1).to(device)
    ids = torch.randint(5, tx["vocab_size"], (B, L), generator=g)
    mask = torch.ones(B, L, dtype=torch.long)
    for b in range(B):  # the same padding pattern as bench/ctclip.ts
        n = L - 5 * b
        ids[b, 0], ids[b, n - 1] = 2, 3
        ids[b, n:], mask[b, n:] = 0, 0
    text = types.SimpleNamespace(input_ids=ids.to(device), attention_mask=mask.to(device))
    bf16 = spec.get("precision", "fp32") == "bf16"
    max_norm = spec.get("max_grad_norm", 0.5)
    cuda = device.startswith("cuda")

    def step():
        # The reference forward prints a line per call; keep our stdout for the JSON result.
        with contextlib.redirect_stdout(io.StringIO()):
            with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
                loss = clip(text, video, return_loss=True, device=device)
            loss.backward()
            loss.item()
            torch.nn.utils.clip_grad_norm_(clip.parameters(), max_norm)
            opt.step()
            opt.zero_grad()
        if cuda:
            torch.cuda.synchronize()

    for _ in range(int(spec.get("warmup", 2))):
        step()
    perf_window("enable")
    wall, cpu = [], []
    for _ in range(int(spec.get("iters", 7))):
        c0, t0 = time.process_time(), time.perf_counter()
        step()
        wall.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    perf_window("disable")
    out = {
        "stepTimesMs": wall,
        "stepMs": statistics.median(wall),
        "cpuMsPerStep": statistics.median(cpu),
        "torch": torch.__version__,
        "vectorQuantizePytorch": vq_version,
        "threads": torch.get_num_threads(),
        "device": device,
        "parameters": sum(p.numel() for p in clip.parameters()),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
