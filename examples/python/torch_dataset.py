#!/usr/bin/env python3
"""Rendering inside a training loop: a PyTorch IterableDataset of Cornell box renders.

RenderStream keeps `in_flight` renders submitted to a kiln.Renderer (kiln.Renderer.submit
returns a concurrent.futures.Future) and yields each image as it is needed, so the renderer works
while the model trains. It yields numpy arrays and needs no torch; torch_dataset() wraps it in a
torch.utils.data.IterableDataset that yields CHW float tensors.

Fork safety: a kiln.Renderer opened before fork() is refused in the child. DataLoader workers
(processes) must each open their own: pass worker_init_fn (below) to the DataLoader, which opens
one Renderer per worker and gives each worker its own seeds. With num_workers=0 the dataset opens
its renderer in the main process on first use.

    python3 examples/python/torch_dataset.py --count 64 --batch 8 --workers 2

torch is imported only when the torch parts are used (Debian: python3-torch).
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import sys
import time
from typing import Any, Deque, Dict, Iterator, Optional

import numpy as np

import kiln

HERE = os.path.dirname(os.path.abspath(__file__))
SCENE = os.path.join(HERE, "..", "cornell", "scene.json")
CENTER = [0.278, 0.273, 0.2796]
RADIUS = 1.0795


def random_camera(rng: np.random.Generator) -> Dict[str, Any]:
    """A camera on the cap of a sphere in front of the box's open side, looking at its centre."""
    azimuth = math.radians(rng.uniform(-35.0, 35.0))
    elevation = math.radians(rng.uniform(-20.0, 20.0))
    d = [math.sin(azimuth) * math.cos(elevation), math.sin(elevation),
         -math.cos(azimuth) * math.cos(elevation)]
    return {"position": [c + RADIUS * x for c, x in zip(CENTER, d)], "look_at": CENTER}


class RenderStream:
    """An iterable of `count` random renders (numpy float32 HxWx3), `in_flight` kept submitted.

    The renderer is opened by open() in the process that renders (worker_init_fn calls it in
    each DataLoader worker), or on first iteration."""

    def __init__(self, count: int, *, size: int = 64, spp: int = 4, in_flight: int = 4,
                 seed: int = 0, device: str = "auto", scene_path: str = SCENE) -> None:
        self.count, self.size, self.spp, self.in_flight = count, size, spp, in_flight
        self.seed, self.device, self.scene_path = seed, device, scene_path
        self.worker, self.workers = 0, 1
        self.renderer: Optional[Any] = None

    def open(self, worker: int = 0, workers: int = 1) -> None:
        """Opens this process's renderer; images worker, worker + workers, ... are this one's."""
        with open(self.scene_path, encoding="utf-8") as f:
            doc = json.load(f)
        doc.setdefault("settings", {}).update(width=self.size, height=self.size, spp=self.spp)
        base_dir = os.path.dirname(os.path.abspath(self.scene_path))
        scene = kiln.Scene.from_dict(doc, base_dir=base_dir)
        self.renderer = kiln.Renderer(scene, device=self.device)
        self.worker, self.workers = worker, workers

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.renderer is None:
            self.open()
        renderer = self.renderer
        assert renderer is not None
        indices = iter(range(self.worker, self.count, self.workers))
        pending: Deque[Any] = collections.deque()
        for index in indices:
            rng = np.random.default_rng([self.seed, index])  # the same image whoever renders it
            pending.append(renderer.submit(camera=random_camera(rng), seed=index, spp=self.spp))
            if len(pending) >= self.in_flight:
                yield pending.popleft().result().color
        while pending:
            yield pending.popleft().result().color


def torch_dataset(count: int, **options: Any) -> Any:
    """A torch IterableDataset over RenderStream(count, **options): CHW float32 tensors."""
    import torch  # only here: the rest of the example runs without torch
    from torch.utils.data import IterableDataset

    class KilnRenders(IterableDataset):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.stream = RenderStream(count, **options)

        def __iter__(self) -> Iterator["torch.Tensor"]:
            for color in self.stream:
                yield torch.from_numpy(color).permute(2, 0, 1)

    return KilnRenders()


def worker_init_fn(worker_id: int) -> None:
    """For torch.utils.data.DataLoader(worker_init_fn=...): opens a Renderer in this worker."""
    import torch.utils.data

    info = torch.utils.data.get_worker_info()
    info.dataset.stream.open(worker=info.id, workers=info.num_workers)


def main(argv: Any = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=64, help="images (default 64)")
    ap.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    ap.add_argument("--in-flight", type=int, default=4, help="renders in flight per worker")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--spp", type=int, default=4)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    if args.count < 1:
        ap.error("--count must be at least 1")
    from torch.utils.data import DataLoader

    ds = torch_dataset(args.count, size=args.size, spp=args.spp, in_flight=args.in_flight,
                       device=args.device)
    loader = DataLoader(ds, batch_size=args.batch, num_workers=args.workers,
                        worker_init_fn=worker_init_fn if args.workers else None)
    t0, n, shape = time.perf_counter(), 0, ()
    for batch in loader:
        n, shape = n + batch.shape[0], tuple(batch.shape[1:])
    dt = time.perf_counter() - t0
    print(f"{n} images as {shape} tensors in {dt:.2f} s: {n / dt:.1f} images/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
