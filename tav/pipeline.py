"""Orchestration only: prompts -> embeddings, clip <-> latents, DDIM inversion, guided DDIM sampling.

Schedulers (diffusers' DDIMScheduler and DDIMInverseScheduler) own the noise arithmetic. Latents are
(batch, 4, frames, height/8, width/8) and stay float32 between steps; wrap calls in torch.autocast for
mixed precision.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, DDIMInverseScheduler, DDIMScheduler
from transformers import CLIPTextModel, CLIPTokenizer

from tav.models.video_unet import VideoUNet


def check_prompt_length(tokenizer: CLIPTokenizer, prompt: str) -> None:
    """Raise when a prompt would be truncated: its end would silently stop steering the render."""
    n_tokens = len(tokenizer(prompt, truncation=False).input_ids)
    if n_tokens > tokenizer.model_max_length:
        raise ValueError(f"prompt '{prompt[:48]}...' is {n_tokens} tokens but the tokenizer takes at most "
                         f"{tokenizer.model_max_length} (start and end included); shorten it")


@torch.no_grad()
def encode_prompts(tokenizer: CLIPTokenizer, text_encoder: CLIPTextModel, prompts: list[str],
                   device: torch.device) -> torch.Tensor:
    """(len(prompts), 77, dim) last hidden states, as Stable Diffusion conditions on."""
    for prompt in prompts:
        check_prompt_length(tokenizer, prompt)
    ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids.to(device)
    return text_encoder(ids)[0].float()


@torch.no_grad()
def encode_clip(vae: AutoencoderKL, frames: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    """uint8 (frames, H, W, 3) -> (1, 4, frames, H/8, W/8), scaled by the VAE's scaling factor.

    Uses the posterior mean, once per run (the official code samples the posterior afresh every step).
    """
    device, dtype = vae.device, vae.dtype
    pixels = frames.permute(0, 3, 1, 2).to(device=device, dtype=dtype) / 127.5 - 1.0
    latents = torch.cat([vae.encode(part).latent_dist.mean for part in pixels.split(chunk)])
    latents = latents.float() * vae.config.scaling_factor
    return latents.transpose(0, 1).unsqueeze(0)


def latent_size(vae: AutoencoderKL, height: int, width: int) -> tuple[int, int]:
    """The (height, width) of the latents `encode_clip` makes of frames this large."""
    scale = 2 ** (len(vae.config.block_out_channels) - 1)
    return height // scale, width // scale


@torch.no_grad()
def decode_latents(vae: AutoencoderKL, latents: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    """(batch, 4, frames, h, w) -> uint8 (batch, frames, 8h, 8w, 3) on the CPU."""
    batch, channels, num_frames, height, width = latents.shape
    folded = latents.transpose(1, 2).reshape(batch * num_frames, channels, height, width)
    folded = folded.to(vae.dtype) / vae.config.scaling_factor
    pixels = torch.cat([vae.decode(part).sample for part in folded.split(chunk)])
    pixels = ((pixels.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).reshape(batch, num_frames, *pixels.shape[2:], 3).cpu()


def timestep_pairs(timesteps: torch.Tensor, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each host timestep beside its copy on `device`, all copied at once.

    The UNet takes the device copy; the DDIM schedulers index their host tables with the host one. A device
    timestep there (diffusers' `alphas_cumprod[t]`, `prev_t >= 0`) would make every step wait for the GPU to
    finish the step before, and a host one given to the UNet would be copied to the device, also waiting.
    """
    return list(zip(timesteps, timesteps.to(device, non_blocking=True)))


@torch.no_grad()
def ddim_invert(video_unet: VideoUNet, latents: torch.Tensor, text_embedding: torch.Tensor,
                scheduler_config: dict, steps: int) -> torch.Tensor:
    """Run DDIM backwards from the clean latents to t=T without guidance (the official uses the empty prompt).

    Always eager, even for a compiled UNet: the inversion's batch (one clip, unguided) is a shape of its own, and
    compiling it cost 59 s on a cold start, for the ~100 inversion steps of a run that eager takes ~6 s longer
    (analysis/PERF.md round 5).
    """
    scheduler = DDIMInverseScheduler.from_config(scheduler_config)
    scheduler.set_timesteps(steps)
    x = latents.float()
    with torch.compiler.set_stance("force_eager"):
        for t, t_on_device in timestep_pairs(scheduler.timesteps, latents.device):
            eps = video_unet(x, t_on_device, text_embedding).float()
            x = scheduler.step(eps, t, x).prev_sample
    return x


def initial_latents(inverted: torch.Tensor, seed: int, noise_mix: float) -> torch.Tensor:
    """sqrt(1 - m) * inverted + sqrt(m) * noise(seed): m=0 is the inversion, m=1 pure noise.

    The square roots keep unit variance, so every m in between is a valid starting point for DDIM.
    """
    if not 0.0 <= noise_mix <= 1.0:
        raise ValueError(f"noise_mix must be in [0, 1], got {noise_mix} (validation.noise_mix)")
    generator = torch.Generator("cpu").manual_seed(seed)
    noise = torch.randn(inverted.shape, generator=generator).to(inverted.device)
    return (1.0 - noise_mix) ** 0.5 * inverted + noise_mix ** 0.5 * noise


@torch.no_grad()
def sample(video_unet: VideoUNet, latents: torch.Tensor, text_embeddings: torch.Tensor,
           uncond_embedding: torch.Tensor, scheduler_config: dict, steps: int, guidance_scale: float) -> torch.Tensor:
    """Deterministic DDIM (eta 0) with classifier-free guidance; one prompt embedding per clip in the batch.

    Always eager, as inversion is: compiling the guided batch cost ~50 s on a cold start and rendered no faster
    than the eager channels-last path (tav.models.layout; 61.7 s compiled against 62.3 s eager for the official
    recipe's validations on one H100, analysis/PERF.md round 23), and one path means a clip repeats wherever it
    is rendered (a validation, an export, a seed screen), up to a GPU kernel's rounding across batch sizes.
    """
    scheduler = DDIMScheduler.from_config(scheduler_config)
    scheduler.set_timesteps(steps)
    batch = latents.shape[0]
    guided = guidance_scale > 1.0
    embeddings = torch.cat([uncond_embedding.expand(batch, -1, -1), text_embeddings]) if guided else text_embeddings
    x = latents.float() * scheduler.init_noise_sigma
    with torch.compiler.set_stance("force_eager"):
        for t, t_on_device in timestep_pairs(scheduler.timesteps, latents.device):
            model_input = torch.cat([x, x]) if guided else x
            eps = video_unet(model_input, t_on_device, embeddings).float()
            if guided:
                eps_uncond, eps_text = eps.chunk(2)
                eps = eps_uncond + guidance_scale * (eps_text - eps_uncond)
            x = scheduler.step(eps, t, x, eta=0.0).prev_sample
    return x
