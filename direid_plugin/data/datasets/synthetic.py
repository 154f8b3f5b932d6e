"""``synthetic_mlr``: an embedded, procedurally drawn cross-resolution Re-ID dataset.

It needs no download, so the CLI, the engines and the tests can run anywhere. Identity is a
consistent appearance (clothing colours from a small shared palette, a torso pattern, hair,
build, height, bag, shoes); cameras differ in background, pose and placement jitter, walking
direction, illumination and resolution. Camera 0 is high resolution; camera 1 is low resolution:
each of its images is ``downsample``-d by a factor from {2, 3, 4} drawn per image and recorded
in the cache manifest, as in the MLR protocols (README.md, "Degraded datasets").

All identities are drawn once from ``seed`` into a verified cache folder; ``split_id`` only
chooses which identities train and which test, so every split reuses the same files.
Query = the LR camera images of the test identities, gallery = their HR camera images plus
optional HR-only distractor identities.
"""
import os

import numpy as np
from PIL import Image, ImageDraw

from torchreid.reid.data.datasets.dataset import ImageDataset

from direid_plugin.data.degradations import MLR_FACTORS, downsample
from direid_plugin.data.manifest import build_once, cache_root, params_key

HR_CAMID, LR_CAMID = 0, 1
# Rendered at this multiple of the output size, then reduced: antialiased, photo-like edges.
SUPERSAMPLE = 2
# Few, partly similar colours, so that clothing colours alone rarely identify a person.
PALETTE = np.array([
    (200, 40, 40), (150, 30, 60), (40, 70, 160), (30, 40, 90), (40, 130, 60), (90, 110, 50),
    (220, 200, 60), (230, 130, 40), (235, 235, 230), (130, 130, 130), (35, 35, 35), (120, 80, 50),
    (190, 160, 120), (110, 60, 140), (70, 160, 170), (220, 150, 170),
], dtype=np.float64)
HAIR = np.array([(20, 15, 10), (70, 45, 25), (150, 110, 60), (200, 180, 140), (120, 120, 120)], dtype=np.float64)
SKIN = np.array([(240, 200, 170), (210, 160, 120), (160, 110, 80), (100, 70, 50)], dtype=np.float64)
PATTERNS = ("plain", "h_stripes", "v_stripes", "logo_circle", "logo_square", "two_tone")
# Per camera: base wall and floor colours and the wall texture; these differ between cameras.
CAMERA_SCENES = {
    HR_CAMID: {"wall": (150, 160, 170), "floor": (110, 105, 95), "texture": "windows", "light": (0.9, 1.15)},
    LR_CAMID: {"wall": (120, 110, 90), "floor": (80, 90, 80), "texture": "bricks", "light": (0.65, 1.0)},
}


def _jitter(rng, colour, amount):
    return tuple(int(c) for c in np.clip(np.asarray(colour) + rng.normal(0.0, amount, 3), 0, 255))


def sample_identity(rng):
    """The appearance attributes that stay fixed for one person across images and cameras."""
    return {
        "upper": PALETTE[rng.integers(len(PALETTE))],
        "lower": PALETTE[rng.integers(len(PALETTE))],
        "accent": PALETTE[rng.integers(len(PALETTE))],
        "pattern": PATTERNS[rng.integers(len(PATTERNS))],
        "hair": HAIR[rng.integers(len(HAIR))],
        "long_hair": bool(rng.random() < 0.35),
        "skin": SKIN[rng.integers(len(SKIN))],
        "shoes": PALETTE[rng.integers(len(PALETTE))],
        "long_sleeves": bool(rng.random() < 0.5),
        "shorts": bool(rng.random() < 0.25),
        "bag": rng.choice(["none", "backpack", "shoulder"], p=[0.5, 0.25, 0.25]),
        "bag_colour": PALETTE[rng.integers(len(PALETTE))],
        "height": float(rng.uniform(0.80, 0.95)),  # fraction of the image height
        "build": float(rng.uniform(0.8, 1.25)),  # width multiplier
    }


def _draw_background(draw, rng, camid, w, h):
    scene = CAMERA_SCENES[camid]
    horizon = int(h * rng.uniform(0.55, 0.7))
    draw.rectangle([0, 0, w, horizon], fill=_jitter(rng, scene["wall"], 12))
    draw.rectangle([0, horizon, w, h], fill=_jitter(rng, scene["floor"], 10))
    if scene["texture"] == "windows":
        size = w // 4
        for x in range(int(rng.integers(-size, 0)), w, size + w // 10):
            draw.rectangle([x, h // 10, x + size, h // 10 + int(size * 1.4)], fill=_jitter(rng, (90, 120, 150), 15))
    else:
        row_h = max(2, h // 20)
        shade = _jitter(rng, (140, 90, 70), 15)
        for y in range(0, horizon, row_h):
            offset = (y // row_h) % 2 * (w // 8)
            for x in range(-offset, w, w // 4):
                draw.rectangle([x + 1, y + 1, x + w // 4 - 1, y + row_h - 1], outline=shade)


def _draw_pattern(draw, ident, box, scale):
    x0, y0, x1, y1 = box
    accent = tuple(int(c) for c in ident["accent"])
    pattern = ident["pattern"]
    if pattern == "h_stripes":
        step = max(2, int(6 * scale))
        for y in range(int(y0), int(y1), 2 * step):
            draw.rectangle([x0, y, x1, min(y + step - 1, y1)], fill=accent)
    elif pattern == "v_stripes":
        step = max(2, int(5 * scale))
        for x in range(int(x0), int(x1), 2 * step):
            draw.rectangle([x, y0, min(x + step - 1, x1), y1], fill=accent)
    elif pattern in ("logo_circle", "logo_square"):
        cx, cy, r = (x0 + x1) / 2, y0 + (y1 - y0) * 0.4, (x1 - x0) * 0.22
        shape = draw.ellipse if pattern == "logo_circle" else draw.rectangle
        shape([cx - r, cy - r, cx + r, cy + r], fill=accent)
    elif pattern == "two_tone":
        draw.rectangle([x0, y0, (x0 + x1) / 2, y1], fill=accent)


def render_person(ident, rng, camid, height, width):
    """Draw one image of ``ident`` seen by camera ``camid`` (HR; the LR camera degrades it later)."""
    w, h = width * SUPERSAMPLE, height * SUPERSAMPLE
    canvas = Image.new("RGB", (w, h))
    draw = ImageDraw.Draw(canvas)
    _draw_background(draw, rng, camid, w, h)

    s = h / 128.0  # drawing unit: one pixel of a 128-pixel-high image
    ph = h * ident["height"] * rng.uniform(0.96, 1.04)  # person height, with distance jitter
    cx = w / 2 + rng.normal(0, 3 * s)
    foot = h - rng.uniform(2, 8) * s
    top = foot - ph
    body_w = w * 0.34 * ident["build"]

    def colour(key):  # the same fabric, shaded a little differently in each image
        return _jitter(rng, ident[key], 6)

    stride = rng.uniform(0.0, 0.25) * body_w  # legs apart while walking

    head_r = ph * 0.07
    head_cy = top + head_r
    neck = head_cy + head_r
    waist = top + ph * 0.52
    hem = waist + ph * (0.2 if ident["shorts"] else 0.44)
    half = body_w / 2

    if ident["bag"] == "backpack":  # seen behind the torso, sticking out on one side
        draw.rectangle([cx - half * 1.15, neck + ph * 0.05, cx + half * 0.2, waist - ph * 0.04], fill=colour("bag_colour"))
    for side in (-1, 1):  # legs
        leg_x = cx + side * (half * 0.45 + stride * 0.5)
        leg = [leg_x - half * 0.32, waist, leg_x + half * 0.32, foot - ph * 0.03]
        draw.rectangle(leg, fill=tuple(int(c) for c in ident["skin"]))
        draw.rectangle([leg[0], waist, leg[2], min(hem, leg[3])], fill=colour("lower"))
        draw.rectangle([leg[0] - 2 * s, foot - ph * 0.04, leg[2] + 2 * s, foot], fill=colour("shoes"))
    torso = [cx - half, neck + ph * 0.02, cx + half, waist + ph * 0.03]
    draw.rounded_rectangle(torso, radius=6 * s, fill=colour("upper"))
    _draw_pattern(draw, ident, torso, s)
    swing = rng.uniform(-0.15, 0.15) * ph
    for side in (-1, 1):  # arms: sleeve, then bare forearm when sleeves are short
        ax = cx + side * (half + body_w * 0.09)
        hand_y = waist + ph * 0.02 + side * swing * 0.5
        arm = [ax - body_w * 0.09, torso[1] + 2 * s, ax + body_w * 0.09, hand_y]
        draw.rectangle(arm, fill=tuple(int(c) for c in ident["skin"]))
        sleeve_end = hand_y if ident["long_sleeves"] else arm[1] + (hand_y - arm[1]) * 0.4
        draw.rectangle([arm[0], arm[1], arm[2], sleeve_end], fill=colour("upper"))
    if ident["bag"] == "shoulder":  # strap across the chest and a bag at the hip
        bag_colour = colour("bag_colour")
        draw.line([cx - half, torso[1], cx + half, waist - ph * 0.05], fill=bag_colour, width=max(1, int(3 * s)))
        draw.rectangle([cx + half * 0.7, waist - ph * 0.08, cx + half * 1.4, waist + ph * 0.06], fill=bag_colour)
    hair = tuple(int(c) for c in ident["hair"])
    if ident["long_hair"]:
        draw.rectangle([cx - head_r * 1.05, head_cy, cx + head_r * 1.05, neck + ph * 0.08], fill=hair)
    draw.ellipse([cx - head_r, top, cx + head_r, top + 2 * head_r], fill=tuple(int(c) for c in ident["skin"]))
    draw.chord([cx - head_r * 1.05, top - 1 * s, cx + head_r * 1.05, top + 2 * head_r], 180, 360, fill=hair)

    if rng.random() < 0.5:  # walking direction
        canvas = canvas.transpose(Image.FLIP_LEFT_RIGHT)
    img = canvas.resize((width, height), Image.LANCZOS)
    # Camera exposure and white balance, then sensor noise.
    lo, hi = CAMERA_SCENES[camid]["light"]
    gain = rng.uniform(lo, hi) * rng.uniform(0.93, 1.07, 3)
    arr = np.asarray(img, dtype=np.float64) * gain + rng.normal(0.0, 3.0, (height, width, 3))
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="RGB")


def _build(folder, params):
    """Draw every identity into ``folder``; returns the manifest payload (one record per image)."""
    seed, height, width, per_cam = params["seed"], params["height"], params["width"], params["images_per_camera"]
    records = []
    total = params["num_ids"] + params["num_distractors"]
    for pid in range(total):
        ident = sample_identity(np.random.default_rng([seed, 0, pid]))
        cameras = (HR_CAMID,) if pid >= params["num_ids"] else (HR_CAMID, LR_CAMID)
        for camid in cameras:
            for k in range(per_cam):
                rng = np.random.default_rng([seed, 1, pid, camid, k])
                img = render_person(ident, rng, camid, height, width)
                factor = None
                if camid == LR_CAMID and params["lr_factors"]:
                    factor = float(rng.choice(params["lr_factors"]))
                    img = downsample(img, factor)
                name = f"{pid:05d}_c{camid}_{k:03d}.png"
                img.save(os.path.join(folder, name), format="PNG", compress_level=1)  # fast; still lossless
                records.append({"file": name, "pid": pid, "camid": camid, "factor": factor})
    return {"images": records}


class SyntheticMLR(ImageDataset):
    """Procedurally drawn persons; camera 0 HR, camera 1 LR (factor {2, 3, 4} per image).

    ``root`` is unused (the images live in the plugin cache, ``manifest.cache_root()``);
    ``split_id`` picks the train/test identity partition. Train pids are relabelled 0..N-1;
    query and gallery keep raw pids. ``lr_factors=()`` keeps camera 1 at full resolution: the
    same persons and scenes, a control for measuring what the resolution gap costs.
    """

    dataset_dir = "synthetic_mlr"

    def __init__(self, root="", split_id=0, num_train_ids=60, num_test_ids=40, images_per_camera=4,
                 num_distractors=0, height=128, width=64, lr_factors=MLR_FACTORS, seed=0, **kwargs):
        for key, value, least in (("num_train_ids", num_train_ids, 1), ("num_test_ids", num_test_ids, 1),
                                  ("images_per_camera", images_per_camera, 1), ("num_distractors", num_distractors, 0),
                                  ("height", height, 16), ("width", width, 8)):
            if int(value) != value or value < least:
                raise ValueError(f"synthetic_mlr: {key} must be an integer >= {least}, got {value!r}")
        params = {
            "version": 1, "seed": int(seed), "num_ids": int(num_train_ids + num_test_ids),
            "num_distractors": int(num_distractors), "images_per_camera": int(images_per_camera),
            "height": int(height), "width": int(width), "lr_factors": [float(f) for f in lr_factors],
        }
        if any(f < 1 for f in params["lr_factors"]):
            raise ValueError(f"synthetic_mlr: lr_factors must be down-sampling factors >= 1, got {lr_factors!r}")
        self.lr_camids = (LR_CAMID,) if lr_factors else ()
        self.dataset_dir = os.path.join(cache_root(), f"synthetic_mlr-{params_key(params)}")
        manifest = build_once(self.dataset_dir, params, lambda folder: _build(folder, params))

        order = np.random.default_rng([int(seed), 2, int(split_id)]).permutation(params["num_ids"])
        train_pids = set(order[:num_train_ids].tolist())
        pid2label = {pid: label for label, pid in enumerate(sorted(train_pids))}
        train, query, gallery = [], [], []
        for rec in manifest["images"]:
            path, pid, camid = os.path.join(self.dataset_dir, rec["file"]), rec["pid"], rec["camid"]
            if pid in train_pids:
                train.append((path, pid2label[pid], camid))
            elif camid == LR_CAMID:
                query.append((path, pid, camid))
            else:
                gallery.append((path, pid, camid))
        self.image_factors = {os.path.join(self.dataset_dir, r["file"]): r["factor"] for r in manifest["images"] if r["factor"]}
        super().__init__(train, query, gallery, **kwargs)
