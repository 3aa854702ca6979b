"""Reading selected members out of zip archives (GroupLens zips, the RecBole wheel)."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path, PurePosixPath

from models.data.errors import DatasetError


def extract_files(
    archive: Path,
    root: str,
    required: tuple[str, ...],
    optional: tuple[str, ...],
    dest: Path,
) -> list[str]:
    """Copies named files out of `root/` inside a zip archive into `dest`.

    Only the named files are written, under their own names, so a hostile archive cannot
    write outside `dest`. A file missing from `root/` is looked up by its name anywhere in
    the archive when exactly one member has that name.

    Args:
        archive: The zip file.
        root: Directory inside the archive, e.g. "ml-100k"; "" for the top level.
        required: File names that must be present.
        optional: File names copied when present.
        dest: Existing directory to write into.

    Returns:
        The names of the files written.

    Raises:
        DatasetError: The archive is missing or not a valid zip, a required member is
            absent, or a member fails its CRC check.
    """
    if not archive.is_file():
        raise DatasetError(f"missing file: {archive}")
    written: list[str] = []
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = {
                PurePosixPath(info.filename): info
                for info in bundle.infolist()
                if not info.is_dir()
            }
            for name in (*required, *optional):
                info = _find(members, root, name)
                if info is None:
                    if name in required:
                        where = f"{root}/{name}" if root else name
                        raise DatasetError(f"{archive}: archive has no member {where}")
                    continue
                with bundle.open(info) as source, (dest / name).open("wb") as target:
                    shutil.copyfileobj(source, target)
                written.append(name)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise DatasetError(f"{archive}: not a valid zip archive ({exc})") from None
    return written


def _find(
    members: dict[PurePosixPath, zipfile.ZipInfo], root: str, name: str
) -> zipfile.ZipInfo | None:
    exact = members.get(PurePosixPath(root) / name if root else PurePosixPath(name))
    if exact is not None:
        return exact
    same_name = [info for path, info in members.items() if path.name == name]
    return same_name[0] if len(same_name) == 1 else None
