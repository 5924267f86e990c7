"""Train the world's models from scratch and write them to tav/assets/world/ (see tav.world.models):

    python -m tav.world.fit --device cuda         # a few minutes on one H100; the shipped weights
    python -m tav.world.fit --device cpu --out /tmp/world --scale 0.001 --seeds 1 --frames 2   # a smoke run

In order: the VAE (reconstruction + a small KL term), then the UNet and text encoder together on the VAE's
latents (epsilon prediction on SD-1.x's noise schedule, 10% empty captions for classifier-free guidance; half the
clip art captions name no style, so a prompt without style words draws clip art: the world's model is a clip-art
style model, like the style fine-tune a user brings; 30% of captions leave out the motion or the background, so
short prompts are in its vocabulary), then
the CLIP-style encoder (contrastive, on frames and on their VAE reconstructions, so it reads decoded frames as
well as rendered ones). A report of what the models learned (world/report.json) is written beside them.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler
from safetensors.torch import save_file

from tav.models.loading import SD_SCHEDULER
from tav.models.presets import clip_tokenizer
from tav.world import models
from tav.world.dataset import HELD_OUT_SEED, TRAIN_SEEDS, WorldFrames, world_frames
from tav.world.render import BACKGROUNDS, MOTIONS, STYLES, SUBJECTS, caption
from tav.world.truth import style_score

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def _pixels(frames: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [-1, 1]."""
    return frames.to(device).permute(0, 3, 1, 2).float() / 127.5 - 1


def _log(name: str, step: int, steps: int, loss: torch.Tensor, started: float) -> None:
    """A line every tenth of the steps; reading the loss waits for the GPU, so only then."""
    if step == steps or step % max(1, steps // 10) == 0:
        print(f"{name}: step {step}/{steps} loss {loss.item():.4f} ({time.perf_counter() - started:.0f} s)", flush=True)


def train_vae(data: WorldFrames, steps: int, batch: int, device: torch.device, rng: np.random.Generator):
    vae = models.new_vae().to(device).train()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=1e-3, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=steps, pct_start=0.05)
    started = time.perf_counter()
    for step in range(1, steps + 1):
        x = _pixels(data.frames[torch.from_numpy(rng.integers(0, len(data), batch)).to(device)], device)
        posterior = vae.encode(x).latent_dist
        reconstruction = vae.decode(posterior.sample()).sample
        loss = F.l1_loss(reconstruction, x) + 1e-6 * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        _log("vae", step, steps, loss.detach(), started)
    return vae.eval().requires_grad_(False)


@torch.no_grad()
def encode_all(vae, frames: torch.Tensor, device: torch.device, batch: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """(latent means (N, 4, h, w), VAE reconstructions uint8 (N, H, W, 3)) of every frame."""
    means, decoded = [], []
    for chunk in frames.split(batch):
        mean = vae.encode(_pixels(chunk, device)).latent_dist.mean
        means.append(mean)
        image = vae.decode(mean).sample
        decoded.append(((image.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1))
    return torch.cat(means), torch.cat(decoded)


class TokenCache:
    """Token ids of each caption, computed once: the world has few captions and tokenizing is slow."""

    def __init__(self, tokenize):
        self.tokenize, self.ids = tokenize, {}

    def __call__(self, prompts: list[str], device: torch.device) -> torch.Tensor:
        for prompt in set(prompts) - self.ids.keys():
            self.ids[prompt] = self.tokenize(prompt)
        return torch.stack([self.ids[prompt] for prompt in prompts]).to(device)


def sd_tokens() -> TokenCache:
    tokenizer = clip_tokenizer()
    return TokenCache(lambda prompt: tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length,
                                               truncation=True, return_tensors="pt").input_ids[0])


def clip_tokens() -> TokenCache:
    tokenizer = open_clip.SimpleTokenizer()
    return TokenCache(lambda prompt: tokenizer([prompt])[0])


def train_ldm(data: WorldFrames, latents: torch.Tensor, steps: int, batch: int, device: torch.device,
              rng: np.random.Generator):
    unet, text_encoder = models.new_unet().to(device).train(), models.new_text_encoder().to(device).train()
    tokens = sd_tokens()
    noise_schedule = DDPMScheduler.from_config(SD_SCHEDULER)
    alphas = noise_schedule.alphas_cumprod.to(device)
    optimizer = torch.optim.AdamW([{"params": unet.parameters(), "lr": 1e-3},
                                   {"params": text_encoder.parameters(), "lr": 3e-4}], weight_decay=1e-2)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[1e-3, 3e-4], total_steps=steps, pct_start=0.05)
    latents = latents.to(device)
    started = time.perf_counter()
    for step in range(1, steps + 1):
        index = rng.integers(0, len(data), batch)
        captions = data.captions(rng, index, clipart_style_words=0.5, partial=0.3)
        prompts = [text if rng.random() > 0.1 else "" for text in captions]
        x0 = latents[torch.from_numpy(index).to(device)]
        noise = torch.randn_like(x0)
        t = torch.randint(0, len(alphas), (batch,), device=device)
        a = alphas[t].view(-1, 1, 1, 1)
        noisy = a.sqrt() * x0 + (1 - a).sqrt() * noise
        prediction = unet(noisy, t, text_encoder(tokens(prompts, device))[0]).sample
        loss = F.mse_loss(prediction, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([*unet.parameters(), *text_encoder.parameters()], 1.0)
        optimizer.step()
        schedule.step()
        _log("ldm", step, steps, loss.detach(), started)
    return unet.eval().requires_grad_(False), text_encoder.eval().requires_grad_(False)


def train_clip(data: WorldFrames, decoded: torch.Tensor, steps: int, batch: int, device: torch.device,
               rng: np.random.Generator):
    model = open_clip.CLIP(**models.CLIP).to(device).train()
    tokens = clip_tokens()
    mean = torch.tensor(OPENAI_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_STD, device=device).view(1, 3, 1, 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=steps, pct_start=0.05)
    started = time.perf_counter()
    for step in range(1, steps + 1):
        index = rng.integers(0, len(data), batch)
        source = data.frames if rng.random() < 0.5 else decoded
        images = ((source[torch.from_numpy(index).to(device)].to(device).permute(0, 3, 1, 2).float() / 255) - mean) / std
        texts = tokens([_clip_caption(data, i, rng) for i in index], device)
        image_embeds, text_embeds, scale = model(images, texts)
        logits = scale * image_embeds @ text_embeds.T
        # captions repeat within a batch: every frame whose caption is the same text counts as a match
        same = (texts[:, None, :] == texts[None, :, :]).all(-1).float()
        targets = same / same.sum(dim=1, keepdim=True)
        loss = (torch.sum(-targets * F.log_softmax(logits, dim=1), dim=1).mean()
                + torch.sum(-targets * F.log_softmax(logits.T, dim=1), dim=1).mean()) / 2
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        _log("clip", step, steps, loss.detach(), started)
    return model.eval().requires_grad_(False)


def _clip_caption(data: WorldFrames, i: int, rng: np.random.Generator) -> str:
    """One of the ways a frame can be described: the whole caption, or only some of what it names."""
    subject, style = data.subjects[i], data.styles[i]
    thing = f"a {SUBJECTS[subject]} {subject}"
    style_only = {"photo": "a photo", "clipart": "clip art"}[style]
    prefix, suffix = STYLES[style]
    forms = [caption(subject, data.motions[i], data.backgrounds[i], style),
             caption(subject, data.motions[i], data.backgrounds[i]),
             " ".join(part for part in (prefix, thing, suffix) if part), thing, style_only]
    return forms[rng.choice(len(forms), p=[0.4, 0.15, 0.2, 0.1, 0.15])]


@torch.no_grad()
def sample(unet, vae, text_encoder, prompts: list[str], device: torch.device, seed: int = 0, steps: int = 25,
           guidance: float = 7.5) -> torch.Tensor:
    """DDIM samples of `prompts` as uint8 (N, H, W, 3): the report's look at what the model draws."""
    tokens = sd_tokens()
    scheduler = DDIMScheduler.from_config(SD_SCHEDULER)
    scheduler.set_timesteps(steps)
    cond = text_encoder(tokens(prompts, device))[0]
    uncond = text_encoder(tokens([""] * len(prompts), device))[0]
    generator = torch.Generator().manual_seed(seed)
    size = models.IMAGE_SIZE // 4
    x = torch.randn((len(prompts), 4, size, size), generator=generator).to(device)
    for t in scheduler.timesteps:
        eps_uncond, eps_cond = unet(torch.cat([x, x]), t, torch.cat([uncond, cond])).sample.chunk(2)
        x = scheduler.step(eps_uncond + guidance * (eps_cond - eps_uncond), t, x).prev_sample
    images = vae.decode(x / vae.config.scaling_factor).sample
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu()


def report(unet, vae, text_encoder, clip_model, device: torch.device) -> dict:
    """Style scores of samples per style prompt (and of prompts naming no style), and CLIP's accuracy at naming
    held-out frames' subject and style."""
    out: dict = {"samples": {}}
    for style in (*STYLES, None):
        prompts = [caption(s, MOTIONS[0], b, style) for s in SUBJECTS for b in BACKGROUNDS]
        images = sample(unet, vae, text_encoder, prompts, device)
        score = float(np.mean([style_score(image[None]) for image in images]))
        out["samples"][style or "no style words"] = {"style_score": score}
    held_out = world_frames(seeds=[HELD_OUT_SEED], n_frames=2, size=models.IMAGE_SIZE)
    _, held_out_decoded = encode_all(vae, held_out.frames, device)
    tokens = clip_tokens()
    mean = torch.tensor(OPENAI_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_STD, device=device).view(1, 3, 1, 1)
    for name, frames in (("rendered", held_out.frames), ("decoded", held_out_decoded)):
        images = ((frames.to(device).permute(0, 3, 1, 2).float() / 255) - mean) / std
        embeds = F.normalize(clip_model.encode_image(images), dim=-1)
        for label, options, truth in (
                ("subject", [f"a {SUBJECTS[s]} {s}" for s in SUBJECTS], [list(SUBJECTS).index(s) for s in held_out.subjects]),
                ("style", ["a photo", "clip art"], [list(STYLES).index(s) for s in held_out.styles])):
            texts = F.normalize(clip_model.encode_text(tokens(options, device)), dim=-1)
            guess = (embeds @ texts.T).argmax(dim=1).cpu().numpy()
            out[f"clip_{label}_accuracy_{name}"] = float((guess == np.array(truth)).mean())
    out["vae_l1_held_out"] = float((held_out_decoded.cpu().float() - held_out.frames.float()).abs().mean() / 255)
    return out


def save_clip(model, root: Path) -> Path:
    folder = models.clip_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": models.CLIP,
              "preprocess_cfg": {"size": models.IMAGE_SIZE, "mean": list(OPENAI_MEAN), "std": list(OPENAI_STD),
                                 "interpolation": "bicubic", "resize_mode": "shortest"}}
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_file({k: v.to(torch.float16).contiguous() for k, v in model.state_dict().items()},
              folder / "open_clip_model.safetensors")
    return folder


STAGES = ("vae", "ldm", "clip", "report")
STEPS = {"vae": 3000, "ldm": 1800, "clip": 2500}
BATCH = {"vae": 64, "ldm": 384, "clip": 256}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m tav.world.fit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=models.WORLD_DIR, help="folder the models are written to")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES),
                        help="what to train (each writes its part; a later stage loads earlier ones from --out)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every step count (0.001: smoke run)")
    parser.add_argument("--seeds", type=int, default=len(TRAIN_SEEDS), help="world seeds rendered for training")
    parser.add_argument("--frames", type=int, default=8, help="frames rendered per training clip")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    steps = {name: max(2, round(n * args.scale)) for name, n in STEPS.items()}
    started = time.perf_counter()
    data = world_frames(TRAIN_SEEDS[:args.seeds], n_frames=args.frames, size=models.IMAGE_SIZE)
    data.frames = data.frames.to(device)  # indexed every step: keep it beside the models
    print(f"world: {len(data)} frames rendered ({time.perf_counter() - started:.0f} s)", flush=True)
    if "vae" in args.stages:
        vae = train_vae(data, steps["vae"], BATCH["vae"], device, rng)
        means, _ = encode_all(vae, data.frames, device)
        vae.register_to_config(scaling_factor=float(1 / means.std()))
        models.save_part("vae", vae, args.out)
    vae = models.load_part("vae", args.out).to(device)
    means, decoded = encode_all(vae, data.frames, device) if {"ldm", "clip"} & set(args.stages) else (None, None)
    if "ldm" in args.stages:
        unet, text_encoder = train_ldm(data, means * vae.config.scaling_factor, steps["ldm"], BATCH["ldm"], device,
                                       rng)
        models.save_part("unet", unet, args.out)
        models.save_part("text_encoder", text_encoder, args.out)
    if "clip" in args.stages:
        save_clip(train_clip(data, decoded, steps["clip"], BATCH["clip"], device, rng), args.out)
    summary = {"stages": args.stages, "steps": steps, "batch": BATCH, "seeds": args.seeds, "frames": args.frames,
               "seed": args.seed, "device": str(device),
               "torch": torch.__version__, "images": len(data), "seconds": round(time.perf_counter() - started, 1)}
    if "report" in args.stages:
        unet, _, text_encoder = (part.to(device) for part in models.load_ldm(args.out))
        clip_model = open_clip.create_model(f"local-dir:{models.clip_dir(args.out)}", device=device)
        summary.update(report(unet, vae, text_encoder, clip_model, device))
        (args.out / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
