"""Real-looking masks on unmasked face photos, placed from the face detector's five landmarks.

Train's masks are white and pasted on; real masks are black, blue, patterned, cloth, N95. This draws
surgical, cloth and N95-style masks in white, light, dark, coloured and printed shades on the full-size
unmasked photos (``../shared/data/train-photos/WithoutMask``), with ear loops, pleats and shading, then
converts each to 28x28 exactly like the dataset. Seeded and cached: the same options give the same images.
"""

from __future__ import annotations

import colorsys
import hashlib
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from facemask.data.images import IMAGE_SUFFIXES, ImageError, open_image, to_gray28

log = logging.getLogger(__name__)

KINDS = ("surgical", "cloth", "n95")
SHADES = ("white", "light", "dark", "colour", "print")


def mask_polygon(landmarks: np.ndarray, box: Sequence[float], kind: str) -> list[tuple[float, float]]:
    """The mask's outline in photo pixels from (eyes, nose, mouth corners) and the face box."""
    left_eye, right_eye, nose, mouth_left, mouth_right = landmarks
    eyes = right_eye - left_eye
    angle, span = math.atan2(eyes[1], eyes[0]), float(np.hypot(*eyes))
    centre_x = (nose[0] + (mouth_left[0] + mouth_right[0]) / 2) / 2
    top = nose[1] - 0.35 * span  # the nose bridge, below the eyes
    bottom = max(box[3], (mouth_left[1] + mouth_right[1]) / 2 + 0.9 * span)  # the chin
    half = 0.5 * (box[2] - box[0]) * 0.95
    if kind == "n95":  # a cup: pointed at the nose, round under the chin
        points = [(centre_x, top - 0.1 * span)]
        points += [
            (centre_x + half * math.sin(t), (top + bottom) / 2 + (bottom - top) / 2 * -math.cos(t) * 1.05)
            for t in np.linspace(0.35, 2 * math.pi - 0.35, 24)
        ]
    else:  # surgical (straight pleated) and cloth (rounder)
        sag = 0.12 if kind == "cloth" else 0.05
        points = [
            (centre_x - half, top + 0.15 * span),
            (centre_x, top),
            (centre_x + half, top + 0.15 * span),
            (centre_x + half * (0.9 if kind == "cloth" else 1.0), bottom - 0.35 * span),
            (centre_x, bottom + sag * span),
            (centre_x - half * (0.9 if kind == "cloth" else 1.0), bottom - 0.35 * span),
        ]
    return [_rotate(x, y, nose, angle) for x, y in points]


def _rotate(x: float, y: float, centre: np.ndarray, angle: float) -> tuple[float, float]:
    dx, dy = x - centre[0], y - centre[1]
    return centre[0] + dx * math.cos(angle) - dy * math.sin(angle), centre[1] + dx * math.sin(
        angle
    ) + dy * math.cos(angle)


def mask_texture(size: tuple[int, int], shade: str, rng: np.random.Generator) -> Image.Image:
    """An RGB fill of ``size``: one of white, light (blue, grey), dark (black, navy), a colour, or a print."""
    if shade == "white":
        rgb = rng.integers(225, 256, 3)
    elif shade == "light":
        rgb = (
            np.array(
                colorsys.hsv_to_rgb(rng.uniform(0.5, 0.65), rng.uniform(0.1, 0.45), rng.uniform(0.75, 0.95))
            )
            * 255
        )
    elif shade == "dark":
        rgb = (
            np.array(colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0, 0.6), rng.uniform(0.05, 0.3)))
            * 255
        )
    else:
        rgb = (
            np.array(colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.4, 1), rng.uniform(0.3, 0.9))) * 255
        )
    fill = np.broadcast_to(rgb.astype(np.float32), (size[1], size[0], 3)).copy()
    if shade == "print":  # stripes, checks or dots in a second colour
        second = np.array(colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0, 1))) * 255
        ys, xs = np.mgrid[0 : size[1], 0 : size[0]]
        period = max(4, int(min(size) / rng.uniform(6, 14)))
        pattern = rng.integers(3)
        on = (
            ((xs + ys) // period) % 2 == 0
            if pattern == 0
            else (
                (xs // period + ys // period) % 2 == 0
                if pattern == 1
                else (xs % period < period / 2.5) & (ys % period < period / 2.5)
            )
        )
        fill[on] = second
    return Image.fromarray(fill.clip(0, 255).astype(np.uint8))


def draw_mask(
    photo: Image.Image,
    landmarks: np.ndarray,
    box: Sequence[float],
    kind: str,
    shade: str,
    rng: np.random.Generator,
) -> Image.Image:
    """``photo`` (RGB) with a mask: the textured shape, soft vertical shading, pleats or a seam, ear loops."""
    outline = mask_polygon(landmarks, box, kind)
    shape = Image.new("L", photo.size, 0)
    ImageDraw.Draw(shape).polygon(outline, fill=255)
    shape = shape.filter(ImageFilter.GaussianBlur(max(0.6, photo.size[0] / 600)))
    layer = mask_texture(photo.size, shade, rng)
    ys = np.linspace(0, 1, photo.size[1], dtype=np.float32)[:, None, None]
    shading = 1.05 - 0.2 * np.abs(ys - rng.uniform(0.3, 0.7))  # a fold: light across the middle
    layer = Image.fromarray((np.asarray(layer, np.float32) * shading).clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(layer)
    xs, ys_ = [p[0] for p in outline], [p[1] for p in outline]
    width = max(1, round((max(xs) - min(xs)) / 60))
    line_colour = tuple(int(v * 0.75) for v in layer.getpixel((int(np.mean(xs)), int(np.mean(ys_)))))
    if kind == "surgical":  # three pleats
        for k in (0.35, 0.5, 0.65):
            y = min(ys_) + k * (max(ys_) - min(ys_))
            draw.line([(min(xs), y), (max(xs), y)], fill=line_colour, width=width)
    else:  # a seam down the middle
        draw.line([(np.mean(xs), min(ys_)), (np.mean(xs), max(ys_))], fill=line_colour, width=width)
    out = Image.composite(layer, photo, shape)
    loops = ImageDraw.Draw(out)
    left_eye, right_eye = landmarks[0], landmarks[1]
    loop_colour = tuple(
        int(v) for v in (np.asarray(layer.getpixel((int(np.mean(xs)), int(np.mean(ys_))))) * 0.9)
    )
    for corner, ear in (
        (outline[0], (box[0], left_eye[1])),
        (outline[2 if kind != "n95" else 5], (box[2], right_eye[1])),
    ):
        loops.line([corner, ear], fill=loop_colour, width=width)
    return out


def synthesize(
    photos: str | Path,
    stems: set[str] | None = None,
    kinds: Sequence[str] = KINDS,
    shades: Sequence[str] = SHADES,
    per_face: int = 1,
    seed: int = 0,
    cache_dir: str | Path | None = None,
) -> np.ndarray:
    """28x28 uint8 images (N, 28, 28) of masks drawn on ``photos/WithoutMask`` (only files whose stem is in
    ``stems`` where given: keep validation faces out), ``per_face`` each, kind and shade drawn per image."""
    if unknown := (set(kinds) - set(KINDS)) | (set(shades) - set(SHADES)):
        raise ValueError(f"unknown mask kinds/shades {sorted(unknown)}; known: {KINDS} and {SHADES}")
    folder = Path(photos) / "WithoutMask"
    files = sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and (stems is None or p.stem in stems)
    )
    key = hashlib.sha1(
        json.dumps(
            [str(folder), [p.name for p in files], list(kinds), list(shades), per_face, seed, 1]
        ).encode()
    ).hexdigest()[:16]
    cache = Path(cache_dir) / f"synthetic-{key}.npy" if cache_dir else None
    if cache is not None and cache.is_file():
        return np.load(cache)
    from facemask.inference.faces import CenterFace

    detector, rng, images = CenterFace(input_width=640), np.random.default_rng(seed), []
    for path in files:
        try:
            photo = open_image(path).convert("RGB")
        except ImageError as err:
            log.warning("synthesis skipped %s", err)
            continue
        faces = detector(np.asarray(photo)[:, :, ::-1].copy())
        if not faces:
            continue
        face = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
        for _ in range(per_face):
            kind, shade = kinds[rng.integers(len(kinds))], shades[rng.integers(len(shades))]
            images.append(to_gray28(draw_mask(photo, np.asarray(face.landmarks), face.box, kind, shade, rng)))
    result = np.stack(images) if images else np.zeros((0, 28, 28), np.uint8)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, result)
    log.info("synthesised %d masked faces from %d photos (%s)", len(result), len(files), folder)
    return result
