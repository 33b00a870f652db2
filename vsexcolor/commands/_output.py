"""What the commands that write a video file share: their output options, the checks made
before any work, and the run itself (here or on a Ray cluster), with its summary."""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..render.cluster import Access
from ..render.environment import code_version, environment
from ..render.pipeline import (DEFAULT_CHUNK, Render, RenderError, build, fingerprint_dicts, finish, frames_in, gaps,
                        render_here)
from ..render.encode import CODECS, check_output
from ..render.video import VideoError
from ..render.workfolder import WorkError, WorkFolder
from ._errors import CommandError


def add_output_options(parser: argparse.ArgumentParser, default_output: str, chunk: bool = False) -> None:
    out = parser.add_argument_group("output")
    out.add_argument("-o", "--output", type=Path, metavar="FILE",
                     help=f"output file; its extension picks the container (default: {default_output})")
    out.add_argument("--start", type=int, default=0, metavar="N", help="first frame to write (default 0)")
    out.add_argument("--end", type=int, metavar="M",
                     help="last frame to write, inclusive like vspipe's (default: the last); frames of a "
                          "range come out exactly as in a run over the whole file, so those from the scene "
                          "start up to N are computed too")
    out.add_argument("--codec", choices=tuple(CODECS), default="h264",
                     help="h264 (default), h265, or ffv1 (lossless, for archiving; in .mkv)")
    out.add_argument("--crf", type=int, metavar="N",
                     help="quality of h264/h265, 0 (best)..51 (defaults: 18 / 20)")
    if chunk:
        out.add_argument("--chunk", type=int, default=DEFAULT_CHUNK, metavar="N",
                         help=f"frames per part where the script's output does not come from vsexcolor.colorize "
                              f"(default {DEFAULT_CHUNK}); colorized output is cut into its scenes")
    out.add_argument("--overwrite", action="store_true",
                     help="replace an existing output (once the new one is complete) or work folder")
    out.add_argument("--resume", action="store_true",
                     help="continue an interrupted run of the same command (here or on a cluster) from its "
                          "finished parts")
    farm = parser.add_argument_group("render farm (needs the cluster extra: pip install 'vsexcolor[cluster]')")
    farm.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                      help="render the scenes as Ray tasks: on the cluster at ADDRESS (HOST:PORT of `ray start "
                           "--head`, or auto for the one started on this machine), else at $RAY_ADDRESS, else on a Ray started here with --workers workers; "
                           "the result is the same file, byte for byte")
    farm.add_argument("--workers", type=int, metavar="N",
                      help="workers of the Ray started here (default: one per CPU core, or per GPU where the "
                           "render runs on CUDA; fewer where the free memory would not hold them), sharing the cores")
    farm.add_argument("--insecure-cluster", action="store_true",
                      help="use a cluster at ADDRESS that requires no token (refused otherwise, unless ADDRESS is "
                           "loopback): anyone who reaches its ports can run any code on its machines")


def crf(codec: str, value: int | None) -> int | None:
    default = CODECS[codec].crf
    if value is None:
        return default
    if default is None:
        raise CommandError(f"--crf does not apply to {codec}, which is lossless")
    if not 0 <= value <= 51:
        raise CommandError(f"--crf must be in 0..51, got {value}")
    return value


def check_output_path(output: Path, overwrite: bool, *inputs: Path, codec: str) -> None:
    """An error unless ``output`` can be written with ``codec``: into a folder that takes
    files, not over one of ``inputs``, over an existing file only with ``overwrite``."""
    check_output_folder(output.parent)
    if codec == "ffv1" and output.suffix.lower() != ".mkv":
        # FFmpeg also writes FFV1 into MP4, which hardly any player but FFmpeg's reads;
        # archives keep FFV1 in Matroska.
        raise CommandError(f"--codec ffv1 is written in Matroska, not {output.suffix or 'a file without extension'}: "
                           "name the output .mkv")
    if output.exists() and any(output.resolve() == p.resolve() for p in inputs):
        raise CommandError("the output would replace the input; choose another -o")
    if output.is_dir():
        raise CommandError(f"the output {str(output)!r} is a folder")
    if output.exists() and not overwrite:
        raise CommandError(f"{str(output)!r} exists; add --overwrite to replace it")


def check_output_folder(folder: Path, option: str = "-o") -> None:
    """An error unless files can be made in ``folder``, which ``option`` names (or names a
    file in): it exists, is a folder, and takes a file (a read-only mount does not)."""
    if folder.exists() and not folder.is_dir():
        raise CommandError(f"the output folder {str(folder)!r} is a file, not a folder")
    if not folder.is_dir():
        raise CommandError(f"the output folder {str(folder)!r} does not exist")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".vsexcolor-check-"):
            pass
    except OSError as e:
        raise CommandError(f"cannot write into {str(folder)!r} ({e.strerror}): choose another {option}") from None


def check_range(start: int, end: int | None, num_frames: int) -> int:
    """The last frame to write."""
    last = num_frames - 1 if end is None else end
    if not 0 <= start <= last < num_frames:
        raise CommandError(f"--start and --end must satisfy 0 <= start <= end <= {num_frames - 1} "
                           f"(it has {num_frames} frames), got {start} and {last}")
    return last


@dataclass(frozen=True)
class Summary:
    """What a finished run wrote; ``rendered`` frames were made by this run."""

    output: Path
    render: Render
    rendered: int
    seconds: float
    backend: str
    parts: int
    pix_fmt: str
    by_scene: bool
    nodes: dict[str, int]
    restarts: int = 0  # parts that restart a shot at a keyframe inside it
    lost: int = 0  # farm tasks lost (machine, worker process or objects), whose other parts went out again

    def line(self) -> str:
        r, info = self.render, self.render.info
        rate = f"{self.rendered / self.seconds:.2f}" if self.seconds > 0 else "-"
        audio = f", {len(info.audio)} audio stream(s) copied" if info.audio else ""
        crf = "" if r.crf is None else f" crf {r.crf}"
        farm = "" if not self.nodes else " on " + ", ".join(f"{node}: {n} frames" for node, n in self.nodes.items())
        if self.lost:
            farm += (f"; {self.lost} task{' was' if self.lost == 1 else 's were'} lost midway and the parts "
                     "not received handed out again")
        if not self.by_scene:
            pieces = f"{self.parts} part(s)"
        else:
            shots = self.parts - self.restarts
            inside = (f", with {self.restarts} restart{'' if self.restarts == 1 else 's'} at keyframes inside "
                      f"{'it' if shots == 1 else 'them'}" if self.restarts else "")
            pieces = f"{shots} shot{'' if shots == 1 else 's'}{inside}"
        return (f"wrote {self.output} ({r.frames} frames, {info.width}x{info.height} {self.pix_fmt}, "
                f"{r.codec}{crf}{audio}) with backend {self.backend} in {pieces}; "
                f"{'colorized' if self.by_scene else 'rendered'} "
                f"{self.rendered} frames in {_clock(self.seconds)} ({rate} frames/s){farm}")


def check_cluster(name: str, ray: str | None, insecure_cluster: bool) -> Access | None:
    """The cluster of ``--ray`` (an address, or "" for $RAY_ADDRESS or a Ray started here)
    checked (:func:`~vsexcolor.render.cluster.check`), before the input is read: a refusal
    costs a line, not the film's indexing; None without ``--ray``. ``insecure_cluster``: use
    a cluster that requires no token on an address that is not loopback (refused
    otherwise), with a warning."""
    if ray is None:
        if insecure_cluster:
            raise CommandError("--insecure-cluster goes with --ray ADDRESS")
        return None
    from ..render.cluster import check

    try:
        return check(ray, insecure=insecure_cluster, warn=lambda text: print(f"vsexcolor {name}: {text}",
                                                                             file=sys.stderr))
    except RenderError as e:
        raise CommandError(str(e)) from None


def run(name: str, render: Render, output: Path, settings: dict, *, resume: bool = False, overwrite: bool = False,
        cluster: Access | None = None, workers: int | None = None, progress: bool = True) -> Summary:
    """Check, render what is missing (here, or on Ray with ``cluster``, from
    :func:`check_cluster`: a Ray started here has ``workers``), join, summarise. A run that
    fails before it has rendered anything leaves no work folder behind (unless it resumed
    one).

    ``settings``: what shapes the output besides ``render``'s encoder and range (recorded in
    the manifest; a ``--resume`` with any of them changed is refused).
    """
    def note(text: str) -> None:
        print(f"vsexcolor {name}: note: {text}", file=sys.stderr)

    farm = cluster is not None
    try:
        built = build(render, planning=farm)
        check_output(output, CODECS[render.codec], render.crf, built.clip, built.pix_fmt, render.info)
    except (VideoError, RenderError) as e:
        raise CommandError(str(e)) from None
    settings = {**settings, "vsexcolor": code_version(), "codec": render.codec, "crf": render.crf,
                "start": render.first, "end": render.last, "chunk": render.chunk if not built.by_scene else None}
    work = WorkFolder(output)
    began = time.monotonic()
    made = False  # this run made the work folder (it resumes none)
    try:
        resumed = resume and work.folder.exists()
        work.open(settings, resume=resume, overwrite=overwrite, note=note)
        made = not resumed
        # What this machine renders with (every farm node must agree), recorded: a resume checks it.
        work.settle("environment", environment(render.codec, render.recipe.paths()))
        todo = gaps(render.first, render.last, work.parts())
        nodes: dict[str, int] = {}
        lost = 0
        if todo and farm:
            from ..render.farm import render_on_ray

            report = render_on_ray(render, work, todo, address=cluster, workers=workers, progress=progress,
                                   name=name)
            nodes, lost = report.nodes, len(report.retried())
        elif todo:
            work.settle("colorize", fingerprint_dicts(built))
            render_here(render, built, work, todo, progress, name)
        restarts = len(work.restarts & set(work.parts()))
        parts = finish(render, work, output)
    except BaseException as e:
        if made and not work.parts() and work.folder.exists():
            work.remove()  # nothing to resume: a later run starts as if this one had not been
        if isinstance(e, (WorkError, RenderError)):
            raise CommandError(str(e)) from None
        raise
    backend = ", ".join(sorted({f["backend"] for f in work.settled.get("colorize") or []})) or "none"
    return Summary(output=output, render=render, rendered=frames_in(todo),
                   seconds=time.monotonic() - began, backend=backend, parts=parts, pix_fmt=built.pix_fmt,
                   by_scene=built.by_scene, nodes=nodes, restarts=restarts, lost=lost)


def _clock(seconds: float) -> str:
    minutes, s = divmod(round(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{s:02d}"

