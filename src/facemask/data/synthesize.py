"""Real-looking masks on face photos, placed from the face detector's five landmarks.

Train's masks are one light-blue clip-art pasted on; real masks are black, blue, patterned, cloth, N95.
This draws surgical, cloth and N95-style masks in white, light, dark, coloured and printed shades on the
full-size unmasked photos of the training part, lit by the photo's own light and rounded over the face,
with pleats or a seam and ear loops; and re-shades the pasted clip-art of the masked ones in the same
shades, keeping its folds. Each result is framed and converted to the model's input spec (28x28 gray for the
dataset's models) like the rest of the training part.
"""

from __future__ import annotations

import colorsys
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from facemask.data.folder import POSITIVE_CLASS
from facemask.data.occluders import OCCLUDERS, draw_occluder, lower_face
from facemask.vision.crops import FaceCropper
from facemask.vision.faces import Face
from facemask.vision.images import open_image
from facemask.vision.spec import DEFAULT_SPEC, InputSpec

log = logging.getLogger(__name__)

KINDS = ("surgical", "cloth", "n95")
SHADES = ("white", "light", "dark", "colour", "print")
#: Bumped whenever the drawing changes, so that cached images are redrawn.
VERSION = 3


def mask_polygon(landmarks: np.ndarray, box: Sequence[float], kind: str) -> list[tuple[float, float]]:
    """The mask's outline in photo pixels from (eyes, nose, mouth corners) and the face box."""
    left_eye, right_eye, nose, mouth_left, mouth_right = landmarks
    eyes = right_eye - left_eye
    angle, span = math.atan2(eyes[1], eyes[0]), float(np.hypot(*eyes))
    centre_x = (nose[0] + (mouth_left[0] + mouth_right[0]) / 2) / 2
    top = nose[1] - 0.35 * span  # the nose bridge, below the eyes
    bottom = lower_face(landmarks, box)["chin_y"]  # the chin
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
    if shade == "print":  # a second (and third) colour in stripes, checks, dots or irregular blobs
        fill[_print_pattern(size, rng, rng.integers(4))] = _random_colour(rng)
        if rng.random() < 0.5:
            fill[_print_pattern(size, rng, 3)] = _random_colour(rng)
    return Image.fromarray(fill.clip(0, 255).astype(np.uint8))


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0, 1))) * 255


def _print_pattern(size: tuple[int, int], rng: np.random.Generator, pattern: int) -> np.ndarray:
    """Where a print's second colour goes (bool H x W): diagonal stripes, checks, dots, or blobs (floral,
    camouflage: a coarse random field, smoothly enlarged, above a random level)."""
    ys, xs = np.mgrid[0 : size[1], 0 : size[0]]
    period = max(4, int(min(size) / rng.uniform(6, 14)))
    if pattern == 0:
        return ((xs + ys) // period) % 2 == 0
    if pattern == 1:
        return (xs // period + ys // period) % 2 == 0
    if pattern == 2:
        return (xs % period < period / 2.5) & (ys % period < period / 2.5)
    cells = (max(2, size[0] // period), max(2, size[1] // period))
    field = Image.fromarray((rng.random(cells[::-1]) * 255).astype(np.uint8)).resize(
        size, Image.Resampling.BICUBIC
    )
    return np.asarray(field) > rng.uniform(140, 200)


def draw_mask(
    photo: Image.Image,
    landmarks: np.ndarray,
    box: Sequence[float],
    kind: str,
    shade: str,
    rng: np.random.Generator,
) -> Image.Image:
    """``photo`` (RGB) with a mask: the textured shape in the photo's light, pleats or a seam, ear loops."""
    outline = mask_polygon(landmarks, box, kind)
    shape = Image.new("L", photo.size, 0)
    ImageDraw.Draw(shape).polygon(outline, fill=255)
    shape = shape.filter(ImageFilter.GaussianBlur(max(0.6, photo.size[0] / 600)))
    xs, ys = np.array([p[0] for p in outline]), np.array([p[1] for p in outline])
    fill = np.asarray(mask_texture(photo.size, shade, rng), np.float32)
    fill *= _lighting(photo, np.asarray(shape) > 128, xs, ys, rng)[:, :, None]
    layer = Image.fromarray(fill.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(layer)
    width = max(1, round((xs.max() - xs.min()) / 60))
    centre = (int(xs.mean()), int(ys.mean()))
    line_colour = tuple(int(v * 0.75) for v in layer.getpixel(centre))
    if kind == "surgical":  # three pleats
        for k in (0.35, 0.5, 0.65):
            y = ys.min() + k * (ys.max() - ys.min())
            draw.line([(xs.min(), y), (xs.max(), y)], fill=line_colour, width=width)
    else:  # a seam down the middle
        draw.line([(xs.mean(), ys.min()), (xs.mean(), ys.max())], fill=line_colour, width=width)
    out = Image.composite(layer, photo, shape)
    loop_colour = tuple(int(v * 0.9) for v in layer.getpixel(centre))
    left_eye, right_eye = landmarks[0], landmarks[1]
    for side, ear in ((xs.argmin(), (box[0], left_eye[1])), (xs.argmax(), (box[2], right_eye[1]))):
        ImageDraw.Draw(out).line([outline[side], ear], fill=loop_colour, width=width)
    return out


def _lighting(
    photo: Image.Image, inside: np.ndarray, xs: np.ndarray, ys: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Brightness factor (H, W): the photo's own light over the face (its blurred luminance, relative to
    the mean under the mask), darker towards the mask's sides where it curves away, a fold across."""
    radius = max(2.0, float(xs.max() - xs.min()) / 6)
    luma = np.asarray(photo.convert("L").filter(ImageFilter.GaussianBlur(radius)), np.float32)
    light = (luma / max(1.0, luma[inside].mean()) if inside.any() else np.ones_like(luma)) ** 0.6
    columns = np.arange(photo.size[0], dtype=np.float32)
    across = (columns - xs.mean()) / max(1.0, (xs.max() - xs.min()) / 2)
    rows = np.linspace(0, 1, photo.size[1], dtype=np.float32)[:, None]
    fold = 1.05 - 0.2 * np.abs(rows - rng.uniform(0.3, 0.7))
    return light.clip(0.45, 1.5) * (1 - 0.3 * np.clip(across, -1, 1) ** 2)[None, :] * fold


def pasted_mask(photo: Image.Image, face: Face) -> np.ndarray | None:
    """Where Train's pasted clip-art mask is in ``photo`` (bool H x W): the largest white-to-light-blue,
    unsaturated region over the lower face; None if there is no such region of a plausible size."""
    hsv = np.asarray(photo.convert("HSV"), np.int16)
    rgb = np.asarray(photo, np.int16)
    x1, y1, x2, y2 = face.box
    nose_y = face.landmarks[2][1]
    lower = np.zeros(hsv.shape[:2], bool)
    lower[
        max(0, int(nose_y - 0.25 * (y2 - y1))) : int(y2 + 0.2 * (y2 - y1)),
        max(0, int(x1 - 0.1 * (x2 - x1))) : int(x2 + 0.1 * (x2 - x1)),
    ] = True
    candidate = lower & (hsv[..., 1] < 90) & (hsv[..., 2] > 150) & (rgb[..., 2] >= rgb[..., 0])
    size = max(3, int((x2 - x1) / 25)) | 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    closed = cv2.morphologyEx(candidate.astype(np.uint8), cv2.MORPH_CLOSE, kernel)
    count, parts, stats, _ = cv2.connectedComponentsWithStats(
        cv2.morphologyEx(closed, cv2.MORPH_OPEN, kernel)
    )
    if count < 2:
        return None
    largest = 1 + int(stats[1:, cv2.CC_STAT_AREA].argmax())
    region = parts == largest
    share = region.sum() / max(1.0, (x2 - x1) * (y2 - y1))
    return region if 0.12 <= share <= 0.9 else None


def reshade(photo: Image.Image, region: np.ndarray, shade: str, rng: np.random.Generator) -> Image.Image:
    """``photo`` with the pasted mask in ``region`` filled with ``shade``, keeping the clip-art's folds
    and pleats (its brightness relative to its median)."""
    value = np.asarray(photo.convert("L"), np.float32)
    relief = (value / max(1.0, float(np.median(value[region])))).clip(0.5, 1.2)
    fill = np.asarray(mask_texture(photo.size, shade, rng), np.float32) * relief[:, :, None]
    alpha = Image.fromarray(region.astype(np.uint8) * 255).filter(
        ImageFilter.GaussianBlur(max(0.6, photo.size[0] / 600))
    )
    return Image.composite(Image.fromarray(fill.clip(0, 255).astype(np.uint8)), photo, alpha)


def synthesize(
    photos: Sequence[Path | None],
    faces: Sequence[Face | None],
    labels: Sequence[int],
    kinds: Sequence[str] = KINDS,
    shades: Sequence[str] = SHADES,
    per_face: int = 1,
    reshaded: int = 0,
    occluded: int = 0,
    seed: int = 0,
    margins: Sequence[float | None] = (None,),
    spec: InputSpec = DEFAULT_SPEC,
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 faces (N, *spec.face_shape) and their labels (N,): ``per_face`` new masks (WithMask) and
    ``occluded`` hands, beards or scarves (WithoutMask) on each unmasked photo (label 0), ``reshaded``
    re-shaded copies of each pasted-mask photo (label 1); kind and shade drawn per image, framed by each of
    ``margins`` around the face (None: the whole photo). Photos without a face are left out."""
    if unknown := (set(kinds) - set(KINDS)) | (set(shades) - set(SHADES)):
        raise ValueError(f"unknown mask kinds/shades {sorted(unknown)}; known: {KINDS} and {SHADES}")
    rng, images, new_labels = np.random.default_rng(seed), [], []
    for path, face, label in zip(photos, faces, labels, strict=True):
        if path is None or face is None or (per_face + occluded if label == 0 else reshaded) == 0:
            continue
        photo = open_image(path).convert("RGB")  # readable: a face was found in it
        landmarks = np.asarray(face.landmarks)
        drawn: list[tuple[Image.Image, int]] = []
        if label == 0:
            for _ in range(per_face):
                kind, shade = kinds[rng.integers(len(kinds))], shades[rng.integers(len(shades))]
                drawn.append((draw_mask(photo, landmarks, face.box, kind, shade, rng), POSITIVE_CLASS))
            for _ in range(occluded):
                occluder, shade = OCCLUDERS[rng.integers(len(OCCLUDERS))], shades[rng.integers(len(shades))]
                fabric = mask_texture(photo.size, shade, rng)
                drawn.append((draw_occluder(photo, landmarks, face.box, occluder, rng, fabric), 0))
        elif (region := pasted_mask(photo, face)) is not None:
            for _ in range(reshaded):
                rng.integers(len(kinds))  # a kind is drawn and unused: the random stream of version 3
                shade = shades[rng.integers(len(shades))]
                drawn.append((reshade(photo, region, shade, rng), POSITIVE_CLASS))
        for image, new_label in drawn:
            images += [FaceCropper(margin=margin, spec=spec).crop(image, face) for margin in margins]
            new_labels += [new_label] * len(margins)
    log.info("synthesised %d faces from %d photos", len(images), sum(p is not None for p in photos))
    if not images:
        return spec.empty(), np.zeros(0, np.int64)
    return np.stack(images), np.array(new_labels, np.int64)
