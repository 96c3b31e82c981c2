"""Reading the datasets' released folders (shared/spec/datasets.md): the helpers every
datasets/*.py reader is made of, and the records they return.

Identities and cameras are kept exactly as released: Market-1501's junk images keep identity
-1 and its distractors identity 0, cameras keep their released numbers (from 1). Every
problem -- a missing folder or list file, a line or file name that does not parse, a split
with no images -- is a LayoutError naming the path.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

PERSON_SIZE = (256, 128)  # height, width fed to the backbone (fast-reid's BoT configs)
VEHICLE_SIZE = (256, 256)


class LayoutError(ValueError):
    """A dataset folder that does not match its released layout; the message names the path."""


@dataclass(frozen=True, eq=False)
class Images:
    """The image files of one split, their identities and cameras (None: the dataset has none)."""

    paths: list[Path]
    ids: np.ndarray
    cams: np.ndarray | None

    def __len__(self) -> int:
        return len(self.paths)

    def rows(self, rows: np.ndarray) -> "Images":
        return Images([self.paths[i] for i in rows], self.ids[rows], None if self.cams is None else self.cams[rows])


@dataclass(frozen=True, eq=False)
class ReleasedSplits:
    """A dataset read from its released folder: train, query and gallery images, and the list
    files (or image folders) they came from, relative to `root`."""

    root: Path
    train: Images
    query: Images
    gallery: Images
    lists: tuple[str, ...]

    def digest(self) -> str:
        """SHA-1 of every image path, identity and camera: changes when the folder does."""
        digest = hashlib.sha1()
        for split in (self.train, self.query, self.gallery):
            digest.update("\n".join(map(str, split.paths)).encode())
            for array in (split.ids, split.cams):
                if array is not None:
                    digest.update(np.ascontiguousarray(array).view(np.uint8).data)
        return digest.hexdigest()[:16]


@dataclass(frozen=True)
class ReleasedLayout:
    """How to read one test set's released folder, and the size (height, width) its images
    are fed to the backbone at."""

    read: Callable[[Path], ReleasedSplits]
    image_size: tuple[int, int]


def subfolder(parent: str | Path, *names: str) -> Path:
    """PARENT/<name> for the first of the names that is a folder there, or PARENT itself when
    it is named so (a data root may be the dataset's own folder)."""
    parent = Path(parent)
    if not parent.is_dir():
        raise LayoutError(f"{parent}: missing folder")
    for name in names:
        if (parent / name).is_dir():
            return parent / name
    if parent.name in names:
        return parent
    raise LayoutError(f"{parent}: missing folder {' or '.join(names)} in it")


def folder(path: Path) -> Path:
    if not path.is_dir():
        raise LayoutError(f"{path}: missing folder")
    return path


def list_lines(path: Path, fields: int, separator: str | None = None) -> list[list[str]]:
    """The non-empty lines of a list file, each split into `fields` fields."""
    if not path.is_file():
        raise LayoutError(f"{path}: missing list file")
    lines = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            parts = line.strip().split(separator)
            if len(parts) != fields:
                raise LayoutError(f"{path}, line {number}: expected {fields} fields, got {line.strip()!r}")
            lines.append([part.strip() for part in parts])
    return lines


def whole_number(text: str, where: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise LayoutError(f"{where}: {text!r} is not a whole number") from None


def name_fields(path: Path, pattern: re.Pattern) -> tuple[int, int]:
    """(identity, camera) from an image's file name: the pattern's two groups."""
    match = pattern.fullmatch(path.name)
    if match is None:
        raise LayoutError(f"{path}: file name does not parse as identity and camera ({pattern.pattern})")
    return int(match.group(1)), int(match.group(2))


def images(paths: list[Path], ids: list[int], cams: list[int] | None, where: Path) -> Images:
    """The split's Images; an empty split is an error naming where it came from."""
    if not paths:
        raise LayoutError(f"{where}: empty split (no images)")
    return Images(paths, np.asarray(ids, np.int64), None if cams is None else np.asarray(cams, np.int64))


def named_images(paths: list[Path], pattern: re.Pattern, where: Path) -> Images:
    """Images whose identity and camera are fields of their file names."""
    fields = [name_fields(path, pattern) for path in paths]
    return images(paths, [i for i, _ in fields], [c for _, c in fields], where)


def scanned(path: Path, pattern: re.Pattern) -> Images:
    """Every .jpg in an image folder, identity and camera from the file name."""
    return named_images(sorted(folder(path).glob("*.jpg")), pattern, path)


def scanned_splits(root: Path, pattern: re.Pattern, train: str, query: str, gallery: str) -> ReleasedSplits:
    """Three image folders, identity and camera from the file names (Market-1501, DukeMTMC-reID)."""
    return ReleasedSplits(root, *(scanned(root / name, pattern) for name in (train, query, gallery)),
                          lists=(train, query, gallery))


def listed(list_file: Path, image_folder: Path, pattern: re.Pattern) -> Images:
    """The images a list file names (one file name a line) in an image folder, identity and
    camera from the file name."""
    names = [line[0] for line in list_lines(list_file, 1)]
    return named_images([folder(image_folder) / name for name in names], pattern, list_file)
