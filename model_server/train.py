"""Train a GALA network: one top-to-bottom script in nanoGPT's manner (docs/training.md).

The demo partner (draws its data in memory; about 4 minutes on 2 CPU cores):

    python -m model_server.train --demo --out model_server/checkpoints/demo.pt

A folder of class sub-folders (maps, if any, as ``<name>.mask.png`` next to each image):

    python -m model_server.train --data DIR --val-data DIR --arch gala_resnet50 --out OUT.pt

A ClickMe export (maps.h5 or maps.npz), co-training on its human maps:

    python -m model_server.train --maps EXPORT_DIR --images IMAGE_DIR --cotrain --out OUT.pt

The partner plays on partially revealed images, so once whole images have taught the shapes, a
growing share of every batch is shown partially revealed: clean pixels under bubbles painted
along the map (the object mask of a demo image), and outside them the game's noise, drawn over
another image of the batch (see ``augment``). Held-out accuracy is measured on whole images and on
the game's own rendering (``reveal.reveal_batch``) after N bubbles. ``--cotrain`` adds
``map_weight`` times the click-map loss of ``losses.attention_loss``.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from model_server import distributed
from model_server.cli import add_arguments, from_arguments
from model_server.config import GALAConfig, preset
from model_server.data import DemoDataset, ImageFolder, sample_bubbles
from model_server.export_data import ExportDataset
from model_server.losses import (
    attention_loss,
    blur_maps,
    classification_loss,
    gate_loss,
    gradient_saliency,
    harmonization_loss,
    rrr_loss,
)
from model_server.network import (
    GALANet,
    attention_parameter_names,
    build,
    configure_gates,
    gate_logits,
    load_backbone,
    save_checkpoint,
)
from model_server.reveal import BUBBLE_SIZE, NOISE_STD, bubble_masks, reveal_batch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Everything about a training run except the architecture (that is ``GALAConfig``)."""

    out: str = "model_server/checkpoints/model.pt"
    demo: bool = False  # draw the demo set in memory instead of reading --data
    data: str = ""  # folder of class sub-folders
    val_data: str = ""
    maps: str = ""  # a ClickMe export folder (maps.h5 or maps.npz): export_data.ExportDataset
    images: str = ""  # the export's image files (unless the export carries its crops)
    val_fraction: float = 0.2  # of an export's images, held out by a seeded hash of their names
    n_per_class: int = 120  # demo training images per class
    val_per_class: int = 20  # demo held-out images per class
    background_cue: bool = False  # demo training images only; held-out images never have it
    seed: int = 0
    epochs: int = 35
    batch_size: int = 32
    lr: float = 4e-3
    weight_decay: float = 0.01
    label_smoothing: float = 0.1
    augment: bool = True  # turns, flips, channel orders, inversions; off for cue experiments
    augment_colour: bool = True  # the channel orders and inversions (they would scramble a colour cue)
    reveal_prob: float = 0.75  # share of training images shown partially revealed, in the end
    reveal_after: float = 0.25  # no reveals before this fraction of the steps, full share at twice it
    min_bubbles: int = 5
    max_bubbles: int = 100
    eval_bubbles: tuple[int, ...] = (0, 10, 20, 30, 50, 80)
    cotrain: bool = False
    # The click-map loss (losses.attention_loss): "mean" over images with a map (ours) or "lab"
    # (the released code: the sum over the batch times 1e-5, times map_weight); the maps' blur
    # (the released 49 px, sigma 28 Gaussian), how they are resized to each layer, and normalised.
    # "gala": the GALA attention vs the map; "harmonization": gradient saliency vs it; "rrr": the
    # input gradient where the map is low, penalised (Ross et al. 2017's "right for the right reasons");
    # "gate": hinges on a hard gate's logits, shut where the map is 0 and open where it peaks
    # (losses.gate_loss; needs --nonlinearity hard).
    map_loss: str = "gala"
    map_reduction: str = "mean"
    map_norm: str = "sqrt_sum"
    map_resize: str = "area"
    map_blur: bool = False
    decay_attention: bool = True  # weight decay on attention parameters; the released code has none
    # What trains the GALA gates: "all" (the classification and the map loss, as in the paper) or
    # "maps" (the map loss alone: the classifier cannot open a gate where people did not look,
    # which is what stops a shortcut; docs/training.md, "The shortcut demonstration").
    gate_learns_from: str = "all"
    gate_shut_below: float = 0.05  # the gate loss shuts gates where the map is below this share of its peak
    # For the first N steps only the click-map loss trains: the gates learn to shut where people
    # did not look before the classifier can learn to read what is there (a shortcut learnt in
    # the first steps is hard to unlearn; docs/training.md, "The shortcut demonstration").
    gate_warmup_steps: int = 0
    init: str = ""  # a checkpoint of ours to fine-tune (its weights; the architecture comes from --arch)
    init_resnet: str = ""  # a torchvision-format ResNet-50 state dict; the gates start as identity
    eval_every: int = 0  # steps between held-out evaluations during training (0: only at the end)
    save_every: int = 0  # steps between resumable snapshots at <out>.resume.pt (0: none)
    resume: bool = False  # continue from <out>.resume.pt: weights, optimiser, schedule, step, RNGs
    threads: int = 2
    device: str = "cpu"
    # On a GPU: autocast the forward pass to bfloat16, and keep images and weights channels-last
    # (on the CPU too, where oneDNN's convolutions run this network ~15 % faster in that layout).
    bf16: bool = False
    channels_last: bool = True
    version: str = ""  # defaults to "<arch>-<UTC time>"


def parse_args(argv: list[str] | None = None) -> tuple[TrainConfig, dict[str, Any]]:
    """Build the command line from the two dataclasses; return the run config and model overrides."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="gala_small", help="model preset (config.PRESETS)")
    add_arguments(parser.add_argument_group("training"), TrainConfig)
    # Model flags default to None: only the ones given override the preset.
    add_arguments(
        parser.add_argument_group("model (overrides the preset)"),
        GALAConfig,
        defaults=False,
        skip=("arch", "num_classes"),
    )
    args = vars(parser.parse_args(argv))
    train = from_arguments(TrainConfig, args)
    train_names = {f.name for f in fields(TrainConfig)}
    if not train.demo and not train.data and not train.maps:
        parser.error("give --data DIR, --maps EXPORT_DIR or --demo")
    overrides = {k: v for k, v in args.items() if k not in train_names and v is not None}
    return train, overrides


def load_data(train: TrainConfig) -> tuple[Dataset, Dataset | None, list[str]]:
    """Return the training set, the held-out set (if any) and the class names."""
    if train.demo:
        logger.info("drawing the demo set: %d + %d per class", train.n_per_class, train.val_per_class)
        training = DemoDataset(n_per_class=train.n_per_class, seed=train.seed, background_cue=train.background_cue)
        held_out = DemoDataset(n_per_class=train.val_per_class, seed=train.seed, split="test")
        return training, held_out, training.classes
    if train.maps:
        images = Path(train.images) if train.images else None
        options = {"images": images, "val_fraction": train.val_fraction, "seed": train.seed}
        training = ExportDataset(Path(train.maps), split="train", **options)
        held_out = ExportDataset(Path(train.maps), split="val", classes=training.classes, **options)
        logger.info("export %s: %d training and %d held-out images", train.maps, len(training), len(held_out))
        return training, held_out if len(held_out) else None, training.classes
    training = ImageFolder(Path(train.data))
    held_out = ImageFolder(Path(train.val_data), classes=training.classes) if train.val_data else None
    return training, held_out, training.classes


def reveal(
    images: torch.Tensor,
    maps: torch.Tensor,
    counts: torch.Tensor,
    generator: torch.Generator,
    decoys: torch.Tensor | None = None,
) -> torch.Tensor:
    """Render images (B, 3, 224, 224) as the partner sees them after ``counts`` bubbles on maps.

    With ``decoys``, the noised pixels outside the bubbles come from those other images instead.
    """
    bubbles = sample_bubbles(maps, counts, generator)
    if decoys is None:
        # Images and bubbles are already in the 224 crop's pixels, so reveal_batch's centre crop
        # is a no-op and its masks are drawn on the 224 grid: the same pixels as in the game.
        seeds = torch.randint(0, 2**62, (len(images),), generator=generator)
        return reveal_batch(images, bubbles, counts, seeds)
    shown = bubble_masks(bubbles, counts, BUBBLE_SIZE, images.shape[-1])[:, None]  # (B, 1, H, W)
    # The game's formula, clip(img + N(0, 0.4) - 0.5, 0, 1), on the decoys; one noise draw for
    # the batch, since training needs no per-query seeds (0.8 ms per image saved).
    noise = torch.randn(decoys.shape, generator=generator)
    return torch.where(shown, images, (decoys + NOISE_STD * noise - 0.5).clamp(0.0, 1.0))


def augment(
    images: torch.Tensor,
    maps: torch.Tensor,
    has_map: torch.Tensor,
    train: TrainConfig,
    generator: torch.Generator,
    reveal_prob: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip, turn and recolour images (B, 3, H, W) with their maps, then reveal some partially."""
    batch = len(images)
    if train.augment:
        # The demo labels depend on shape alone, and a tiny net from scratch otherwise memorises
        # the training backgrounds before it learns shapes. Turns (with the flip, all 8 symmetries
        # of the square) keep the crop's pixel grid; a turn by 90 degrees is a new pose.
        turns = torch.randint(0, 8, (batch,), generator=generator)
        images, maps = images.clone(), maps.clone()
        for turn in range(1, 8):
            chosen = turns == turn
            for tensor in (images, maps):
                part = tensor[chosen].flip(-1) if turn >= 4 else tensor[chosen]
                tensor[chosen] = part.rot90(turn % 4, (2, 3))
        if train.augment_colour:
            order = torch.rand(batch, 3, generator=generator).argsort(1)  # (B, 3) channel orders
            images = images.gather(1, order[:, :, None, None].expand_as(images))
            invert = torch.rand(batch, generator=generator) < 0.3
            images = torch.where(invert[:, None, None, None], 1.0 - images, images)
    chosen = (torch.rand(batch, generator=generator) < reveal_prob) & has_map
    if chosen.any():
        size = (int(chosen.sum()),)
        counts = torch.randint(train.min_bubbles, train.max_bubbles + 1, size, generator=generator)
        # Per-pixel noise hides little from a network: averaged over an object's area it vanishes,
        # and a partner trained on the game's rendering learns to read silhouettes through it
        # (95 % top-1 with no bubble at all, measured). Noising another image of the batch instead
        # makes everything outside the bubbles useless, so the partner learns to recognise the
        # revealed parts, which is what the game asks of it (docs/game-api.md).
        decoys = images[torch.randperm(batch, generator=generator)][chosen]
        images = images.clone()
        images[chosen] = reveal(images[chosen], maps[chosen], counts, generator, decoys)
    return images, maps


@torch.inference_mode()
def evaluate(model: GALANet, dataset: Dataset, train: TrainConfig) -> dict[str, Any]:
    """Top-1 on whole held-out images, and after N bubbles painted on their maps (fixed seed)."""
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(train.seed + 1)
    whole, total, mapped = 0, 0, 0
    revealed = dict.fromkeys(train.eval_bubbles, 0)
    for images, labels, maps, has_map in DataLoader(dataset, batch_size=100):
        whole += int((model(images.to(device)).argmax(1).cpu() == labels).sum())
        total, mapped = total + len(labels), mapped + int(has_map.sum())
        for count in train.eval_bubbles if has_map.any() else ():
            counts = torch.full((int(has_map.sum()),), count)
            seen = reveal(images[has_map], maps[has_map], counts, generator)
            revealed[count] += int((model(seen.to(device)).argmax(1).cpu() == labels[has_map]).sum())
    model.train()
    return {
        "top1_whole": whole / total,
        "top1_revealed": {str(count): hits / max(mapped, 1) for count, hits in revealed.items()},
        "eval_images": total,
    }


def resume_path(train: TrainConfig) -> Path:
    """Return where resumable snapshots of this run go: ``<out>.resume.pt``."""
    out = Path(train.out)
    return out.with_name(out.name + ".resume.pt")


def initialise(model: GALANet, train: TrainConfig) -> None:
    """Load ``--init`` (a checkpoint of ours) or ``--init-resnet`` (torchvision's format) into model."""
    if train.init and train.init_resnet:
        raise ValueError("give --init or --init-resnet, not both")
    if train.init:
        state = torch.load(train.init, map_location="cpu", weights_only=True)["model"]
        fresh = load_backbone(model, state, source=train.init)
        logger.info("fine-tuning %s (%d tensors left at their initialisation)", train.init, len(fresh))
    elif train.init_resnet:
        state = torch.load(train.init_resnet, map_location="cpu", weights_only=True)
        fresh = load_backbone(model, state.get("state_dict", state), source=train.init_resnet)
        logger.info("starting from ResNet weights %s (%d tensors fresh)", train.init_resnet, len(fresh))


MAP_LOSSES = ("gala", "harmonization", "rrr", "gate")
GATE_TRAINING = ("all", "maps")


def check_cotraining(train: TrainConfig, overrides: dict[str, Any]) -> None:
    """Refuse co-training options that cannot work together, naming the option to change."""
    if train.map_loss not in MAP_LOSSES:
        raise ValueError(f"--map-loss must be one of {', '.join(MAP_LOSSES)}, not {train.map_loss!r}")
    if train.gate_learns_from not in GATE_TRAINING:
        choices = ", ".join(GATE_TRAINING)
        raise ValueError(f"--gate-learns-from must be one of {choices}, not {train.gate_learns_from!r}")
    if not 0 < train.gate_shut_below <= 1:
        raise ValueError(f"--gate-shut-below must be in (0, 1], not {train.gate_shut_below}")
    if train.gate_warmup_steps < 0:
        raise ValueError(f"--gate-warmup-steps must be 0 or more, not {train.gate_warmup_steps}")
    if train.gate_warmup_steps and not train.cotrain:
        raise ValueError("--gate-warmup-steps trains the map loss alone at first: it needs --cotrain")
    if not train.cotrain:
        return
    config = preset(overrides.get("arch", "gala_small"), **{k: v for k, v in overrides.items() if k != "arch"})
    if train.map_loss == "gate" and (config.attention != "gala" or config.nonlinearity != "hard"):
        raise ValueError("--map-loss gate needs GALA gates that can shut: add --nonlinearity hard")
    if train.gate_learns_from == "maps" and train.map_loss not in ("gala", "gate"):
        raise ValueError("--gate-learns-from maps needs a loss on the gates: --map-loss gala or gate")


def make_optimizer(model: GALANet, train: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over all parameters; attention parameters without decay when ``--no-decay-attention``."""
    attention = attention_parameter_names(model) if not train.decay_attention else set()
    decayed = [p for name, p in model.named_parameters() if name not in attention]
    groups = [{"params": decayed, "weight_decay": train.weight_decay}]
    if attention:
        groups.append({"params": [p for n, p in model.named_parameters() if n in attention], "weight_decay": 0.0})
    return torch.optim.AdamW(groups, lr=train.lr, weight_decay=train.weight_decay)


def map_loss_terms(
    attention: list[torch.Tensor], maps: torch.Tensor, has_map: torch.Tensor, train: TrainConfig
) -> torch.Tensor:
    """The click-map loss of one batch with the run's options (reduction, blur, resize, normalisation)."""
    if train.map_blur:
        maps = blur_maps(maps)
    return attention_loss(
        attention, maps, has_map, train.map_norm, reduction=train.map_reduction, resize=train.map_resize
    )


def main(argv: list[str] | None = None) -> Path:
    """Train, evaluate and write a self-describing checkpoint; return its path."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    train, overrides = parse_args(argv)
    started, cpu_started = time.perf_counter(), time.process_time()
    # Under torchrun every process draws the same shuffles and augmentations from the same seeds,
    # of the whole batch, and trains on its slice: together they train what one process would.
    context = distributed.setup(train.device)
    if train.batch_size % context.world:
        raise ValueError(f"--batch-size {train.batch_size} must divide among {context.world} processes")
    check_cotraining(train, overrides)
    if context.world > 1 and train.cotrain and train.map_loss in ("harmonization", "rrr"):
        raise ValueError(f"--map-loss {train.map_loss} needs a double backward, which DistributedDataParallel lacks")
    torch.manual_seed(train.seed)
    torch.set_num_threads(train.threads)
    generator = torch.Generator().manual_seed(train.seed)

    training, held_out, classes = load_data(train)
    config = preset(overrides.pop("arch"), num_classes=len(classes), **overrides)
    model = build(config)
    initialise(model, train)
    configure_gates(
        model,
        from_maps_only=train.cotrain and train.gate_learns_from == "maps",
        keep_logits=train.cotrain and train.map_loss == "gate",
    )
    device = context.device
    # Channels-last: oneDNN's convolutions run this network ~15 % faster per step on the CPU.
    layout = torch.channels_last if train.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=layout)
    network: torch.nn.Module = model  # what the training steps call: the model, or its DDP wrapper
    if context.world > 1:
        distributed.synchronise_batchnorm(model, cuda=device.startswith("cuda"))
        model = model.to(device, memory_format=layout)
        cuda_ids = [context.local_rank] if device.startswith("cuda") else None
        network = torch.nn.parallel.DistributedDataParallel(model, device_ids=cuda_ids)
    optimizer = make_optimizer(model, train)
    per_epoch = len(training) // train.batch_size
    if per_epoch == 0:
        raise ValueError(f"--batch-size {train.batch_size} is larger than the {len(training)} training images")
    steps = train.epochs * per_epoch
    if train.gate_warmup_steps >= steps:
        raise ValueError(f"--gate-warmup-steps {train.gate_warmup_steps} leaves none of the {steps} steps to classify")
    # A short warm-up: training sits at chance until the learning rate is high (measured: the
    # plateau ends about 100 steps after the peak), so the peak comes early.
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, train.lr, total_steps=steps, pct_start=0.05)
    step, history, evaluations = 0, [], []
    if train.resume:
        snapshot = torch.load(resume_path(train), map_location="cpu", weights_only=True)
        model.load_state_dict(snapshot["model"])
        optimizer.load_state_dict(snapshot["optimizer"])
        scheduler.load_state_dict(snapshot["scheduler"])
        generator.set_state(snapshot["generator"])
        step, history, evaluations = snapshot["step"], snapshot["history"], snapshot["evaluations"]
        logger.info("resuming %s at step %d", resume_path(train), step)
    logger.info("training %s on %d images for %d steps", config.arch, len(training), steps)
    weight = config.map_weight

    progress = tqdm(total=steps, initial=step, desc="train", unit="step", disable=not context.main)
    # Shuffling draws from the global RNG, as before resumable runs existed (so a run with the
    # same flags trains exactly as it did). A snapshot keeps that RNG's state at the start of its
    # epoch, to replay the epoch's order, and at the snapshot, to continue from there.
    loader = DataLoader(training, batch_size=train.batch_size, shuffle=True, drop_last=True)
    resumed_epoch = step // per_epoch if train.resume else -1
    for epoch in range(step // per_epoch, train.epochs):
        if epoch == resumed_epoch:
            torch.set_rng_state(snapshot["epoch_rng"])
        epoch_rng = torch.get_rng_state()
        # The epoch's order is drawn from the global RNG by the time the first batch is out.
        for index, (images, labels, maps, has_map) in enumerate(loader):
            if epoch == resumed_epoch and index == 0:
                torch.set_rng_state(snapshot["rng"])
            if epoch * per_epoch + index < step:
                continue  # replayed by a resume: already trained on
            # Reveals start once whole images have taught the shapes: from the start, even a small
            # share of them keeps the loss at chance for hundreds of steps (measured).
            ramp = (step / steps - train.reveal_after) / max(train.reveal_after, 1e-9)
            share = train.reveal_prob * min(max(ramp, 0.0), 1.0)
            images, maps = augment(images, maps, has_map, train, generator, share)
            if context.world > 1:  # this process's slice of the batch every process drew alike
                images, labels, maps, has_map = (
                    part.chunk(context.world)[context.rank] for part in (images, labels, maps, has_map)
                )
            images, labels = images.to(device), labels.to(device)
            if device.startswith("cuda"):  # on the CPU the first convolution's output is channels-last anyway
                images = images.contiguous(memory_format=layout)
            harmonize = train.cotrain and train.map_loss in ("harmonization", "rrr")
            images.requires_grad_(harmonize)  # the saliency is a gradient with respect to the pixels
            with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=train.bf16):
                logits, attention = network(images, with_attention=True)
            logits, attention = logits.float(), [a.float() for a in attention]
            class_loss = classification_loss(logits, labels, train.label_smoothing)
            warming_up = step < train.gate_warmup_steps  # the map loss alone (below)
            loss, map_loss = (class_loss * 0.0 if warming_up else class_loss), None
            if harmonize and train.map_loss == "rrr":
                map_loss = rrr_loss(logits, images, maps.to(device), has_map.to(device))
            elif harmonize:
                saliency = gradient_saliency(logits, images, labels)
                map_loss = harmonization_loss(saliency, maps.to(device), has_map.to(device))
            elif train.cotrain and train.map_loss == "gate":
                map_loss = gate_loss(
                    gate_logits(model), maps.to(device), has_map.to(device), shut_below=train.gate_shut_below
                )
            elif train.cotrain:
                map_loss = map_loss_terms(attention, maps.to(device), has_map.to(device), train)
                if train.map_reduction == "lab":
                    # A sum over the batch: each process sums its slice, and DDP averages gradients.
                    map_loss = map_loss * context.world
            if map_loss is not None:
                loss = loss + weight * map_loss
            # Logged for the whole batch: the mean over the processes (one process: its own values).
            logged = torch.stack([class_loss.detach(), (map_loss if map_loss is not None else loss).detach()])
            logged = distributed.mean_over_processes(logged, context).tolist()
            terms = {"step": step + 1, "loss_class": round(logged[0], 5)}
            if map_loss is not None:
                terms["loss_map"] = round(logged[1], 7)  # unweighted: weight * it entered the loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            history.append(terms)
            progress.update()
            progress.set_postfix(epoch=epoch, **{k: f"{v:.3g}" for k, v in terms.items() if k != "step"})
            if train.eval_every and held_out is not None and step % train.eval_every == 0 and step < steps:
                if context.main:
                    evaluations.append({"step": step, **evaluate(model, held_out, train)})
                    logger.info("step %d: %s", step, evaluations[-1])
                distributed.barrier(context)
            if train.save_every and step % train.save_every == 0 and step < steps and context.main:
                state = {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "generator": generator.get_state(),
                    "epoch_rng": epoch_rng,
                    "rng": torch.get_rng_state(),
                    "step": step,
                    "history": history,
                    "evaluations": evaluations,
                }
                partial = resume_path(train).with_suffix(".partial")
                partial.parent.mkdir(parents=True, exist_ok=True)
                torch.save(state, partial)
                partial.replace(resume_path(train))
    progress.close()
    out = Path(train.out)
    if not context.main:  # rank 0 evaluates and writes the checkpoint
        distributed.barrier(context)
        distributed.teardown(context)
        return out

    metrics = evaluate(model, held_out, train) if held_out is not None else {}
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    logger.info("metrics %s after %.0f s (%.0f CPU s)", metrics, elapsed, cpu)
    version = train.version or f"{config.arch}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    extra = {
        "metrics": metrics,
        "train": asdict(train),
        "history": history,  # the loss terms of every step
        "evaluations": evaluations,  # the periodic held-out evaluations (--eval-every)
        "train_seconds": round(elapsed, 1),
        # CPU time over all threads: on a shared machine, wall time says more about the neighbours.
        "train_cpu_seconds": round(cpu, 1),
        "torch_version": str(torch.__version__),  # a TorchVersion would need unpickling
        "processes": context.world,
    }
    save_checkpoint(out, model, config, classes=classes, version=version, extra=extra)
    distributed.barrier(context)
    distributed.teardown(context)
    return out


if __name__ == "__main__":
    main()
