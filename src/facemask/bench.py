"""``facemask bench``: the figures a user needs to size a PC, measured on this machine, saved as JSON.

Classifier latency (batch 1, one thread) and throughput (large batch, all threads), detector time per
640x480 frame, end-to-end FPS and peak memory of ``facemask detect`` on a 640x480 video, for the
PyTorch and the ONNX paths; FPS per camera with 1 and 2 cameras at once; and training throughput of the
default model against its compute ceiling.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import lightning as L
import numpy as np
from lightning.pytorch.callbacks import Callback
from rich.console import Console
from rich.table import Table

from facemask.data.root import find_data_root
from facemask.errors import FacemaskError
from facemask.inference.classifier import load_classifier, model_cropper
from facemask.inference.sources import open_source
from facemask.progress import status
from facemask.vision.faces import CenterFace
from facemask.vision.images import IMAGE_SUFFIXES, load_frame

FRAME = (640, 480)
PATHS = ("torch", "onnx")  # the table's columns

#: Runs a command and prints its peak resident memory in MB (ru_maxrss of the waited child, Linux: kB).
PEAK_RSS = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
)


def median_seconds(work: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        work()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_video(photos: Path, path: Path, frames: int) -> Path:
    """A 640x480 video of face photos, each letterboxed and held for a few frames (camera-like)."""
    files = sorted(p for p in photos.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FacemaskError(f"{photos}: no photos to build the benchmark video from (use --photos)")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, FRAME)
    for i in range(frames):
        writer.write(letterbox(load_frame(files[(i // 5) % len(files)]))[0])
    writer.release()
    return path


def letterbox(photo: np.ndarray, shrink: float = 1.0) -> tuple[np.ndarray, float, int, int]:
    """``photo`` fitted into a black 640x480 frame, centred, then shrunk by ``shrink`` (faces further from the
    camera): (frame, the photo's scale, its left and top offsets)."""
    scale = min(FRAME[0] / photo.shape[1], FRAME[1] / photo.shape[0]) * shrink
    resized = cv2.resize(photo, (max(1, int(photo.shape[1] * scale)), max(1, int(photo.shape[0] * scale))))
    canvas = np.zeros((FRAME[1], FRAME[0], 3), np.uint8)
    top, left = (FRAME[1] - resized.shape[0]) // 2, (FRAME[0] - resized.shape[1]) // 2
    canvas[top : top + resized.shape[0], left : left + resized.shape[1]] = resized
    return canvas, scale, left, top


def classifier_figures(model: Path, repeats: int) -> dict[str, float]:
    """Latency per face crop (batch 1, one thread), throughput (batch 1024, all threads), and what the model
    reads and costs: its input spec and millions of MACs a face (flip test-time augmentation included)."""
    one_thread = load_classifier(model, threads=1)
    crops = np.random.default_rng(0).integers(0, 256, (1024, *one_thread.spec.face_shape), dtype=np.uint8)
    latency = median_seconds(lambda: one_thread.predict_proba(crops[:1]), repeats * 20)
    all_threads = load_classifier(model)
    batch = median_seconds(lambda: all_threads.predict_proba(crops), max(3, repeats // 5))
    spec = one_thread.spec
    return {
        "latency_ms": latency * 1000,
        "throughput_per_s": len(crops) / batch,
        "input": f"{spec.size}x{spec.size} {'gray' if spec.channels == 1 else 'RGB'}",
        # None for exports from before the count was recorded
        "mmacs_per_face": None if one_thread.macs is None else one_thread.macs / 1e6,
    }


def detect_figures(model: Path, video: Path, args: argparse.Namespace) -> dict[str, float]:
    """FPS and peak memory of ``facemask detect`` run on its own, as deployed: every face tracked into people,
    a label voted per person, their entrance events written."""
    margin = ["--margin", str(args.margin)] if args.margin is not None else []
    command = [sys.executable, "-m", "facemask.cli", "detect", str(model), "--source", str(video),
               "--events", str(video.with_suffix(".events.jsonl")), "--detector-width", str(args.detector_width),
               "--min-score", str(args.min_score), "--threads", str(args.threads), *margin]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, *command], capture_output=True, text=True, check=True
    )
    summary = json.loads(next(line for line in reversed(done.stderr.splitlines()) if line.startswith("{")))
    return {
        "fps": summary["fps"],
        "faces_per_frame": summary["faces"] / max(1, summary["frames"]),
        "people": sum(summary["people"].values()),
        "peak_mb": float(done.stdout),
    }


def cameras_figures(model: Path, video: Path, args: argparse.Namespace) -> dict[str, float]:
    """Frames a second per camera when one ``serve`` reads 1 or 2 cameras (one inference thread for them all,
    frames taken as fast as they come), and when 2 ``detect`` processes run side by side (detect's recipe for
    more cameras: a process each)."""
    from concurrent.futures import ThreadPoolExecutor

    from facemask.web.entrance import Entrance

    classifier = load_classifier(model, args.threads)
    cropper = model_cropper(classifier, model, args.detector_width, args.min_score, args.margin)
    figures = {}
    for cameras in (1, 2):
        entrance, worker = Entrance(classifier, cropper), ThreadPoolExecutor(1)
        for index in range(cameras):
            source = open_source(str(video))
            source.live = True  # as a camera: no pacing at the file's frame rate
            entrance.add_camera(f"camera-{index}", source, video.name)
        start = time.perf_counter()
        entrance.start(worker)
        for door in entrance.doors.values():
            door.thread.join()
        seconds = time.perf_counter() - start
        frames = [door.session.frames for door in entrance.doors.values()]
        entrance.close(worker)
        figures[f"serve_{cameras}_camera_fps"] = statistics.mean(frames) / seconds
    margin = ["--margin", str(args.margin)] if args.margin is not None else []
    command = [sys.executable, "-m", "facemask.cli", "detect", str(model), "--source", str(video),
               "--detector-width", str(args.detector_width), "--min-score", str(args.min_score), *margin]  # fmt: skip
    processes = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    summaries = [json.loads(process.communicate()[1].strip().splitlines()[-1]) for process in processes]
    figures["detect_2_processes_fps"] = statistics.mean(summary["fps"] for summary in summaries)
    return figures


def compose_train(output_dir: Path, *overrides: str):
    """The train.py config (defaults + ``overrides``) writing into ``output_dir``."""
    from hydra import compose, initialize_config_dir

    from facemask.runs import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("train.yaml", overrides=[f"paths.output_dir={output_dir}", *overrides])


def default_checkpoint(folder: Path) -> Path:
    """An untrained default-config model: latency and memory depend on the architecture, not the weights."""
    from hydra.utils import instantiate

    cfg = compose_train(folder)
    trainer = L.Trainer(
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.strategy.connect(instantiate(cfg.model, operating_point=cfg.operating_point))
    trainer.save_checkpoint(folder / "default.ckpt")
    return folder / "default.ckpt"


def training_figures(folder: Path, epochs: int) -> dict[str, float]:
    """Images/s of the default model: ``fit`` with the real data pipeline, augmentation, metrics and
    TensorBoard logging (validation off), against the compute ceiling: the same number of training
    steps of a copy of the model on in-memory tensors, run right after each fit epoch so that both see
    the same machine state. Medians over epochs, the first skipped (warm-up)."""
    from hydra.utils import instantiate

    cfg = compose_train(
        folder, f"trainer.max_epochs={epochs + 1}", "+trainer.limit_val_batches=0", "~callbacks"
    )
    L.seed_everything(0, workers=True)
    datamodule, model = instantiate(cfg.data), instantiate(cfg.model, operating_point=cfg.operating_point)
    timer = PairedEpochTimer(cfg.data.batch_size)
    trainer = instantiate(cfg.trainer, logger=instantiate(cfg.logger), callbacks=[timer], enable_progress_bar=False,
                          enable_checkpointing=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(model, datamodule=datamodule)
    images = len(datamodule.sets["train"])  # per fit epoch; the ceiling runs as many full batches
    ceiling_images = trainer.num_training_batches * cfg.data.batch_size
    fit, ceiling = (statistics.median(seconds[1:]) for seconds in (timer.fit, timer.ceiling))
    ratio = statistics.median(
        (images / f) / (ceiling_images / c) for f, c in zip(timer.fit[1:], timer.ceiling[1:], strict=True)
    )
    return {
        "fit_images_per_s": images / fit,
        "ceiling_images_per_s": ceiling_images / ceiling,
        "ratio": ratio,
    }


class PairedEpochTimer(Callback):
    """Times each training epoch, then as many bare training steps (forward, loss, backward, AdamW) of
    a copy of the model on fixed in-memory tensors."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.fit: list[float] = []
        self.ceiling: list[float] = []

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import copy

        import torch
        import torch.nn.functional as F

        self.fit.append(time.perf_counter() - self.start)
        model = copy.deepcopy(pl_module).train()
        optimizer = model.configure_optimizers()["optimizer"]
        shape = (self.batch_size, *pl_module.spec.tensor_shape)
        images, labels = torch.rand(shape), torch.randint(0, 2, (self.batch_size,))
        start = time.perf_counter()
        for _ in range(trainer.num_training_batches):
            optimizer.zero_grad()
            F.cross_entropy(model(images), labels).backward()
            optimizer.step()
        self.ceiling.append(time.perf_counter() - start)


def model_paths(model: str | None, folder: Path) -> dict[str, Path]:
    """The model files to measure, by path: a checkpoint (default: an untrained default model) and its ONNX
    export, or an ONNX file alone (nothing turns it back into PyTorch; a one-line note says so)."""
    from facemask.inference.export import export_onnx

    if model is not None and Path(model).suffix.lower() == ".onnx":
        print(f"note: {model} is ONNX: the PyTorch figures need a checkpoint", file=sys.stderr)
        return {"onnx": Path(model)}
    checkpoint = Path(model) if model else default_checkpoint(folder)
    return {"torch": checkpoint, "onnx": export_onnx(checkpoint, folder / "model.onnx")}


def run_bench(args: argparse.Namespace, progress: bool = False) -> dict:
    """Measure, save ``args.output`` and print the table; ``progress``: a spinner per stage on stderr."""
    for name in ("lightning.pytorch", "lightning.fabric"):  # no GPU/TPU/seed banners between the figures
        logging.getLogger(name).setLevel(logging.WARNING)
    repeats = 5 if args.quick else 50
    photos = (
        Path(args.photos) if args.photos else find_data_root() / "photos"
    )  # Test photos, beside the dataset
    console = Console(stderr=True, width=None if sys.stderr.isatty() else 120)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with status("building the 640x480 test video", progress):  # first: fails fast
            video = make_video(photos, folder / "bench.mp4", 60 if args.quick else 300)
        with status("preparing the model (checkpoint, ONNX export)", progress):
            paths = model_paths(args.model, folder)
        frame = next(open_source(str(video)).frames)[1]
        detector = CenterFace(args.detector_width, args.min_score)
        with status("face detector", progress):
            results["detector"] = {"ms_per_frame": median_seconds(lambda: detector(frame), repeats) * 1000,
                                   "input_width": args.detector_width}  # fmt: skip
        for name, path in paths.items():
            with status(f"classifier and detect pipeline, {name}", progress):
                results[name] = classifier_figures(path, repeats) | detect_figures(path, video, args)
        with status("1 and 2 cameras at once (ONNX)", progress):
            results["cameras"] = cameras_figures(paths["onnx"], video, args)
        with status("training throughput of the default model", progress):
            results["training"] = training_figures(folder, 1 if args.quick else 4)
    results["machine"] = {"cpus": _cpu_count(), "model": str(args.model or "default (untrained)")}
    Path(args.output).write_text(json.dumps(results, indent=2))
    show(results, console)
    console.print(f"saved {args.output}")
    return results


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def show(results: dict, console: Console) -> None:
    table = Table("figure", "PyTorch", "ONNX", "target", box=None)
    table.add_row(
        "classifier input", *(results[path]["input"] if path in results else "-" for path in PATHS), ""
    )
    for key, label, target in (
        ("mmacs_per_face", "classifier M MACs/face", ""),
        ("latency_ms", "classifier ms/face (batch 1, 1 thread)", "≤ 1 (ONNX)"),
        ("throughput_per_s", "classifier faces/s (batch 1024)", ""),
        ("fps", "detect FPS, 640x480 video", "≥ 30"),
        ("peak_mb", "detect peak memory, MB", "≤ 300 (ONNX)"),
    ):
        table.add_row(label, *(_figure(results.get(path, {}).get(key)) for path in PATHS), target)
    table.add_row("face detector ms/frame (640x480)", f"{results['detector']['ms_per_frame']:.1f}", "", "")
    cameras = results["cameras"]
    for key, label in (
        ("serve_1_camera_fps", "serve, 1 camera: FPS"),
        ("serve_2_camera_fps", "serve, 2 cameras: FPS per camera"),
        ("detect_2_processes_fps", "2 detect processes: FPS each"),
    ):
        table.add_row(label, "", _figure(cameras[key]), "")
    training = results["training"]
    table.add_row("training images/s: fit / ceiling", f"{training['fit_images_per_s']:.0f} / "
                  f"{training['ceiling_images_per_s']:.0f} = {training['ratio']:.0%}", "", "≥ 85%")  # fmt: skip
    console.print(table)
