"""``facemask predict|detect|serve|export|bench``: using a trained model, with plain flags.

MODEL is a train.py checkpoint (``.ckpt``) or an exported ``.onnx`` file. Each command imports what it
needs when it runs: with an ONNX model, predict, detect and serve never import torch.
"""

from __future__ import annotations

import argparse
import errno
import socket
import sys
from pathlib import Path

from facemask.errors import FacemaskError

DETECTOR_WIDTH = 320  # CenterFace input width: ~20 px faces in 640x480, fast enough for 30 FPS (bench)


def add_detector_options(parser: argparse.ArgumentParser, threads: int = 1) -> None:
    """Detector and classifier flags. Classifier threads default to 1 where frames come one by one: a
    frame's few faces gain nothing from more, and the detector needs the other cores."""
    group = parser.add_argument_group("face detector")
    add_margin_option(group)
    group.add_argument(
        "--detector-width",
        type=int,
        default=DETECTOR_WIDTH,
        help="detector input width in pixels; larger finds smaller faces, slower (default %(default)s)",
    )
    group.add_argument(
        "--min-score", type=float, default=0.5, help="detector confidence threshold (default %(default)s)"
    )
    group.add_argument(
        "--threads",
        type=int,
        default=threads,
        help="classifier threads, 0 = all cores (default: %(default)s)",
    )


def add_margin_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--margin",
        type=float,
        default=None,
        help="context around each face box, fraction of its size (default: the margin the model was "
        "trained with, recorded in it; another value warns)",
    )


def make_cropper(args: argparse.Namespace, classifier):
    """The face detector, with the model's own crop margin (or the --margin override) and input spec."""
    from facemask.inference.classifier import model_cropper

    return model_cropper(classifier, args.model, args.detector_width, args.min_score, args.margin)


def cmd_predict(args: argparse.Namespace) -> int:
    from rich.console import Console

    from facemask.inference.classifier import load_classifier
    from facemask.inference.predict import image_files, predict_files, render

    classifier = load_classifier(args.model, args.threads)
    files = list(image_files(args.paths))
    if not files:
        raise FacemaskError(f"no image files in {' '.join(args.paths)}")
    cropper = make_cropper(args, classifier) if args.detect else None
    rows, errors = predict_files(classifier, files, cropper, progress=sys.stderr.isatty())
    if len(errors) == len(files):
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise FacemaskError(f"none of the {len(files)} files could be read: {errors[0]}{more}")
    render(rows, args.format, Console(width=None if sys.stdout.isatty() else 1000))  # pipes: whole paths
    if args.detect:
        found = len({row.file for row in rows if row.face is not None})
        print(f"faces found in {found} of {len(files) - len(errors)} images", file=sys.stderr)
    for message in errors:
        print(f"unreadable: {message}", file=sys.stderr)
    if errors:
        print(f"{len(errors)} of {len(files)} files could not be read", file=sys.stderr)
    return 1 if errors else 0


def cmd_detect(args: argparse.Namespace) -> int:
    import json

    from facemask.inference.classifier import load_classifier
    from facemask.inference.logfiles import JsonLines
    from facemask.inference.realtime import run_detection
    from facemask.inference.session import CameraSession
    from facemask.inference.sources import open_source
    from facemask.inference.streams import redact

    options = people_options(args)  # first: bad flags fail before anything opens
    classifier = load_classifier(args.model, args.threads)
    cropper = make_cropper(args, classifier)
    source = open_source(args.source)
    output = Path(args.output) if args.output else None
    log_path = Path(args.log) if args.log else beside_output(output, "jsonl", "detections.jsonl")
    events_path = Path(args.events) if args.events else beside_output(output, "events.jsonl", "events.jsonl")
    people = options if source.is_video else None  # images and folders: faces, no people
    session = CameraSession(
        args.camera or redact(args.source),
        cropper,
        classifier,
        people,
        make_event_sink(args, events_path) if people else None,
        source.fps or 30.0,
        args.blur,
    )
    log = JsonLines(log_path, args.rotate_mb) if log_path else None
    summary = run_detection(
        source, session, output, log, args.show, args.max_frames, progress=sys.stderr.isatty()
    )
    ending = "interrupted" if summary.interrupted else "done"
    report = {
        "status": ending,
        "frames": summary.frames,
        "faces": summary.faces,
        "fps": round(summary.fps, 2),
        "output": str(output) if output else None,
        "log": str(log_path) if log_path else None,
    }
    if summary.events is not None:
        report |= {"events": str(events_path) if events_path else None, **summary.events}
    print(json.dumps(report), file=sys.stderr)
    return 0


def check_port(host: str, port: int) -> None:
    """Fail in one line before anything starts: uvicorn reports a busy port only after its startup
    messages. The port is bound as uvicorn binds it (SO_REUSEADDR), then released."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise FacemaskError(f"port {port} on {host} is in use (pick another with --port)") from err
        raise FacemaskError(f"cannot listen on {host} port {port} ({err.strerror or err})") from err


def beside_output(output: Path | None, suffix: str, name: str) -> Path | None:
    """``out.SUFFIX`` beside a video output, ``out/NAME`` in a folder output, None without one."""
    from facemask.inference.sources import VIDEO_SUFFIXES

    if output is None:
        return None
    return output.with_suffix(f".{suffix}") if output.suffix.lower() in VIDEO_SUFFIXES else output / name


def people_options(args: argparse.Namespace):
    """The flags of ``add_people_options`` as the pipeline's options, checked (with the webhook's URL)."""
    from facemask.inference.events import check_url
    from facemask.inference.logfiles import check_rotate_mb
    from facemask.inference.tracking import PeopleOptions

    if args.webhook:  # before the log and events files are opened
        check_url(args.webhook)
    check_rotate_mb(args.rotate_mb)
    after = None if args.event_after == 0 else args.event_after
    return PeopleOptions(args.vote_frames, args.hysteresis, args.track_patience, after)


def make_event_sink(args: argparse.Namespace, events_path: Path | None):
    from facemask.inference.events import EventSink, Webhook
    from facemask.inference.logfiles import JsonLines

    log = JsonLines(events_path, args.rotate_mb) if events_path else None
    return EventSink(log, Webhook(args.webhook) if args.webhook else None)


def add_people_options(parser: argparse.ArgumentParser) -> None:
    """People at a camera (detect's videos and cameras, serve's cameras): tracks, the vote over their frames,
    their events. The defaults are ``PeopleOptions``'."""
    from dataclasses import fields

    from facemask.inference.tracking import PeopleOptions

    default = {f.name: f.default for f in fields(PeopleOptions)}
    group = parser.add_argument_group("people at a camera")
    group.add_argument(
        "--vote-frames",
        type=int,
        default=default["vote_frames"],
        help="a person's label: the mean P(mask) of its last N frames (default %(default)s)",
    )
    group.add_argument(
        "--hysteresis",
        type=float,
        default=default["hysteresis"],
        help="a person's label flips only when that mean is this far past the threshold (default %(default)s)",
    )
    group.add_argument(
        "--track-patience",
        type=float,
        default=default["patience"],
        metavar="SECONDS",
        help="how long a person may go unseen before the track ends (default %(default)s)",
    )
    group.add_argument(
        "--event-after",
        type=float,
        default=default["event_after"],
        metavar="SECONDS",
        help="a person's event when its track ends or after this long in view, whichever first; 0: at the "
        "track's end only (default %(default)s)",
    )
    group.add_argument(
        "--events", help="JSON-lines file of people's events (detect: default beside --output)"
    )
    group.add_argument("--webhook", help="also POST each event as JSON to this URL (in the background)")
    group.add_argument(
        "--rotate-mb",
        type=float,
        default=100.0,
        help="roll the log and events files over at this size, keeping 5 old ones (default %(default)s)",
    )


def parse_cameras(specs: list[str]) -> list[tuple[str, str]]:
    """``NAME=SOURCE`` pairs, each name once, checked before the model loads."""
    from facemask.web.entrance import check_camera_name

    cameras = []
    for spec in specs:
        name, equals, source = spec.partition("=")
        if not equals or not name or not source:
            raise FacemaskError(f"--camera {spec}: expected NAME=SOURCE, e.g. door-1=rtsp://10.0.0.5/stream1")
        if name in dict(cameras):
            raise FacemaskError(f"--camera {spec}: a second camera named {name}")
        check_camera_name(name)
        cameras.append((name, source))
    return cameras


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from facemask.inference.classifier import load_classifier
    from facemask.inference.sources import open_source
    from facemask.inference.streams import redact
    from facemask.web.entrance import Entrance
    from facemask.web.server import create_app

    if args.max_megapixels is not None and args.max_megapixels <= 0:
        raise FacemaskError(f"--max-megapixels {args.max_megapixels}: expected a number of megapixels > 0")
    options = people_options(args)
    cameras = parse_cameras(args.camera)
    check_port(args.host, args.port)  # before the model loads
    classifier = load_classifier(args.model, args.threads)
    cropper = make_cropper(args, classifier)
    entrance = Entrance(
        classifier,
        cropper,
        options,
        make_event_sink(args, Path(args.events) if args.events else None),
        args.blur,
    )
    for name, source in cameras:  # a wrong address fails here, in one line, not in a camera thread
        entrance.add_camera(name, open_source(source), redact(source))
    app = create_app(
        classifier,
        cropper,
        Path(args.model).name,
        int(args.max_upload_mb * 2**20),
        **({"max_pixels": int(args.max_megapixels * 1e6)} if args.max_megapixels is not None else {}),
        entrance=entrance,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning" if args.quiet else "info")
    return 0


def cmd_soak(args: argparse.Namespace) -> int:
    from rich.console import Console

    from facemask.soak import run_soak, show

    if args.frames < 1:
        raise FacemaskError(f"--frames {args.frames}: at least 1")
    args.progress = sys.stderr.isatty()
    result = run_soak(args)
    show(result, Console(stderr=True))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from facemask.data.folder import load_image_folder
    from facemask.data.root import find_root, find_split
    from facemask.errors import DatasetError
    from facemask.inference.classifier import load_classifier
    from facemask.inference.export import check_parity, export_onnx, stand_in_crops
    from facemask.progress import status

    try:  # first: no ONNX file written without its check
        test = find_split(find_root(args.data), "Test")
    except DatasetError:
        if args.data:
            raise
        test = None  # a machine without the dataset (the bank's PC): generated images stand in
    output = Path(args.output or Path(args.checkpoint).with_suffix(".onnx"))
    progress = sys.stderr.isatty()
    with status(f"exporting {args.checkpoint} to ONNX", progress):
        export_onnx(args.checkpoint, output)
    print(f"wrote {output}")
    spec = load_classifier(output).spec  # Test's faces at the size and channels the model reads
    crops = spec.faces(load_image_folder(test, spec=spec).images.numpy()) if test else stand_in_crops(spec)
    with status(f"checking the ONNX model against PyTorch on {test or 'generated images'}", progress):
        parity = check_parity(args.checkpoint, output, crops)
    where = test or "generated images: the dataset was not found; --data DATASET checks on its Test faces"
    print(f"{parity} ({where})")
    return 0 if parity.same_labels else 1


def cmd_calibrate(args: argparse.Namespace) -> int:
    from facemask.inference.calibrate import run_calibration

    result, written = run_calibration(
        args.model, args.folder, args.target, args.detect, args.boxes, args.output, args.margin
    )
    print("\n".join(result.lines()))
    print(f"wrote {written}")
    return 0


def cmd_mine(args: argparse.Namespace) -> int:
    from facemask.inference.classifier import load_classifier
    from facemask.inference.mine import mine, write_mined
    from facemask.inference.predict import image_files

    classifier = load_classifier(args.model, args.threads)
    files = list(image_files(args.folders))
    if not files:
        raise FacemaskError(f"no image files in {' '.join(args.folders)}")
    report = mine(classifier, make_cropper(args, classifier), files, args.top, args.near, sys.stderr.isatty())
    print("\n".join(report.lines()))
    if not report.scored:
        return 1
    output = write_mined(report, args.output)
    print(f"wrote {len(report.mined)} faces to {output / 'faces'}, mined.csv and contact_sheet.png")
    print(
        f"train on them: python train.py ... data/mined=faces data.sources.hard_negatives.crops={output / 'faces'}"
    )
    return 1 if report.errors else 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from facemask.data.prepare import prepare

    split = {} if args.test_fraction is None else {"test_fraction": args.test_fraction}
    from facemask.vision.spec import InputSpec

    spec = InputSpec(args.size, args.channels)
    report = prepare(args.src, args.dst, seed=args.seed, progress=sys.stderr.isatty(), spec=spec, **split)
    print(f"wrote {args.dst}")
    print("\n".join(report.lines()))
    return 1 if report.unreadable else 0


def cmd_download(args: argparse.Namespace) -> int:
    from facemask.data.download import download
    from facemask.data.root import find_data_root

    to = Path(args.to) if args.to else find_data_root()
    print("\n".join(download(args.sets, to, args.mirror, progress=sys.stderr.isatty())))
    if to.resolve() != find_data_root().resolve():
        print(f"point FACEMASK_DATA at {to} so that train.py finds it there")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from facemask.data import manifest
    from facemask.data.root import find_data_root
    from facemask.data.sets import SETS, manifest_path

    root, failed = find_data_root(args.root), 0
    for name in args.sets or list(SETS):
        if not (root / name).is_dir():
            print(f"{name}: not found at {root / name} (facemask data download {name})")
            failed += 1
            continue
        problems = manifest.differences(root / name, manifest.read(manifest_path(name)), sys.stderr.isatty())
        print(f"{name}: " + ("matches its manifest" if not problems else f"{len(problems)} problem(s)"))
        print("".join(f"  {problem}\n" for problem in problems[:20]), end="")
        failed += bool(problems)
    return 1 if failed else 0


def cmd_pack(args: argparse.Namespace) -> int:
    from facemask.data.pack import pack
    from facemask.data.root import find_data_root

    for archive in pack(args.sets, find_data_root(args.root), args.to):
        print(f"wrote {archive}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from facemask.bench import run_bench

    run_bench(args, progress=sys.stderr.isatty())
    return 0


def parser() -> argparse.ArgumentParser:
    from facemask.data.sets import SETS

    root = argparse.ArgumentParser(prog="facemask", description="Put a trained face-mask classifier to work.")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser(
        "predict", help="label image files (whole face crops, or every face with --detect)"
    )
    p.add_argument("model", help="checkpoint (.ckpt) or exported model (.onnx)")
    p.add_argument("paths", nargs="+", help="image files or folders (searched recursively)")
    p.add_argument(
        "--detect",
        action="store_true",
        help="find the faces first and label each one (without it, most images over 1000 px on a side, "
        "full photos rather than face crops, get a warning)",
    )
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    add_detector_options(p, threads=0)  # whole folders: large batches use every core
    p.set_defaults(run=cmd_predict)

    p = commands.add_parser("detect", help="real-time detection on a camera, a video, an image or a folder")
    p.add_argument("model", help="checkpoint (.ckpt) or exported model (.onnx)")
    p.add_argument(
        "--source",
        required=True,
        help="camera index (0), stream URL (rtsp://, http://...: reopened when it drops), video, image or folder",
    )
    p.add_argument("--output", help="annotated video (.mp4, .avi...) or a folder for annotated images")
    p.add_argument("--log", help="JSON-lines log of every frame (default: beside --output)")
    p.add_argument("--show", action="store_true", help="show the annotated frames live (q or Esc quits)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    p.add_argument(
        "--blur",
        action="store_true",
        help="blur the faces in the saved video/images and thumbnails (default off)",
    )
    p.add_argument("--camera", help="the camera's name in the log and events (default: the source)")
    add_people_options(p)
    add_detector_options(p)
    p.set_defaults(run=cmd_detect)

    p = commands.add_parser("serve", help="web page (upload or webcam) and JSON API")
    p.add_argument("model", help="checkpoint (.ckpt) or exported model (.onnx)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--max-upload-mb", type=float, default=10.0, help="larger uploads get 413 (default %(default)s)"
    )
    p.add_argument(
        "--max-megapixels",
        type=float,
        default=None,
        help="photos with more pixels get 413 before they are decoded (default: 16: a phone's photo or a 4K frame fits)",
    )
    p.add_argument(
        "--camera",
        action="append",
        default=[],
        metavar="NAME=SOURCE",
        help="a door the server watches itself: camera index, stream URL (rtsp://...), or video; repeatable. "
        "Browsers post theirs to /api/live?camera=NAME",
    )
    p.add_argument("--blur", action="store_true", help="blur the faces of the events' thumbnails")
    p.add_argument("--quiet", action="store_true", help="log warnings only, not every request")
    add_people_options(p)
    add_detector_options(p)
    p.set_defaults(run=cmd_serve)

    p = commands.add_parser("export", help="export a checkpoint to ONNX and check it against PyTorch on Test")
    p.add_argument("checkpoint")
    p.add_argument("--format", choices=["onnx"], default="onnx")
    p.add_argument("--output", help="default: the checkpoint's path with .onnx")
    p.add_argument(
        "--data", default=None, help="dataset root for the parity check (default: as train.py finds it)"
    )
    p.set_defaults(run=cmd_export)

    p = commands.add_parser("calibrate", help="refit the operating threshold on a site's own labelled faces")
    p.add_argument("model", help="checkpoint (.ckpt) or exported model (.onnx)")
    p.add_argument("folder", help="WithMask/ and WithoutMask/ folders of faces (of photos with --detect)")
    p.add_argument(
        "--detect", action="store_true", help="the folder holds photos: cut their faces as detect does"
    )
    p.add_argument("--boxes", help="a CSV of annotated faces in the folder's photos (file,x0,y0,x1,y1,class)")
    p.add_argument(
        "--target",
        default="precision=0.98",
        help="METRIC=VALUE, or balanced: precision and recall alike (default %(default)s)",
    )
    p.add_argument("--output", help="the calibrated copy (default: MODEL-calibrated with its suffix)")
    add_margin_option(p)
    p.set_defaults(run=cmd_calibrate)

    p = commands.add_parser(
        "mine", help="bare faces the model calls masks (or nearly): hard negatives for the next training"
    )
    p.add_argument("model", help="checkpoint (.ckpt) or exported model (.onnx)")
    p.add_argument("folders", nargs="+", help="folders (or files) of faces known to be bare: face crops")
    p.add_argument(
        "--output",
        default="mined",
        help="where faces/, mined.csv and contact_sheet.png go (default %(default)s)",
    )
    p.add_argument(
        "--top", type=int, default=None, help="keep at most N faces, highest scores first (default: all)"
    )
    p.add_argument(
        "--near",
        type=float,
        default=0.1,
        help="also the faces scored this close below the threshold (default %(default)s)",
    )
    add_detector_options(p, threads=0)
    p.set_defaults(run=cmd_mine)

    data = commands.add_parser(
        "data", help="get the data: download, verify or pack the sets, or prepare photos"
    )
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    p = data_commands.add_parser(
        "prepare", help="face photos with mask / no-mask class folders -> 28x28 Train/Test"
    )
    p.add_argument(
        "src",
        help="folder with with_mask/without_mask (or WithMask/WithoutMask) folders, or train/ and test/ holding them",
    )
    p.add_argument("dst", help="new dataset folder (must not exist or be empty)")
    p.add_argument(
        "--test-fraction",
        type=float,
        default=None,
        help="Test share where SRC has no splits (default: 0.13, the case study's 194 of 1509)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of that split (default %(default)s)")
    p.add_argument("--size", type=int, default=28, help="pixels a side (default %(default)s: the dataset's)")
    p.add_argument(
        "--channels", type=int, default=1, choices=(1, 3), help="1 gray (default, the dataset's) or 3 RGB"
    )
    p.set_defaults(run=cmd_prepare)
    sets = ", ".join(SETS)
    p = data_commands.add_parser("download", help="fetch data sets, each checked file for file")
    p.add_argument("sets", nargs="*", metavar="SET", help=f"{sets} (default: what experiment=best needs)")
    p.add_argument("--to", help="data root to put them in (default: as train.py finds it, else data/)")
    p.add_argument(
        "--from",
        dest="mirror",
        help="a URL or folder holding NAME.zip per set (facemask data pack); default: each set's public source",
    )
    p.set_defaults(run=cmd_download)
    p = data_commands.add_parser(
        "verify", help="check data sets against the manifests shipped in the package"
    )
    p.add_argument("sets", nargs="*", metavar="SET", help=f"{sets} (default: all)")
    p.add_argument("--root", help="data root (default: as train.py finds it)")
    p.set_defaults(run=cmd_verify)
    p = data_commands.add_parser("pack", help="a mirror of a data root for download --from: NAME.zip per set")
    p.add_argument("sets", nargs="*", metavar="SET", help=f"{sets} (default: all)")
    p.add_argument("--root", help="data root (default: as train.py finds it)")
    p.add_argument("--to", required=True, help="folder to write the archives in")
    p.set_defaults(run=cmd_pack)

    p = commands.add_parser(
        "soak", help="run the frame pipeline over a looped video for hours: memory and open files on the way"
    )
    p.add_argument("model", help="checkpoint (.ckpt) or exported model (.onnx)")
    p.add_argument("--source", required=True, help="a video, played again and again")
    p.add_argument("--frames", type=int, default=50_000, help="frames in all (default %(default)s)")
    p.add_argument(
        "--output", default="soak", help="folder for the log, events and soak.json (default %(default)s)"
    )
    p.add_argument(
        "--rotate-mb",
        type=float,
        default=100.0,
        help="log files roll over at this size (default %(default)s)",
    )
    add_detector_options(p)
    p.set_defaults(run=cmd_soak)

    p = commands.add_parser("bench", help="latency, throughput, FPS and memory figures to size a PC")
    p.add_argument(
        "model",
        nargs="?",
        help="checkpoint, or .onnx for the ONNX figures only (default: a freshly initialised default model)",
    )
    p.add_argument(
        "--photos",
        help="face photos to build the 640x480 test video from (default: photos/ beside the dataset, "
        "e.g. ../shared/data/photos)",
    )
    p.add_argument("--output", default="bench.json", help="where to save the figures (default %(default)s)")
    p.add_argument("--quick", action="store_true", help="fewer repetitions (for tests)")
    add_detector_options(p)
    p.set_defaults(run=cmd_bench)
    return root


#: What ``pip install .`` leaves out (the ``train`` extra): a command that needs it says so in one line.
TRAINING_PACKAGES = {
    "torch",
    "torchvision",
    "lightning",
    "torchmetrics",
    "hydra",
    "omegaconf",
    "onnx",
    "optuna",
}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except FacemaskError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] not in TRAINING_PACKAGES:
            raise
        command = " ".join(filter(None, (args.command, getattr(args, "data_command", None))))
        print(
            f"error: facemask {command} needs the training packages ({err.name} is not installed; this install runs "
            "ONNX models only): pip install 'facemask[train]'",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
