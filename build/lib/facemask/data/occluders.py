"""Things over the lower face that are not masks, drawn on unmasked photos as WithoutMask examples.

A model taught that masks come in every colour and print also learns "something covers the mouth";
hands, beards and scarves are the everyday counter-examples. They are placed from the detector's five
landmarks and, unlike a mask, always leave the nose free. Drawn at full resolution with shapes of their
own: the evaluation's hard-negative report (``evaluation/hard_negatives.py``) draws different ones on
28x28 Test faces, so that it still measures something the model was not shown.
"""

from __future__ import annotations

import colorsys
import itertools
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

OCCLUDERS = ("hand", "beard", "scarf")


def lower_face(landmarks: np.ndarray, box: Sequence[float]) -> dict[str, float]:
    """Reference lines in photo pixels: eye distance, nose tip, mouth and chin heights, face centre."""
    left_eye, right_eye, nose, mouth_left, mouth_right = landmarks
    span = float(np.hypot(*(right_eye - left_eye)))
    mouth_y = float(mouth_left[1] + mouth_right[1]) / 2
    return {
        "span": span,
        "nose_y": float(nose[1]),
        "mouth_y": mouth_y,
        "chin_y": max(float(box[3]), mouth_y + 0.9 * span),
        "centre_x": float(mouth_left[0] + mouth_right[0]) / 2,
    }


def draw_occluder(
    photo: Image.Image,
    landmarks: np.ndarray,
    box: Sequence[float],
    kind: str,
    rng: np.random.Generator,
    fabric: Image.Image | None = None,
) -> Image.Image:
    """``photo`` (RGB) with a hand, a beard or a scarf (of ``fabric``, photo-sized) over mouth and chin,
    the nose left free."""
    face = lower_face(landmarks, box)
    shape = Image.new("L", photo.size, 0)
    if kind == "hand":
        fill = _hand(shape, face, _skin(photo, landmarks), rng)
    elif kind == "beard":
        fill = _beard(shape, face, landmarks, rng)
    elif kind == "scarf":
        fill = _scarf(shape, face, rng, fabric or Image.new("RGB", photo.size, (90, 60, 120)))
    else:
        raise ValueError(f"unknown occluder {kind!r}; known: {OCCLUDERS}")
    shape = shape.filter(ImageFilter.GaussianBlur(max(0.6, face["span"] / 40)))
    return Image.composite(fill, photo, shape)


def _skin(photo: Image.Image, landmarks: np.ndarray) -> np.ndarray:
    """The face's own skin colour: the median between the eyes and the nose tip."""
    (x1, y1), (x2, _), (_, y3) = landmarks[0], landmarks[1], landmarks[2]
    patch = np.asarray(photo.crop((int(x1), int(y1), int(max(x2, x1 + 2)), int(max(y3, y1 + 2)))))
    return np.median(patch.reshape(-1, 3), axis=0) if patch.size else np.array([180, 140, 120])


def _hand(
    shape: Image.Image, face: dict[str, float], skin: np.ndarray, rng: np.random.Generator
) -> Image.Image:
    """A palm over mouth and chin with four fingers fanning up or sideways, darker lines between them."""
    span, draw = face["span"], ImageDraw.Draw(shape)
    cx = face["centre_x"] + rng.uniform(-0.3, 0.3) * span
    cy = (face["mouth_y"] + face["chin_y"]) / 2 + rng.uniform(0.0, 0.25) * span
    draw.ellipse([cx - 0.55 * span, cy - 0.4 * span, cx + 0.55 * span, cy + 0.6 * span], fill=255)
    tilt = rng.uniform(-0.9, 0.9)  # the fingers' direction, radians from straight up
    width = max(2, int(0.2 * span))
    gaps = []
    for k in range(4):
        angle = tilt + (k - 1.5) * 0.12
        start = (cx + (k - 1.5) * 0.24 * span, cy - 0.2 * span)
        end = (start[0] + math.sin(angle) * 0.75 * span, start[1] - math.cos(angle) * 0.75 * span)
        end = (end[0], max(end[1], face["nose_y"] + 0.15 * span))  # the nose stays free
        draw.line([start, end], fill=255, width=width)
        draw.ellipse(
            [end[0] - width / 2, end[1] - width / 2, end[0] + width / 2, end[1] + width / 2], fill=255
        )
        gaps.append((start, end))
    tone = (skin * rng.uniform(0.85, 1.1)).clip(0, 255)
    layer = Image.fromarray(np.broadcast_to(tone.astype(np.uint8), (shape.size[1], shape.size[0], 3)).copy())
    lines = ImageDraw.Draw(layer)
    crease = tuple(int(v) for v in tone * 0.7)
    for (s1, e1), (s2, e2) in itertools.pairwise(gaps):  # between neighbouring fingers
        lines.line([((s1[0] + s2[0]) / 2, (s1[1] + s2[1]) / 2), ((e1[0] + e2[0]) / 2, (e1[1] + e2[1]) / 2)],
                   fill=crease, width=max(1, width // 5))  # fmt: skip
    return layer.filter(ImageFilter.GaussianBlur(max(0.5, span / 60)))


def _beard(
    shape: Image.Image, face: dict[str, float], landmarks: np.ndarray, rng: np.random.Generator
) -> Image.Image:
    """Hair along the jaw, round the chin and over the upper lip, the lips showing through; streaky and
    thinning towards its edges."""
    span, draw = face["span"], ImageDraw.Draw(shape)
    left_eye, _, _, mouth_left, mouth_right = landmarks
    lip_top = face["nose_y"] + rng.uniform(0.3, 0.5) * (face["mouth_y"] - face["nose_y"])
    jaw_top = left_eye[1] + rng.uniform(0.4, 0.8) * (face["mouth_y"] - left_eye[1])
    half = rng.uniform(0.9, 1.1) * span
    cx, chin = face["centre_x"], face["chin_y"] + rng.uniform(-0.1, 0.2) * span
    outline = [
        (cx - half, jaw_top),
        (cx - 0.7 * half, face["mouth_y"] - 0.1 * span),
        (cx - 0.4 * span, lip_top),
    ]
    outline += [
        (cx + 0.4 * span, lip_top),
        (cx + 0.7 * half, face["mouth_y"] - 0.1 * span),
        (cx + half, jaw_top),
    ]
    outline += [(cx + 0.85 * half, chin - 0.35 * span), (cx, chin), (cx - 0.85 * half, chin - 0.35 * span)]
    draw.polygon(outline, fill=255)
    lips = (mouth_right[0] - mouth_left[0]) / 2
    draw.ellipse([cx - lips, face["mouth_y"] - 0.08 * span, cx + lips, face["mouth_y"] + 0.1 * span], fill=0)
    density = np.asarray(shape.filter(ImageFilter.GaussianBlur(span / 8)), np.float32) / 255
    shape.paste(Image.fromarray((np.asarray(shape) * density.clip(0, 1) ** 0.5).astype(np.uint8)))
    hue, value = rng.uniform(0.02, 0.12), rng.uniform(0.08, 0.5)
    colour = np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.1, 0.5), value)) * 255
    height, width = shape.size[1], shape.size[0]
    streaks = rng.normal(1, 0.35, (height, max(2, width // 2))).clip(0.3, 1.8)  # hairs: vertical streaks
    streaks = np.asarray(
        Image.fromarray((streaks * 100).astype(np.uint8)).resize((width, height)), np.float32
    )
    return Image.fromarray((colour[None, None, :] * streaks[:, :, None] / 100).clip(0, 255).astype(np.uint8))


def _scarf(
    shape: Image.Image, face: dict[str, float], rng: np.random.Generator, fabric: Image.Image
) -> Image.Image:
    """A scarf from the bottom of the photo up over the chin, at most to the lower lip, wider than the face."""
    span, draw = face["span"], ImageDraw.Draw(shape)
    top = rng.uniform(face["mouth_y"] + 0.15 * span, face["mouth_y"] + 0.6 * span)
    sag = rng.uniform(-0.15, 0.2) * span
    width, height = shape.size
    edge = [(0, top + 0.5 * span), (face["centre_x"], top + sag), (width, top + 0.5 * span)]
    draw.polygon([*edge, (width, height), (0, height)], fill=255)
    return fabric
