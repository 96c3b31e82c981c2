"""Speed of feature extraction: images per second of the ResNet-50 (backbone.py) through
extraction.extract, JPEG decoding and preprocessing included.

It writes `images` random JPEGs of the input size into a temporary folder, builds a randomly
initialised ResNet-50 (the speed does not depend on the weights), extracts one warm-up batch,
then times the extraction of all images. Writes a Markdown report and a JSON file under
results/benchmarks/.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..features.backbone import ResNet50
from ..features.extraction import Extraction, extract
from ..harness.provenance import describe
from ..runtime.device import resolve_device
from .report_files import machine_line, write_report


def run(images: int = 64, batch_size: int = 32, height: int = 256, width: int = 128, flip: bool = False,
        device: str = "cpu", threads: int | None = None, note: str = "", output: str | Path = "results/benchmarks",
        log=print) -> dict:
    if threads:
        torch.set_num_threads(threads)
    device = resolve_device(device)
    preprocessing = Extraction("random weights", flip=flip).preprocessing((height, width))
    model = ResNet50(last_stride=1)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        paths = [Path(folder) / f"{index:05d}.jpg" for index in range(images)]
        for path in paths:
            Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path, quality=90)
        extract(model, paths[:batch_size], preprocessing, batch_size, str(device))  # warm-up
        start = time.perf_counter()
        extract(model, paths, preprocessing, batch_size, str(device), show_progress=True, label="timing")
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    figures = {"images": images, "batch_size": batch_size, "height": height, "width": width, "flip": flip,
               "seconds": seconds, "images_per_s": images / seconds, "note": note, **describe(device)}
    log(f"{images} images of {height}x{width} in {seconds:.1f} s: {figures['images_per_s']:.1f} images/s "
        f"on {figures['device']} with {figures['threads']} threads")
    _write(figures, Path(output))
    return figures


def _write(figures: dict, folder: Path) -> None:
    f = figures
    name = f"extraction_{'cuda' if f['device'].startswith('cuda') else 'cpu'}_{f['height']}x{f['width']}"
    command = (f"python -m rerankbench extraction-benchmark --images {f['images']} --batch-size {f['batch_size']} "
               f"--image-size {f['height']}x{f['width']} --threads {f['threads']}" + (" --flip" if f["flip"] else ""))
    lines = [
        f"# Feature extraction speed, ResNet-50 at {f['height']}x{f['width']}", "",
        f"Command: `{command}`  ", machine_line(f),
        *([f"Note: {f['note']}"] if f["note"] else []), "",
        "| images | batch | flip | seconds | images/s |", "| --- | --- | --- | --- | --- |",
        f"| {f['images']} | {f['batch_size']} | {'yes' if f['flip'] else 'no'} | {f['seconds']:.1f} | "
        f"{f['images_per_s']:.1f} |", "",
        "JPEG decoding, resizing and normalisation are inside the timed loop; one warm-up batch before it.", ""]
    write_report(folder, name, f, lines)
